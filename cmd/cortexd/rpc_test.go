package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/api"
	"github.com/cortex-mesh/cortex/pki"
	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/store"
	"github.com/cortex-mesh/cortex/tables"
)

// logBuffer collects a logger's output for a test to read.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitLog waits until the log matches re and returns the match.
func (l *logBuffer) waitLog(t *testing.T, re string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := rx.FindStringSubmatch(l.String()); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log does not say %q:\n%s", re, l)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rpcFixture is a CA with a node certificate and client certificates.
type rpcFixture struct {
	dir, other string // the mesh CA's directory, another CA's
	ident      *pki.Identity
}

func newRPCFixture(t *testing.T) *rpcFixture {
	t.Helper()
	now := time.Now()
	f := &rpcFixture{dir: t.TempDir(), other: t.TempDir()}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(pki.CreateCA(f.dir, false, now))
	must(pki.CreateNodeCert(f.dir, "home", pki.RoleMember, []string{"127.0.0.1"}, false, now))
	must(pki.CreateClientCert(f.dir, "alice", false, now))
	must(pki.CreateClientCert(f.dir, "bob", false, now))
	must(pki.CreateCA(f.other, false, now))
	must(pki.CreateClientCert(f.other, "alice", false, now))
	// An expired client: made six years ago (the CA's validity is ten).
	must(pki.CreateClientCert(f.dir, "old", false, now.Add(-6*365*24*time.Hour)))
	crt, key := pki.NodeCertFiles(f.dir, "home")
	id, err := pki.LoadIdentity(crt, key, pki.KindNode)
	must(err)
	f.ident = id
	return f
}

// tlsConfig is a client's TLS configuration with the pair in dir of kind
// ("node" or "client") and name, trusting the mesh CA.
func (f *rpcFixture) tlsConfig(t *testing.T, dir, kind, name string) *tls.Config {
	t.Helper()
	pool, err := pki.LoadCA(filepath.Join(f.dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13}
	if kind != "" {
		crt, key := pki.ClientCertFiles(dir, name)
		if kind == "node" {
			crt, key = pki.NodeCertFiles(dir, name)
		}
		pair, err := tls.LoadX509KeyPair(crt, key)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg
}

// startRPC serves h on 127.0.0.1:0 and returns the address and the log.
func startRPC(t *testing.T, f *rpcFixture, h http.Handler) (string, *logBuffer, func()) {
	t.Helper()
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := Config{RPCListen: "127.0.0.1:0", MeshCA: filepath.Join(f.dir, "ca.crt")}
	stop, err := serveRPC(cfg, pki.NewCurrent(f.ident), h, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	m := logs.waitLog(t, `msg="rpc listening" addr=(127\.0\.0\.1:\d+) node=home`)
	return m[1], logs, stop
}

func TestRPCListener(t *testing.T) {
	f := newRPCFixture(t)
	ctx := context.Background()
	st, err := store.Open(store.Options{Dir: t.TempDir(), Node: "home", Logger: slog.New(slog.DiscardHandler),
		Table: tables.Options{NoSync: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.CreateTable(ctx, "t", scope.Scope{Local: true})
	st.AddIdentity(ctx, store.Identity{Name: "alice", Kind: "client"})
	st.GrantPerm(ctx, "alice", "t", store.PermWrite)
	addr, logs, _ := startRPC(t, f, api.NewServer(st, tables.Limits{}, nil))

	// A granted client reads and writes; the connection is TLS 1.3 with
	// the node's certificate.
	alice := api.DialTLS(addr, f.tlsConfig(t, f.dir, "client", "alice"))
	defer alice.Close()
	if _, err := alice.Put(ctx, "t", []byte("k"), []byte("v")); err != nil {
		t.Fatalf("put as alice: %v", err)
	}
	if r, err := alice.Get(ctx, "t", []byte("k")); err != nil || string(r.Value) != "v" {
		t.Fatalf("get as alice: %+v %v", r, err)
	}
	conn, err := tls.Dial("tcp", addr, f.tlsConfig(t, f.dir, "client", "alice"))
	if err != nil {
		t.Fatal(err)
	}
	if st := conn.ConnectionState(); st.Version != tls.VersionTLS13 || st.PeerCertificates[0].Subject.CommonName != "home" {
		t.Errorf("connection: version %x, server %q", st.Version, st.PeerCertificates[0].Subject.CommonName)
	}
	conn.Close()

	// The ACLs and the registry apply: alice may not touch a system table;
	// bob, with a good certificate but not registered, may do nothing.
	if _, err := alice.Grants(ctx); !isDenied(err) {
		t.Errorf("acl list as alice: %v, want denied", err)
	}
	bob := api.DialTLS(addr, f.tlsConfig(t, f.dir, "client", "bob"))
	defer bob.Close()
	if _, err := bob.NodeStatus(ctx); !isDenied(err) || !strings.Contains(err.Error(), "bob is not a registered identity") {
		t.Errorf("node status as unregistered bob: %v", err)
	}

	// Refused in the handshake, with the reason and the remote address in
	// the log.
	for _, c := range []struct {
		name string
		cfg  *tls.Config
		log  string
	}{
		{"node certificate as a client", f.tlsConfig(t, f.dir, "node", "home"), `certificate of \"home\" is a node certificate, not a client certificate`},
		{"client of another CA", f.tlsConfig(t, f.other, "client", "alice"), `certificate of \"alice\" is not signed by this mesh's CA`},
		{"expired client", f.tlsConfig(t, f.dir, "client", "old"), `certificate of \"old\" is expired`},
		{"no certificate", f.tlsConfig(t, f.dir, "", ""), `no client certificate presented`},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl := api.DialTLS(addr, c.cfg)
			defer cl.Close()
			_, err := cl.NodeStatus(ctx)
			if !errors.Is(err, api.ErrUnreachable) || !strings.Contains(err.Error(), "remote error: tls") {
				t.Errorf("got %v, want a refused handshake", err)
			}
			logs.waitLog(t, `level=WARN msg="rpc: refused a client" remote=127\.0\.0\.1 reason=".*`+regexp.QuoteMeta(c.log))
		})
	}
	// A client retrying with the refused certificate is not logged again
	// (its repeats are counted, and logged at most once a minute).
	for range 20 {
		cl := api.DialTLS(addr, f.tlsConfig(t, f.other, "client", "alice"))
		if _, err := cl.NodeStatus(ctx); !errors.Is(err, api.ErrUnreachable) {
			t.Errorf("retry with another CA's certificate: %v", err)
		}
		cl.Close()
	}
	if n := strings.Count(logs.String(), "is not signed by this mesh's CA"); n != 1 {
		t.Errorf("20 more refusals of one client for one reason logged %d lines, want the first one only:\n%s", n, logs.String())
	}

	// Old TLS versions and plain HTTP get nothing.
	old := f.tlsConfig(t, f.dir, "client", "alice")
	old.MinVersion, old.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	if c, err := tls.Dial("tcp", addr, old); err == nil {
		c.Close()
		t.Errorf("a TLS 1.2 client was served")
	}
	resp, err := http.Post("http://"+addr+"/v1/node/status", "application/json", strings.NewReader("{}"))
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP was served: %s", body)
		}
	}
	// A client that connects and says nothing is cut off in time, without
	// holding up the others.
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if _, err := alice.NodeStatus(ctx); err != nil {
		t.Errorf("with an idle connection open: %v", err)
	}
}

func isDenied(err error) bool {
	var ae *api.Error
	return errors.As(err, &ae) && ae.Code == api.CodeDenied
}

func TestRPCStopIsGraceful(t *testing.T) {
	f := newRPCFixture(t)
	entered := make(chan struct{})
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		w.Write([]byte(`{}`))
	})
	addr, _, stop := startRPC(t, f, h)
	c := api.DialTLS(addr, f.tlsConfig(t, f.dir, "client", "alice"))
	defer c.Close()
	errc := make(chan error, 1)
	go func() { _, err := c.NodeStatus(context.Background()); errc <- err }()
	<-entered
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	// New connections are refused at once; the request in flight finishes.
	deadline := time.Now().Add(5 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting after stop")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-stopped:
		t.Fatal("stop returned with a request in flight")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-errc; err != nil {
		t.Errorf("request in flight: %v", err)
	}
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("stop did not return")
	}
	stop() // a second stop is harmless
}

func TestRPCStartErrors(t *testing.T) {
	f := newRPCFixture(t)
	quiet := slog.New(slog.DiscardHandler)
	ca := filepath.Join(f.dir, "ca.crt")
	if _, err := serveRPC(Config{RPCListen: "127.0.0.1:0", MeshCA: ca}, nil, http.NotFoundHandler(), quiet); err == nil || !strings.Contains(err.Error(), "mesh mode") {
		t.Errorf("no identity: %v", err)
	}
	if _, err := serveRPC(Config{RPCListen: "127.0.0.1:0", MeshCA: filepath.Join(f.dir, "none.crt")}, pki.NewCurrent(f.ident), http.NotFoundHandler(), quiet); err == nil || !strings.Contains(err.Error(), "mesh CA") {
		t.Errorf("no CA: %v", err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	if _, err := serveRPC(Config{RPCListen: busy.Addr().String(), MeshCA: ca}, pki.NewCurrent(f.ident), http.NotFoundHandler(), quiet); err == nil || !strings.Contains(err.Error(), "--rpc-listen") {
		t.Errorf("address in use: %v", err)
	}
	if _, err := serveRPC(Config{RPCListen: "nonsense", MeshCA: ca}, pki.NewCurrent(f.ident), http.NotFoundHandler(), quiet); err == nil {
		t.Errorf("a bad address was accepted")
	}
}

// waitUntil polls cond until it holds, failing the test after 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// openFDs is the number of this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("counting descriptors: %v", err)
	}
	return len(ents)
}

// A flood of connections that never send a byte holds no more than the
// per-address handshake cap of descriptors on the server, does not keep a
// client with a certificate out, and gives back every place once it ends.
func TestRPCFloodOfSilentConnections(t *testing.T) {
	const flood = 200 // well over rpcMaxHandshakesPerIP, under the test's RLIMIT_NOFILE
	f := newRPCFixture(t)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(r.TLS.PeerCertificates[0].Subject.CommonName))
	})
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := listenRPC(Config{RPCListen: "127.0.0.1:0", MeshCA: filepath.Join(f.dir, "ca.crt")}, pki.NewCurrent(f.ident), h, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.stop)
	addr := srv.ln.Addr().String()
	lim := srv.ln.limiter

	// The legitimate client connects from 127.0.0.2, the flood from
	// 127.0.0.1: the per-address caps are the flood's alone.
	tr := &http.Transport{
		DialContext:     (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext,
		TLSClientConfig: f.tlsConfig(t, f.dir, "client", "alice"),
	}
	defer tr.CloseIdleConnections()
	get := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+addr+"/", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if string(body) != "alice" {
			return fmt.Errorf("served %q, want alice", body)
		}
		return nil
	}

	before := openFDs(t)
	conns := make([]net.Conn, 0, flood)
	closeFlood := func() {
		for _, c := range conns {
			c.Close()
		}
		conns = nil
	}
	defer closeFlood()
	for range flood {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("flood connection %d: %v", len(conns), err)
		}
		conns = append(conns, c)
	}
	waitUntil(t, "the listener took in the whole flood", func() bool {
		_, _, admitted, refused := lim.stats()
		return admitted+refused >= flood
	})
	// Admitted: the per-address handshake cap, plus any whose 3 s
	// handshake timed out before the last flood connection came in.
	total, _, admitted, refused := lim.stats()
	if got := srv.Refusals()["limits"]; got != refused {
		t.Errorf("refusals counted for the limits: %d, the limiter refused %d", got, refused)
	}
	if total.handshakes > rpcMaxHandshakesPerIP || total.conns > rpcMaxHandshakesPerIP {
		t.Errorf("during the flood: %+v in flight, over the per-address cap of %d", total, rpcMaxHandshakesPerIP)
	}
	// This process holds the flood's client ends too: the server's share
	// is what is open beyond those.
	during := openFDs(t)
	server := during - before - flood
	t.Logf("flood of %d: %d admitted, %d refused; %d descriptors before, %d during (server side %d)",
		flood, admitted, refused, before, during, server)
	if server > rpcMaxHandshakesPerIP+4 {
		t.Errorf("the server holds %d descriptors for a flood of %d, want at most %d+4", server, flood, rpcMaxHandshakesPerIP)
	}

	// A client with a certificate gets through the flood in time.
	if err := get(); err != nil {
		t.Fatalf("a legitimate client during the flood: %v", err)
	}
	if c := lim.counts(remoteKey(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)})); c != (connCounts{conns: 1}) {
		t.Errorf("the legitimate client's connection: %+v, want one established", c)
	}
	withClient := openFDs(t)
	t.Logf("with the legitimate client connected: %d descriptors (server side of the flood and the client %d)",
		withClient, withClient-before-flood)
	if withClient-before-flood > rpcMaxHandshakesPerIP+4+2 {
		t.Errorf("%d descriptors with the flood and one client, want at most %d", withClient, before+flood+rpcMaxHandshakesPerIP+4+2)
	}
	// The refusals are logged once for the address, with a count.
	m := logs.waitLog(t, `level=WARN msg="rpc: refused connections over the listener's limits[^"]*" remote=127\.0\.0\.1 refused=(\d+) reason="over the limit of 8 TLS handshakes at once from one address"`)
	if m[1] != "1" {
		t.Errorf("the first refusal line counts %s refusals, want 1", m[1])
	}
	if n := strings.Count(logs.String(), "refused connections over"); n != 1 {
		t.Errorf("%d refusal lines for one flood within a minute, want 1:\n%s", n, logs)
	}

	// Once the flood and the client are gone, every place is given back.
	closeFlood()
	tr.CloseIdleConnections()
	waitUntil(t, "the listener holds no connection", func() bool {
		total, remotes, _, _ := lim.stats()
		return total == (connCounts{}) && remotes == 0
	})
	waitUntil(t, "the descriptors are back to where they were", func() bool { return openFDs(t) <= before })
	// And the listener still serves.
	if err := get(); err != nil {
		t.Fatalf("after the flood: %v", err)
	}
}

// The listener counts its refusals by reason (the metrics read them).
func TestRPCRefusalCounts(t *testing.T) {
	f := newRPCFixture(t)
	srv, err := listenRPC(Config{RPCListen: "127.0.0.1:0", MeshCA: filepath.Join(f.dir, "ca.crt")}, pki.NewCurrent(f.ident), http.NotFoundHandler(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.stop)
	addr := srv.ln.Addr().String()
	want := map[string]uint64{}
	for _, c := range []struct {
		cfg    *tls.Config
		reason string
	}{
		{f.tlsConfig(t, f.dir, "node", "home"), "wrong_kind"},
		{f.tlsConfig(t, f.other, "client", "alice"), "foreign_ca"},
		{f.tlsConfig(t, f.other, "client", "alice"), "foreign_ca"},
		{f.tlsConfig(t, f.dir, "client", "old"), "expired"},
		{f.tlsConfig(t, f.dir, "", ""), "no_certificate"},
	} {
		cl := api.DialTLS(addr, c.cfg)
		if _, err := cl.NodeStatus(context.Background()); !errors.Is(err, api.ErrUnreachable) {
			t.Errorf("%s: %v, want a refused handshake", c.reason, err)
		}
		cl.Close()
		want[c.reason]++
		waitUntil(t, "the refusal counted as "+c.reason, func() bool { return srv.Refusals()[c.reason] == want[c.reason] })
	}
	for reason := range srv.Refusals() {
		if !slices.Contains(rpcRefusalReasons, reason) {
			t.Errorf("reason %q is not in rpcRefusalReasons", reason)
		}
	}
	if got := srv.Refusals(); !maps.Equal(got, want) {
		t.Errorf("refusals %v, want %v", got, want)
	}
}
