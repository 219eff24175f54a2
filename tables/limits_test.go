package tables

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/cortex-mesh/cortex/wal"
)

func TestValidateName(t *testing.T) {
	cases := []struct {
		name   string
		system bool
		ok     bool
	}{
		{"a", false, true},
		{"users", false, true},
		{"user_events_2024", false, true},
		{"a_", false, true},
		{"a0", false, true},
		{"z" + strings.Repeat("9", 62), false, true}, // 63 characters
		{"a" + strings.Repeat("_", 62), false, true},
		{"", false, false},
		{"", true, false},
		{"a" + strings.Repeat("b", 63), false, false}, // 64 characters
		{"a" + strings.Repeat("b", 63), true, false},
		{"Users", false, false},
		{"usErs", false, false},
		{"USERS", true, false},
		{"1users", false, false},
		{"9", false, false},
		{"_users", false, false},
		{"user-events", false, false},
		{"user.events", false, false},
		{"user events", false, false},
		{"users/x", false, false},
		{"caf\u00e9", false, false},
		{"users\x00", false, false},
		{"cortex_", false, false},
		{"cortex_members", false, false},
		{"cortex_members", true, true},
		{"cortex_", true, true},
		{"cortex", false, true},        // the prefix needs its underscore
		{"cortexmembers", false, true}, // idem
		{"my_cortex_table", false, true},
		{"Cortex_members", true, false},
	}
	for _, c := range cases {
		err := ValidateName(c.name, c.system)
		if c.ok && err != nil {
			t.Errorf("ValidateName(%q, system=%v) = %v, want ok", c.name, c.system, err)
		}
		if !c.ok {
			if err == nil {
				t.Errorf("ValidateName(%q, system=%v) accepted the name", c.name, c.system)
			} else if !errors.Is(err, ErrInvalid) {
				t.Errorf("ValidateName(%q, system=%v) = %v, does not wrap ErrInvalid", c.name, c.system, err)
			}
		}
	}
}

func TestLimitsDefaults(t *testing.T) {
	l := Limits{}.withDefaults()
	if l.MaxKeySize != DefaultMaxKeySize || l.MaxValueSize != DefaultMaxValueSize {
		t.Fatalf("defaults %+v", l)
	}
	l = Limits{MaxKeySize: -1, MaxValueSize: 5}.withDefaults()
	if l.MaxKeySize != DefaultMaxKeySize || l.MaxValueSize != 5 {
		t.Fatalf("defaults over %+v", l)
	}
	// Configured limits never exceed what the log can decode again.
	l = Limits{MaxKeySize: 1 << 30, MaxValueSize: 1 << 40}.withDefaults()
	if l.MaxKeySize != wal.MaxKeySize || l.MaxValueSize != wal.MaxValueSize {
		t.Fatalf("limits over the log's: %+v", l)
	}
	tb := utNew(t, "n1")
	ctx := context.Background()
	if _, err := tb.Put(ctx, bytes.Repeat([]byte("k"), DefaultMaxKeySize), nil); err != nil {
		t.Fatalf("key of the default maximum size: %v", err)
	}
	if _, err := tb.Put(ctx, bytes.Repeat([]byte("k"), DefaultMaxKeySize+1), nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("key over the default maximum size: %v", err)
	}
	if _, err := tb.Put(ctx, []byte("k"), make([]byte, DefaultMaxValueSize+1)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("value over the default maximum size: %v", err)
	}
}

func TestLimitsRejectWrites(t *testing.T) {
	ctx := context.Background()
	opts := utOptions("n1")
	opts.Limits = Limits{MaxKeySize: 8, MaxValueSize: 16}
	tb := utOpen(t, t.TempDir(), opts)
	if _, err := tb.Put(ctx, []byte("existing"), []byte("value")); err != nil {
		t.Fatal(err)
	}
	before := tb.Stats()
	beforeRecs := utSnapshot(t, tb)

	key9, val17 := []byte("123456789"), bytes.Repeat([]byte("v"), 17)
	cases := []struct {
		name string
		do   func() error
	}{
		{"put empty key", func() error { _, err := tb.Put(ctx, nil, []byte("v")); return err }},
		{"put empty (non-nil) key", func() error { _, err := tb.Put(ctx, []byte{}, []byte("v")); return err }},
		{"put key over limit", func() error { _, err := tb.Put(ctx, key9, []byte("v")); return err }},
		{"put value over limit", func() error { _, err := tb.Put(ctx, []byte("k"), val17); return err }},
		{"put existing key, value over limit", func() error { _, err := tb.Put(ctx, []byte("existing"), val17); return err }},
		{"delete empty key", func() error { _, err := tb.Delete(ctx, nil); return err }},
		{"delete key over limit", func() error { _, err := tb.Delete(ctx, key9); return err }},
		{"apply empty key", func() error { _, err := tb.Apply(ctx, []wal.Entry{utPut("", "v", 1, "p")}); return err }},
		{"apply empty origin", func() error { _, err := tb.Apply(ctx, []wal.Entry{utPut("k", "v", 1, "")}); return err }},
		{"apply unknown op", func() error {
			_, err := tb.Apply(ctx, []wal.Entry{{Op: 0, Key: []byte("k"), Version: wal.Version{HLC: 1, Origin: "p"}}})
			return err
		}},
		{"apply op 3", func() error {
			_, err := tb.Apply(ctx, []wal.Entry{{Op: 3, Key: []byte("k"), Version: wal.Version{HLC: 1, Origin: "p"}}})
			return err
		}},
		{"apply delete with a value", func() error {
			e := utDel("k", 1, "p")
			e.Value = []byte("x")
			_, err := tb.Apply(ctx, []wal.Entry{e})
			return err
		}},
		// What the log could not read back must not get into it.
		{"apply origin over the log's limit", func() error {
			_, err := tb.Apply(ctx, []wal.Entry{utPut("k", "v", 1, strings.Repeat("o", wal.MaxOriginSize+1))})
			return err
		}},
		{"apply key over the log's limit", func() error {
			_, err := tb.Apply(ctx, []wal.Entry{utPut(strings.Repeat("k", wal.MaxKeySize+1), "v", 1, "p")})
			return err
		}},
		// A peer gets this node's limits too.
		{"apply key over the local limit", func() error { _, err := tb.Apply(ctx, []wal.Entry{utPut(string(key9), "v", 1, "p")}); return err }},
		{"apply value over the local limit", func() error { _, err := tb.Apply(ctx, []wal.Entry{utPut("k", string(val17), 1, "p")}); return err }},
	}
	for _, c := range cases {
		err := c.do()
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want an error wrapping ErrInvalid", c.name, err)
		}
		after := tb.Stats()
		after.Refused = before.Refused
		if after != before {
			t.Errorf("%s: Stats changed: applied %d→%d, keys %d→%d, tombstones %d→%d, digest %x→%x", c.name,
				before.Applied, after.Applied, before.Keys, after.Keys, before.Tombstones, after.Tombstones, before.Digest, after.Digest)
		}
	}
	utSameState(t, "after rejected writes", utSnapshot(t, tb), beforeRecs)
	if _, last := tb.current().Bounds(); last != before.Applied {
		t.Errorf("rejected writes reached the log: last offset %d, want %d", last, before.Applied)
	}

	// Exactly at the limits is fine.
	if _, err := tb.Put(ctx, []byte("12345678"), bytes.Repeat([]byte("v"), 16)); err != nil {
		t.Errorf("key and value at their limits: %v", err)
	}
	if _, err := tb.Delete(ctx, []byte("12345678")); err != nil {
		t.Errorf("delete of a key at its limit: %v", err)
	}
	if got := tb.Stats().Refused; got != 9 {
		t.Errorf("Stats.Refused = %d after 9 refused remote entries", got)
	}
	// The longest origin the log stores is fine.
	if n, err := tb.Apply(ctx, []wal.Entry{utPut("remote", string(val17[:16]), 1, strings.Repeat("o", wal.MaxOriginSize))}); err != nil || n != 1 {
		t.Errorf("remote write within the limits: %d, %v", n, err)
	}
	// All of it survives a restart.
	live := utCheckConsistent(t, tb)
	dir := tb.Dir()
	if err := tb.Close(); err != nil {
		t.Fatal(err)
	}
	re := utOpen(t, utCopyDir(t, dir), opts)
	utSameState(t, "reopened", utCheckConsistent(t, re), live)
}

// TestOriginOverTheLogLimit is the regression test for origins longer
// than a record can hold: such an entry used to be accepted, stored with a
// wrapped origin length in the view, and then refused by the log on replay.
func TestOriginOverTheLogLimit(t *testing.T) {
	tb := utNew(t, "n1")
	ctx := context.Background()
	long := strings.Repeat("o", 300)
	_, err := tb.Apply(ctx, []wal.Entry{utPut("k", "v", 5, long)})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Apply with a %d-byte origin: %v, want ErrInvalid", len(long), err)
	}
	if _, err := tb.Get([]byte("k")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("rejected entry is visible: %v", err)
	}
	// A node name the log cannot store is refused at Open.
	if _, err := Open(t.TempDir(), utOptions(long)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Open with a %d-byte node name: %v, want ErrInvalid", len(long), err)
	}
	// The longest storable name works end to end.
	name := strings.Repeat("n", wal.MaxOriginSize)
	dir := t.TempDir()
	tb2 := utOpen(t, dir, utOptions(name))
	v, err := tb2.Put(ctx, []byte("k"), []byte("v"))
	if err != nil || v.Origin != name {
		t.Fatalf("Put with a %d-byte node name: %+v, %v", len(name), v, err)
	}
	if r, err := tb2.Get([]byte("k")); err != nil || r.Version.Origin != name || string(r.Value) != "v" {
		t.Fatalf("Get: %+v, %v", r, err)
	}
	re := utOpen(t, utCopyDir(t, dir), utOptions(name))
	if r, err := re.Get([]byte("k")); err != nil || r.Version != v || string(r.Value) != "v" {
		t.Fatalf("after replay: %+v, %v", r, err)
	}
}

func TestClosedTable(t *testing.T) {
	ctx := context.Background()
	tb := utNew(t, "n1")
	if _, err := tb.Put(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := tb.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Put(ctx, []byte("k"), []byte("v2")); !errors.Is(err, ErrClosed) {
		t.Errorf("Put on a closed table: %v, want ErrClosed", err)
	}
	if _, err := tb.Delete(ctx, []byte("k")); !errors.Is(err, ErrClosed) {
		t.Errorf("Delete on a closed table: %v, want ErrClosed", err)
	}
	if _, err := tb.Apply(ctx, []wal.Entry{utPut("k", "v", 1, "p")}); !errors.Is(err, ErrClosed) {
		t.Errorf("Apply on a closed table: %v, want ErrClosed", err)
	}
	// Bad input is still reported as such.
	if _, err := tb.Put(ctx, nil, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("Put of an empty key on a closed table: %v", err)
	}
	if err := tb.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestCanceledContext(t *testing.T) {
	tb := utNew(t, "n1")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// With the context already done, the call returns its error or, if the
	// write won the race, succeeds; it never hangs.
	if _, err := tb.Put(ctx, []byte("k"), []byte("v")); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with a canceled context: %v", err)
	}
	if _, err := tb.Put(context.Background(), []byte("k2"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	utCheckConsistent(t, tb)
}

func TestLimitsAboveTheLog(t *testing.T) {
	// A key the log could not decode again is refused even when the
	// configured limit is higher; one at the log's limit survives a replay.
	ctx := context.Background()
	opts := utOptions("n1")
	opts.Limits = Limits{MaxKeySize: 1 << 20}
	dir := t.TempDir()
	tb := utOpen(t, dir, opts)
	if _, err := tb.Put(ctx, bytes.Repeat([]byte("k"), wal.MaxKeySize+1), nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("key over the log's limit: %v, want ErrInvalid", err)
	}
	key := bytes.Repeat([]byte("k"), wal.MaxKeySize)
	if _, err := tb.Put(ctx, key, []byte("v")); err != nil {
		t.Fatal(err)
	}
	re := utOpen(t, utCopyDir(t, dir), opts)
	if r, err := re.Get(key); err != nil || string(r.Value) != "v" {
		t.Fatalf("key at the log's limit after replay: %v", err)
	}
}

func TestLimitsCheckSaysTheSizesAsSent(t *testing.T) {
	l := Limits{MaxKeySize: 1 << 10, MaxValueSize: 1 << 20}
	cases := []struct {
		name       string
		key, value int
		want       string // "" for no error
	}{
		{"at the limits", 1 << 10, 1 << 20, ""},
		{"empty key", 0, 1, "invalid: empty key"},
		{"2 MiB value", 1, 2 << 20, "invalid: value is 2,097,152 bytes, over the limit of 1,048,576"},
		{"one byte over", 1, 1<<20 + 1, "invalid: value is 1,048,577 bytes, over the limit of 1,048,576"},
		{"2 KiB key", 2 << 10, 1, "invalid: key is 2,048 bytes, over the limit of 1,024"},
		{"both over: the key is named", 2 << 10, 2 << 20, "invalid: key is 2,048 bytes, over the limit of 1,024"},
	}
	for _, c := range cases {
		err := l.Check(make([]byte, c.key), make([]byte, c.value))
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v, want no error", c.name, err)
		case c.want != "" && (err == nil || err.Error() != c.want || !errors.Is(err, ErrInvalid)):
			t.Errorf("%s: %v, want %q wrapping ErrInvalid", c.name, err, c.want)
		}
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 7: "7", 999: "999", 1000: "1,000", 65536: "65,536",
		1048576: "1,048,576", 123456789: "123,456,789", -1234: "-1,234"} {
		if got := Thousands(n); got != want {
			t.Errorf("Thousands(%d) = %q, want %q", n, got, want)
		}
	}
}
