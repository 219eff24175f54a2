package api

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/store"
	"github.com/cortex-mesh/cortex/tables"
)

// newTestServer opens a real st in a temporary directory and serves it
// on a real Unix socket.
func newTestServer(tb testing.TB, opts tables.Options) (*store.Store, *Client) {
	tb.Helper()
	st, err := store.Open(store.Options{Dir: tb.TempDir(), Node: "home", Table: opts})
	if err != nil {
		tb.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "cxapi")
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := ListenUnix(filepath.Join(dir, "s.sock"))
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: NewServer(st, opts.Limits, nil)}
	go srv.Serve(ln)
	c := Dial(ln.Addr().String())
	tb.Cleanup(func() {
		c.Close()
		srv.Close()
		st.Close()
		os.RemoveAll(dir)
	})
	return st, c
}

func TestListenUnixModeAndLiveSocket(t *testing.T) {
	dir, _ := os.MkdirTemp("", "cxapi")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "s.sock")
	ln, err := ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, err %v", fi.Mode().Perm(), err)
	}
	if _, err := ListenUnix(path); err == nil {
		t.Fatal("a second listener took a live socket")
	}
	ln.Close()
	// A plain file in the way is not removed.
	os.WriteFile(path, []byte("x"), 0o600)
	if _, err := ListenUnix(path); err == nil {
		t.Fatal("listened over a regular file")
	}
}

func TestClientRoundTripAndErrors(t *testing.T) {
	ctx := context.Background()
	_, c := newTestServer(t, tables.Options{NoSync: true})
	if _, err := c.CreateTable(ctx, "t", scope.Scope{Local: true}, Overrides{}); err != nil {
		t.Fatal(err)
	}
	val := []byte{0xff, 0x00, 'x'}
	if _, err := c.Put(ctx, "t", []byte("k"), val); err != nil {
		t.Fatal(err)
	}
	r, err := c.Get(ctx, "t", []byte("k"))
	if err != nil || !bytes.Equal(r.Value, val) || r.Origin != "home" || r.HLC == 0 {
		t.Fatalf("get: %+v %v", r, err)
	}
	for _, tc := range []struct {
		name string
		call func() error
		code string
	}{
		{"missing key", func() error { _, err := c.Get(ctx, "t", []byte("nope")); return err }, CodeNotFound},
		{"unknown table", func() error { _, err := c.Put(ctx, "nope", []byte("k"), nil); return err }, CodeNotFound},
		{"empty key", func() error { _, err := c.Put(ctx, "t", nil, nil); return err }, CodeInvalid},
		{"bad name", func() error { _, err := c.CreateTable(ctx, "Bad", scope.Scope{All: true}, Overrides{}); return err }, CodeInvalid},
		{"exists", func() error { _, err := c.CreateTable(ctx, "t", scope.Scope{All: true}, Overrides{}); return err }, CodeExists},
		{"unknown identity", func() error { _, err := c.Grant(ctx, "bob", "t", "read"); return err }, CodeNotFound},
		{"bad perm", func() error { _, err := c.Grant(ctx, "bob", "t", "root"); return err }, CodeInvalid},
		{"drop system", func() error { return c.DropTable(ctx, scope.MetaTable, "") }, CodeInvalid},
	} {
		err := tc.call()
		ae, ok := err.(*Error)
		if !ok || ae.Code != tc.code {
			t.Errorf("%s: got %v, want code %s", tc.name, err, tc.code)
		}
	}
}

// FuzzHandler sends arbitrary bodies to every call: the answer is never a
// 5xx, and a call that is refused changes nothing.
func FuzzHandler(f *testing.F) {
	calls := []string{"put", "get", "del", "scan", "table/create", "table/scope", "table/drop",
		"identity/add", "identity/remove", "acl/grant", "acl/revoke", "node/status"}
	f.Add(uint8(0), []byte(`{"table":"t","key":"aw==","value":"dg=="}`))
	f.Add(uint8(4), []byte(`{"table":"u","scope":["a","b"]}`))
	f.Add(uint8(5), []byte(`{"table":"t","scope":","}`))
	f.Add(uint8(7), []byte(`{"name":"bob","cert_pem":"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----"}`))
	f.Add(uint8(3), []byte(`{"table":"t","limit":-1}`))
	st, err := store.Open(store.Options{Dir: f.TempDir(), Node: "home", Table: tables.Options{NoSync: true}})
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	if _, err := st.CreateTable(context.Background(), "t", scope.Scope{Local: true}); err != nil {
		f.Fatal(err)
	}
	h := NewServer(st, tables.Limits{}, nil)
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		before := snapshot(t, st)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/"+calls[int(which)%len(calls)], bytes.NewReader(body)))
		if w.Code >= 500 {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		if w.Code != http.StatusOK && snapshot(t, st) != before {
			t.Fatalf("refused call (%d %s) changed the store", w.Code, w.Body)
		}
	})
}

// snapshot is the digest of every copy the store holds.
func snapshot(t *testing.T, st *store.Store) string {
	var b bytes.Buffer
	for _, info := range st.HeldInfo() {
		tb, ok := st.Copy(info)
		if !ok {
			t.Fatalf("no copy of %s", info.Name)
		}
		fmt.Fprintf(&b, "%s:%x ", info.Dir(), tb.Stats().Digest)
	}
	return b.String()
}
