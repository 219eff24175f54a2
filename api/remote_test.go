package api

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/pki"
	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/store"
	"github.com/cortex-mesh/cortex/tables"
)

// clientCert makes a client certificate for name in dir (a CA is made on
// first use) and returns it parsed and as PEM.
func clientCert(t *testing.T, dir, name string) (*x509.Certificate, string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "ca.crt")); err != nil {
		if err := pki.CreateCA(dir, false, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if err := pki.CreateClientCert(dir, name, true, time.Now()); err != nil {
		t.Fatal(err)
	}
	path, _ := pki.ClientCertFiles(dir, name)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c, string(data)
}

func TestRemoteAdmission(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(store.Options{Dir: t.TempDir(), Node: "home", Table: tables.Options{NoSync: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.CreateTable(ctx, "t", scope.Scope{Local: true}); err != nil {
		t.Fatal(err)
	}
	h := NewServer(st, tables.Limits{}, nil).Remote()
	dir := t.TempDir()
	alice, _ := clientCert(t, dir, "alice")
	alice2, _ := clientCert(t, filepath.Join(dir, "second"), "alice")
	bob, _ := clientCert(t, dir, "bob")
	peer, _ := clientCert(t, dir, "peer")

	// call sends one request as the holder of cert (nil: no TLS at all).
	call := func(cert *x509.Certificate, name, body string) (int, ErrorBody) {
		t.Helper()
		r := httptest.NewRequest(http.MethodPost, "/v1/"+name, strings.NewReader(body))
		if cert != nil {
			r.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{cert}}, PeerCertificates: []*x509.Certificate{cert}}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		var eb ErrorBody
		if w.Code != http.StatusOK {
			json.Unmarshal(w.Body.Bytes(), &eb)
		}
		return w.Code, eb
	}
	denied := func(what string, code int, eb ErrorBody, want string) {
		t.Helper()
		if code != http.StatusForbidden || eb.Code != CodeDenied || !strings.Contains(eb.Error, want) {
			t.Errorf("%s: %d %+v, want 403 denied saying %q", what, code, eb, want)
		}
	}

	// No verified certificate: never the local administrator.
	code, eb := call(nil, "table/create", `{"table":"x"}`)
	denied("no TLS", code, eb, "no verified client certificate")
	r := httptest.NewRequest(http.MethodPost, "/v1/table/create", strings.NewReader(`{"table":"x"}`))
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{alice}}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusForbidden {
		t.Errorf("unverified certificate: %d %s", w.Code, w.Body)
	}

	// Unregistered: every call is denied, even the ones without an ACL.
	for _, name := range []string{"node/status", "table/list", "get"} {
		code, eb := call(bob, name, `{"table":"t","key":"aw=="}`)
		denied("unregistered "+name, code, eb, "bob is not a registered identity (an admin registers it with: cortex identity add bob)")
	}

	// Registered as a node: not a client.
	st.AddIdentity(ctx, store.Identity{Name: "peer", Kind: "node"})
	code, eb = call(peer, "node/status", `{}`)
	denied("node identity", code, eb, "peer is registered as a node identity")

	// Registered, no grant: what needs no ACL works, the rest is denied by
	// the ACLs.
	st.AddIdentity(ctx, store.Identity{Name: "alice", Kind: "client"})
	if code, eb := call(alice, "node/status", `{}`); code != http.StatusOK {
		t.Errorf("registered node/status: %d %+v", code, eb)
	}
	code, eb = call(alice, "get", `{"table":"t","key":"aw=="}`)
	denied("no grant", code, eb, "alice may not read table t")

	// Pinned to her certificate: that one passes, another one of hers not.
	st.AddIdentity(ctx, store.Identity{Name: "alice", Kind: "client", Fingerprint: pki.Fingerprint(alice)})
	st.GrantPerm(ctx, "alice", "t", store.PermWrite)
	if code, eb := call(alice, "put", `{"table":"t","key":"aw==","value":"dg=="}`); code != http.StatusOK {
		t.Errorf("pinned, own certificate: %d %+v", code, eb)
	}
	code, eb = call(alice2, "put", `{"table":"t","key":"aw==","value":"dg=="}`)
	denied("pinned, other certificate", code, eb, "alice is pinned to certificate "+pki.Fingerprint(alice))

	// Removing the identity takes effect on the next request.
	st.RemoveIdentity(ctx, "alice")
	code, eb = call(alice, "get", `{"table":"t","key":"aw=="}`)
	denied("removed", code, eb, "not a registered identity")
}
