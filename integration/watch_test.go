package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/api"
	"github.com/cortex-mesh/cortex/tables"
)

// watchProc is a `cortex watch` process running until it is stopped.
type watchProc struct {
	t              *testing.T
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	exited         chan error
}

// startWatch runs cortex with args (global flags and "watch ...") and
// waits for its start line on stderr.
func startWatch(t *testing.T, args ...string) *watchProc {
	t.Helper()
	w := &watchProc{t: t, stdout: &syncBuffer{}, stderr: &syncBuffer{}, exited: make(chan error, 1)}
	w.cmd = exec.Command(filepath.Join(bin, "cortex"), args...)
	w.cmd.Stdout, w.cmd.Stderr = w.stdout, w.stderr
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { w.exited <- w.cmd.Wait() }()
	t.Cleanup(func() {
		if w.cmd.ProcessState == nil {
			w.cmd.Process.Kill()
			<-w.exited
		}
	})
	w.wait("its start line", func() bool { return strings.HasPrefix(w.stderr.String(), "watching ") })
	return w
}

func (w *watchProc) wait(what string, cond func() bool) {
	w.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		select {
		case err := <-w.exited:
			w.exited <- err
			w.t.Fatalf("cortex watch exited (%v) waiting for %s\nstdout: %s\nstderr: %s", err, what, w.stdout, w.stderr)
		default:
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("cortex watch: no %s within 30s\nstdout: %s\nstderr: %s", what, w.stdout, w.stderr)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
}

// lines waits until stdout holds at least n lines and returns them all.
func (w *watchProc) lines(n int) []string {
	w.t.Helper()
	w.wait(fmt.Sprintf("%d lines", n), func() bool { return strings.Count(w.stdout.String(), "\n") >= n })
	return strings.Split(strings.TrimSuffix(w.stdout.String(), "\n"), "\n")
}

// exit waits for the process to end and returns its exit code.
func (w *watchProc) exit() int {
	w.t.Helper()
	select {
	case err := <-w.exited:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		} else if err != nil {
			w.t.Fatal(err)
		}
		return 0
	case <-time.After(30 * time.Second):
		w.t.Fatalf("cortex watch did not exit within 30s\nstdout: %s\nstderr: %s", w.stdout, w.stderr)
	}
	return -1
}

// interrupt sends SIGINT (Ctrl-C) and returns the exit code.
func (w *watchProc) interrupt() int {
	w.t.Helper()
	w.cmd.Process.Signal(os.Interrupt)
	return w.exit()
}

// change is one line of `cortex watch --json`.
type change struct {
	Op          string  `json:"op"`
	Key         *string `json:"key"`
	KeyBase64   string  `json:"key_base64"`
	Value       *string `json:"value"`
	ValueBase64 string  `json:"value_base64"`
	HLC         uint64  `json:"hlc,string"`
	HLCTime     string  `json:"hlc_time"`
	Origin      string  `json:"origin"`
	Offset      uint64  `json:"offset"`
}

func textOrBase64(t *testing.T, s *string, b64 string) string {
	if s != nil {
		return *s
	}
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatalf("base64 %q: %v", b64, err)
	}
	return string(b)
}

func parseChanges(t *testing.T, lines []string) []change {
	t.Helper()
	out := make([]change, 0, len(lines))
	for _, l := range lines {
		var c change
		dec := json.NewDecoder(strings.NewReader(l))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			t.Fatalf("watch --json line %q: %v", l, err)
		}
		out = append(out, c)
	}
	return out
}

// `cortex watch` on b of a two-node mesh prints b's own writes and the
// writes it adopts from a, in the order b applies them, with exact bytes:
// replaying the lines in order gives b's view, every writer's writes come
// in the order it made them, and the offsets run without a gap. SIGINT
// ends it with exit 0, and cortexd releases the stream.
func TestWatchMeshLocalAndRemote(t *testing.T) {
	certs := meshCerts(t, "a", "b")
	a := newMeshNode(t, certs, "a")
	a.start()
	b := newMeshNode(t, certs, "b", a.meshAddr)
	b.start()
	a.waitPeers("b")
	b.waitPeers("a")
	a.must("table", "create", "t", "--scope", "all")
	a.must("put", "t", "ready", "1")
	b.waitValue("t", "ready", "1")

	js := startWatch(t, "--socket", b.socket, "watch", "t", "--json")
	text := startWatch(t, "--socket", b.socket, "watch", "t")
	b.waitLog(`msg="watch started" table=t identity=\(socket\)`)

	// One at a time: a local write on b, then a's writes, one of them
	// with a NUL byte and invalid UTF-8, then a delete from a.
	b.must("put", "t", "k1", "local on b")
	js.lines(1)
	a.cliIn("x\x00y\xfez", "put", "t", "bin", "-")
	a.must("put", "t", "k2", "remote from a")
	a.waitValue("t", "k1", "local on b") // del of a key a has not got yet is "not found"
	a.must("del", "t", "k1")
	got := parseChanges(t, js.lines(4))
	want := []struct{ op, key, value, origin string }{
		{"put", "k1", "local on b", "b"},
		{"put", "bin", "x\x00y\xfez", "a"},
		{"put", "k2", "remote from a", "a"},
		{"del", "k1", "", "a"},
	}
	for i, w := range want {
		g := got[i]
		value := ""
		if g.Op == "put" {
			value = textOrBase64(t, g.Value, g.ValueBase64)
		} else if g.Value != nil || g.ValueBase64 != "" {
			t.Errorf("a del with a value: %+v", g)
		}
		if g.Op != w.op || textOrBase64(t, g.Key, g.KeyBase64) != w.key || value != w.value || g.Origin != w.origin {
			t.Errorf("change %d: %+v, want %+v", i, g, w)
		}
	}
	if got[1].Value != nil || got[1].ValueBase64 != base64.StdEncoding.EncodeToString([]byte("x\x00y\xfez")) {
		t.Errorf("the binary value: %+v", got[1])
	}
	var rec struct {
		HLC     uint64 `json:"hlc,string"`
		HLCTime string `json:"hlc_time"`
	}
	if err := json.Unmarshal([]byte(b.must("--json", "get", "t", "k2")), &rec); err != nil {
		t.Fatalf("get --json: %v", err)
	}
	if got[2].HLC != rec.HLC || got[2].HLCTime != rec.HLCTime || rec.HLCTime != tables.Timestamp(rec.HLC).Time() {
		t.Errorf("k2's hlc %d (%s) in the watch, %d (%s) in get", got[2].HLC, got[2].HLCTime, rec.HLC, rec.HLCTime)
	}
	textLines := text.lines(4)
	if !strings.HasSuffix(textLines[1], "\ta\tput\tbin\tx\\x00y\\xfez") || !strings.HasSuffix(textLines[3], "\ta\tdel\tk1") {
		t.Errorf("text lines:\n%s", strings.Join(textLines, "\n"))
	}

	// Then both write at once, 100 writes each (fsync=batch), a and b also
	// to a key both write.
	var wg sync.WaitGroup
	for _, n := range []*node{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := n.client()
			defer c.Close()
			for i := range 100 {
				key := fmt.Sprintf("%s-%03d", n.name, i)
				if i%10 == 0 {
					key = "shared"
				}
				if _, err := c.Put(context.Background(), "t", []byte(key), fmt.Appendf(nil, "%s %d", n.name, i)); err != nil {
					t.Errorf("put on %s: %v", n.name, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.waitValue("t", "a-099", "a 99")
	a.waitValue("t", "b-099", "b 99")
	bc := b.client()
	defer bc.Close()
	view := func() map[string]string {
		res, err := bc.Scan(context.Background(), api.ScanRequest{Table: "t"})
		if err != nil || res.More {
			t.Fatalf("scan b: %v (more: %v)", err, res.More)
		}
		m := map[string]string{}
		for _, r := range res.Records {
			m[string(r.Key)] = fmt.Sprintf("%q %d %s", r.Value, r.HLC, r.Origin)
		}
		return m
	}
	replay := func(changes []change) map[string]string {
		m := map[string]string{"ready": ""}
		for _, c := range changes {
			k := textOrBase64(t, c.Key, c.KeyBase64)
			if c.Op == "del" {
				delete(m, k)
				continue
			}
			m[k] = fmt.Sprintf("%q %d %s", textOrBase64(t, c.Value, c.ValueBase64), c.HLC, c.Origin)
		}
		return m
	}
	// b's view, except "ready", written before the watch began.
	wantView := view()
	delete(wantView, "ready")
	var changes []change
	js.wait("the watch to replay into b's view", func() bool {
		changes = parseChanges(t, strings.Split(strings.TrimSuffix(js.stdout.String(), "\n"), "\n"))
		m := replay(changes)
		delete(m, "ready")
		return fmt.Sprint(m) == fmt.Sprint(wantView)
	})
	last := map[string]int{}
	for i, c := range changes {
		if i > 0 && c.Offset != changes[i-1].Offset+1 {
			t.Errorf("offset %d after %d", c.Offset, changes[i-1].Offset)
		}
		k := textOrBase64(t, c.Key, c.KeyBase64)
		var n int
		if _, err := fmt.Sscanf(k[strings.IndexByte(k, '-')+1:], "%d", &n); err == nil && strings.HasPrefix(k, c.Origin+"-") {
			if n <= last[c.Origin] && last[c.Origin] != 0 {
				t.Errorf("%s's write %d after its write %d", c.Origin, n, last[c.Origin])
			}
			last[c.Origin] = n
		}
	}
	if last["a"] != 99 || last["b"] != 99 {
		t.Errorf("last writes seen: %v", last)
	}

	for _, w := range []*watchProc{js, text} {
		if code := w.interrupt(); code != 0 {
			t.Errorf("exit %d after SIGINT, want 0\nstderr: %s", code, w.stderr)
		}
	}
	ended := regexp.MustCompile(`msg="watch ended" table=t identity=\(socket\) changes=\d+ why="the client went away"`)
	deadline := time.Now().Add(10 * time.Second)
	for len(ended.FindAllString(b.logs.String(), -1)) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("b did not release both streams within 10s:\n%s", b.logs)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
}

// Over the mTLS listener: a watcher with read permission gets the changes,
// one without is denied (exit 4), and revoking the permission ends an open
// watch (exit 4) before the next change is sent.
func TestWatchOverRPC(t *testing.T) {
	dir := rpcCerts(t, "home", "alice", "bob")
	addr := freeAddr(t)
	n := rpcNode(t, "home", dir, addr)
	n.start()
	n.waitLog(`msg="rpc listening" addr=` + regexp.QuoteMeta(addr))
	n.must("table", "create", "t")
	n.must("identity", "add", "alice")
	n.must("identity", "add", "bob")
	n.must("acl", "grant", "alice", "t", "read")
	flags := func(who string) []string {
		return []string{"--addr", addr, "--ca", filepath.Join(dir, "ca.crt"),
			"--cert", filepath.Join(dir, "client-"+who+".crt"), "--key", filepath.Join(dir, "client-"+who+".key")}
	}
	expect(t, "bob without a grant", cortex(t, nil, append(flags("bob"), "watch", "t")...), 4, "bob may not read table t")

	w := startWatch(t, append(flags("alice"), "watch", "t", "--json")...)
	n.waitLog(`msg="watch started" table=t identity=alice`)
	n.must("put", "t", "k", "v")
	if c := parseChanges(t, w.lines(1))[0]; *c.Key != "k" || *c.Value != "v" || c.Origin != "home" {
		t.Errorf("alice's watch: %+v", c)
	}
	n.must("acl", "revoke", "alice", "t")
	n.must("put", "t", "secret", "not for alice")
	if code := w.exit(); code != 4 || !strings.Contains(w.stderr.String(), "alice may not read table t") {
		t.Errorf("after the revocation: exit %d, want 4\nstderr: %s", code, w.stderr)
	}
	if strings.Contains(w.stdout.String(), "secret") {
		t.Errorf("alice saw a change after her permission was revoked:\n%s", w.stdout)
	}
	n.waitLog(`msg="watch ended" table=t identity=alice changes=1 why="denied: alice may not read table t`)

	// Over TLS too, SIGINT ends a watch cleanly and the node notices.
	n.must("acl", "grant", "alice", "t", "read")
	w = startWatch(t, append(flags("alice"), "watch", "t")...)
	if code := w.interrupt(); code != 0 {
		t.Errorf("exit %d after SIGINT over --addr\nstderr: %s", code, w.stderr)
	}
	n.waitLog(`msg="watch ended" table=t identity=alice changes=0 why="the client went away"`)
}

// A watcher that never reads its connection does not hold the writer up:
// with one attached, 3,000 writes of 1 KiB (about 4 MB of stream, far more
// than the socket buffers take) are all acknowledged, each within 10 s.
// The rates with and without it are logged (docs/benchmarks.md has the
// measurement); the test asserts only that no write waits for the watcher.
func TestWatchStalledWatcherDoesNotBlockWrites(t *testing.T) {
	n := newNode(t, "home")
	n.start()
	n.must("table", "create", "t")
	c := n.client()
	defer c.Close()
	value := bytes.Repeat([]byte("v"), 1024)
	writes := func(round string) float64 {
		const total, conns = 3000, 16
		var wg sync.WaitGroup
		start := time.Now()
		for w := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < total; i += conns {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					_, err := c.Put(ctx, "t", fmt.Appendf(nil, "%s-%05d", round, i), value)
					cancel()
					if err != nil {
						t.Errorf("%s: put %d: %v", round, i, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		return total / time.Since(start).Seconds()
	}
	without := writes("without")

	conn, err := net.Dial("unix", n.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"table":"t"}`
	fmt.Fprintf(conn, "POST /v1/watch HTTP/1.1\r\nHost: cortexd\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	n.waitLog(`msg="watch started" table=t`)
	with := writes("stalled")
	if strings.Contains(n.logs.String(), `msg="watch ended"`) {
		t.Fatalf("the watcher was dropped during the writes, so it did not stay stalled:\n%s", n.logs)
	}

	// Once its client goes, the stream is released.
	conn.Close()
	n.waitLog(`msg="watch ended" table=t identity=\(socket\)`)
	again := writes("again")
	t.Logf("3,000 writes of 1 KiB, 16 connections: %.0f writes/s without a watcher, %.0f with a stalled one, %.0f without again", without, with, again)
	if err := n.stop(); err != nil {
		t.Errorf("cortexd after SIGTERM: %v\n%s", err, n.logs)
	}
}

// cortexd stopping ends the watch streams at once (exit 1, saying why)
// instead of waiting for them.
func TestWatchEndsWhenCortexdStops(t *testing.T) {
	n := newNode(t, "home")
	n.start()
	n.must("table", "create", "t")
	w := startWatch(t, "--socket", n.socket, "watch", "t")
	start := time.Now()
	if err := n.stop(); err != nil {
		t.Errorf("cortexd after SIGTERM: %v\n%s", err, n.logs)
	}
	// Without ending the streams, it would wait for its 30 s shutdown timeout.
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("cortexd took %v to stop with a watcher", d)
	}
	if code := w.exit(); code != 1 || !strings.Contains(w.stderr.String(), "error: cortexd on home is stopping: the watch ends") {
		t.Errorf("exit %d\nstderr: %s", code, w.stderr)
	}
}
