package tables

import (
	"errors"
	"fmt"
	"testing"
)

// A frozen view stays as of its offset while writes go on, and its records
// (tombstones included, by prefix) are those of that instant.
func TestFreezeIsAsOfItsOffset(t *testing.T) {
	tb := utNew(t, "home")
	utApply(t, tb, utPut("a1", "one", 10, "p"), utPut("a2", "two", 11, "p"), utDel("b1", 12, "p"), utPut("c1", "x\x00\xff", 13, "p"))
	f := tb.Freeze()
	if f.Offset != utLast(tb) || f.LogID != tb.LogID() || f.Len() != 4 || f.Count([]byte("a")) != 2 {
		t.Fatalf("frozen: offset %d (log at %d), %d records, %d under a", f.Offset, utLast(tb), f.Len(), f.Count([]byte("a")))
	}
	// Writes after the freeze: a newer a1, a new key, a delete of a2.
	utApply(t, tb, utPut("a1", "newer", 20, "p"), utPut("a3", "three", 21, "p"), utDel("a2", 22, "p"))
	var got []string
	if err := f.Each(nil, func(r Record) error {
		got = append(got, fmt.Sprintf("%s=%q/%v/%d", r.Key, r.Value, r.Deleted, r.Version.HLC))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{`a1="one"/false/10`, `a2="two"/false/11`, `b1=""/true/12`, `c1="x\x00\xff"/false/13`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("records:\n got %v\nwant %v", got, want)
	}
	var under []string
	f.Each([]byte("a"), func(r Record) error { under = append(under, string(r.Key)); return nil })
	if fmt.Sprint(under) != "[a1 a2]" {
		t.Errorf("under a: %v", under)
	}
	stop := errors.New("stop")
	n := 0
	if err := f.Each(nil, func(Record) error { n++; return stop }); err != stop || n != 1 {
		t.Errorf("Each did not stop at fn's error: %v after %d", err, n)
	}
	if f2 := tb.Freeze(); f2.Offset != f.Offset+3 || f2.Len() != 5 {
		t.Errorf("a later freeze: offset %d, %d records", f2.Offset, f2.Len())
	}
}
