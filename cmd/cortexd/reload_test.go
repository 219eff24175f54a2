package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/pki"
	"github.com/cortex-mesh/cortex/store"
	"github.com/cortex-mesh/cortex/tables"
)

// reloadFixture is a node "home" with a real store, its certificate files
// in dir, and a reloader over them.
type reloadFixture struct {
	dir      string
	crt, key string
	start    *pki.Identity
	st       *store.Store
	r        *reloader
	logs     *logBuffer
}

func newReloadFixture(t *testing.T) *reloadFixture {
	t.Helper()
	f := &reloadFixture{dir: t.TempDir(), logs: &logBuffer{}}
	if _, err := pki.NewCA(f.dir, pki.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := pki.NewNodeCert(f.dir, "home", pki.RoleMember, []string{"127.0.0.1"}, pki.Options{Lifetime: time.Hour}); err != nil {
		t.Fatal(err)
	}
	f.crt, f.key = pki.NodeCertFiles(f.dir, "home")
	var err error
	if f.start, err = pki.LoadIdentity(f.crt, f.key, pki.KindNode); err != nil {
		t.Fatal(err)
	}
	roots, err := pki.LoadCA(filepath.Join(f.dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(f.logs, nil))
	f.st, err = store.Open(store.Options{Dir: t.TempDir(), Node: "home", Table: tables.Options{NoSync: true}, Logger: log, Identity: f.start, CA: roots})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.st.Close() })
	f.r = &reloader{certFile: f.crt, keyFile: f.key, roots: roots, cur: pki.NewCurrent(f.start), store: f.st, log: log, now: time.Now}
	return f
}

func (f *reloadFixture) signerFingerprint() string {
	s, _ := f.st.Signer()
	return s.Fingerprint
}

func TestReloadRenewedCertificate(t *testing.T) {
	f := newReloadFixture(t)
	if changed, err := f.r.reload(); changed || err != nil {
		t.Fatalf("reload of the same files: changed %v, %v", changed, err)
	}
	iss, err := pki.Renew(f.dir, f.crt, pki.Options{Lifetime: 90 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	f.r.handle()
	if got := f.r.cur.Get().Leaf; !got.Equal(iss.Cert) {
		t.Fatalf("in use: serial %s, want the renewed %s\n%s", pki.Serial(got), pki.Serial(iss.Cert), f.logs)
	}
	if f.signerFingerprint() != pki.Fingerprint(iss.Cert) {
		t.Error("the store does not sign with the renewed certificate")
	}
	want := fmt.Sprintf(`msg="certificate reloaded: new connections present it, connections up keep theirs" file=%s serial=%s`, f.crt, pki.Serial(iss.Cert))
	if !strings.Contains(f.logs.String(), want) || !strings.Contains(f.logs.String(), "previous_serial="+pki.Serial(f.start.Leaf)) {
		t.Errorf("log:\n%s\nwant %s", f.logs, want)
	}
}

// Every bad reload keeps the certificate in use (in Current and in the
// store) and logs the reason.
func TestReloadRefused(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(t *testing.T, f *reloadFixture)
		want  string
	}{
		{"certificate file gone", func(t *testing.T, f *reloadFixture) { os.Remove(f.crt) }, "no such file"},
		{"certificate file is a directory", func(t *testing.T, f *reloadFixture) {
			os.Remove(f.crt)
			os.Mkdir(f.crt, 0o700)
		}, "is a directory"},
		{"garbage", func(t *testing.T, f *reloadFixture) { os.WriteFile(f.crt, []byte("garbage"), 0o644) }, "failed to find any PEM data"},
		{"key not matching", func(t *testing.T, f *reloadFixture) {
			// Another certificate of the same node (a new key), with the old key file.
			key, _ := os.ReadFile(f.key)
			mustDo(t, pki.CreateNodeCert(f.dir, "home", pki.RoleMember, nil, true, time.Now()))
			os.WriteFile(f.key, key, 0o600)
		}, "private key does not match public key"},
		{"a new key", func(t *testing.T, f *reloadFixture) {
			mustDo(t, pki.CreateNodeCert(f.dir, "home", pki.RoleMember, nil, true, time.Now()))
		}, "another key than the running certificate"},
		{"another CA", func(t *testing.T, f *reloadFixture) {
			other := t.TempDir()
			mustDo(t, pki.CreateCA(other, false, time.Now()))
			mustDo(t, pki.CreateNodeCert(other, "home", pki.RoleMember, nil, false, time.Now()))
			crt, key := pki.NodeCertFiles(other, "home")
			f.r.certFile, f.r.keyFile = crt, key
		}, "not signed by this mesh's CA"},
		{"another node", func(t *testing.T, f *reloadFixture) {
			mustDo(t, pki.CreateNodeCert(f.dir, "office", pki.RoleMember, nil, false, time.Now()))
			f.r.certFile, f.r.keyFile = pki.NodeCertFiles(f.dir, "office")
		}, `it is the certificate of node \"office\", and this node is \"home\"`}, // as the text log quotes it
		{"a key others may read", func(t *testing.T, f *reloadFixture) {
			mustDo(t, err2(pki.Renew(f.dir, f.crt, pki.Options{})))
			os.Chmod(f.key, 0o644)
		}, "are too open"},
		{"a client certificate", func(t *testing.T, f *reloadFixture) {
			mustDo(t, pki.CreateClientCert(f.dir, "home", false, time.Now()))
			f.r.certFile, f.r.keyFile = pki.ClientCertFiles(f.dir, "home")
		}, "is a client certificate, not a node certificate"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newReloadFixture(t)
			c.setup(t, f)
			f.r.handle()
			if got := f.r.cur.Get(); got != f.start {
				t.Errorf("the certificate in use changed to serial %s", pki.Serial(got.Leaf))
			}
			if f.signerFingerprint() != pki.Fingerprint(f.start.Leaf) {
				t.Error("the store's certificate changed")
			}
			logs := f.logs.String()
			if !strings.Contains(logs, `level=ERROR msg="certificate reload failed: keeping the certificate in use"`) || !strings.Contains(logs, c.want) ||
				!strings.Contains(logs, "serial="+pki.Serial(f.start.Leaf)) {
				t.Errorf("log:\n%s\nwant the reason %q", logs, c.want)
			}
		})
	}
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func err2[T any](_ T, err error) error { return err }

// SIGHUP goes to the reloader; without certificates it only says so; a
// SIGHUP never stops the loop, stop does.
func TestStartReloads(t *testing.T) {
	f := newReloadFixture(t)
	iss, err := pki.Renew(f.dir, f.crt, pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hup := make(chan os.Signal, 1)
	stop := startReloads(hup, f.r, f.r.log)
	hup <- os.Interrupt // any value: the channel carries SIGHUP only
	deadline := time.Now().Add(10 * time.Second)
	for !f.r.cur.Get().Leaf.Equal(iss.Cert) {
		if time.Now().After(deadline) {
			t.Fatalf("not reloaded:\n%s", f.logs)
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
	stop()
	stop() // twice is fine

	logs := &logBuffer{}
	stop = startReloads(hup, nil, slog.New(slog.NewTextHandler(logs, nil)))
	defer stop()
	hup <- os.Interrupt
	for !strings.Contains(logs.String(), "nothing to reload: this node runs without certificates (standalone)") {
		if time.Now().After(deadline) {
			t.Fatalf("no line for a standalone SIGHUP:\n%s", logs)
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
}

// The RPC listener presents the renewed certificate on a new connection and
// keeps serving the connection made before.
func TestRPCReload(t *testing.T) {
	f := newReloadFixture(t)
	if _, err := pki.NewClientCert(f.dir, "alice", pki.Options{}); err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	srv, err := listenRPC(Config{RPCListen: "127.0.0.1:0", MeshCA: filepath.Join(f.dir, "ca.crt")}, f.r.cur,
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }), slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.stop()
	pool, _ := pki.LoadCA(filepath.Join(f.dir, "ca.crt"))
	crt, key := pki.ClientCertFiles(f.dir, "alice")
	pair, err := tls.LoadX509KeyPair(crt, key)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{pair}}
	dial := func() *tls.Conn {
		t.Helper()
		c, err := tls.Dial("tcp", srv.ln.Addr().String(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	get := func(c *tls.Conn, br *bufio.Reader) {
		t.Helper()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("request: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	old := dial()
	defer old.Close()
	oldBr := bufio.NewReader(old)
	get(old, oldBr)

	iss, err := pki.Renew(f.dir, f.crt, pki.Options{Lifetime: 30 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	f.r.handle()
	fresh := dial()
	defer fresh.Close()
	if got := fresh.ConnectionState().PeerCertificates[0]; !got.Equal(iss.Cert) {
		t.Errorf("a new connection presents serial %s, want %s", pki.Serial(got), pki.Serial(iss.Cert))
	}
	if got := old.ConnectionState().PeerCertificates[0]; !got.Equal(f.start.Leaf) {
		t.Errorf("the old connection's certificate is %s", pki.Serial(got))
	}
	get(old, oldBr) // still served
}
