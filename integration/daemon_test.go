package integration

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/api"
)

// Every `cortex put` that exited 0 before the daemon was killed with SIGKILL
// is there after a restart.
func TestDurabilityKill9WithCLIWriters(t *testing.T) {
	n := newNode(t, "home")
	n.start()
	n.must("table", "create", "t")

	const writers = 8
	var acked sync.Map // key -> value, for puts that exited 0
	var count atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10_000; i++ { // bounded; the kill ends it much sooner
				select {
				case <-stop:
					return
				default:
				}
				k, v := fmt.Sprintf("w%d-%05d", w, i), fmt.Sprintf("value-%d-%d", w, i)
				if r := n.cli("put", "t", k, v); r.code == 0 {
					acked.Store(k, v)
					count.Add(1)
				} else {
					return // the daemon is gone
				}
			}
		}()
	}
	// Kill at a random point, mid-stream.
	killAt := int64(500 + rand.IntN(1000))
	deadline := time.Now().Add(60 * time.Second)
	for count.Load() < killAt && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // poll interval
	}
	if count.Load() < killAt {
		t.Fatalf("only %d puts acknowledged in 60s", count.Load())
	}
	n.kill()
	close(stop)
	wg.Wait()

	n.start()
	c := n.client()
	defer c.Close()
	total := 0
	acked.Range(func(k, v any) bool {
		total++
		rec, err := c.Get(context.Background(), "t", []byte(k.(string)))
		if err != nil {
			t.Errorf("acknowledged key %s: %v", k, err)
		} else if string(rec.Value) != v.(string) {
			t.Errorf("acknowledged key %s: value %q, want %q", k, rec.Value, v)
		}
		return true
	})
	t.Logf("%d acknowledged puts from %d CLI writers survived kill -9", total, writers)
}

func TestSecondDaemonOnSameDataDirFails(t *testing.T) {
	n := newNode(t, "home")
	n.start()
	second := *n
	second.socket = n.socket + "2"
	second.args = []string{"--data-dir", n.dir, "--socket", second.socket}
	if err := second.startNoWait(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-second.exited:
		if err == nil {
			t.Fatal("second cortexd on the same data directory exited 0")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("second cortexd on the same data directory is still running")
	}
	if !strings.Contains(second.logs.String(), "in use by another cortexd") {
		t.Fatalf("no clear message: %s", second.logs)
	}
	// The first one is unaffected.
	n.must("node", "status")
}

func TestStaleSocketAfterKill9IsReplaced(t *testing.T) {
	n := newNode(t, "home")
	n.start()
	n.must("table", "create", "t")
	n.must("put", "t", "k", "v")
	n.kill()
	if _, err := os.Stat(n.socket); err != nil {
		t.Fatalf("expected the crashed daemon's socket file to remain: %v", err)
	}
	n.start()
	if got := n.must("get", "t", "k"); strings.TrimSpace(got) != "v" {
		t.Fatalf("get after restart: %q", got)
	}
	fi, err := os.Stat(n.socket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestLiveSocketIsNotStolen(t *testing.T) {
	n := newNode(t, "home")
	n.start()
	other := newNode(t, "office")
	other.socket = n.socket
	other.args = []string{"--data-dir", other.dir, "--node-name", "office", "--socket", n.socket}
	if err := other.startNoWait(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-other.exited:
		if err == nil || !strings.Contains(other.logs.String(), "another cortexd is serving this socket") {
			t.Fatalf("exit %v, logs: %s", err, other.logs)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("second daemon took over a live socket")
	}
	if got := n.must("node", "status", "--json"); !strings.Contains(got, `"node":"home"`) {
		t.Fatalf("the first daemon no longer answers: %s", got)
	}
}

// SIGTERM while writes are in flight: every write is either acknowledged
// (and then present after a restart) or refused; the daemon exits 0 and
// removes its socket.
func TestSIGTERMWithWritesInFlight(t *testing.T) {
	n := newNode(t, "home")
	n.start()
	n.must("table", "create", "t")
	c := n.client()
	defer c.Close()

	var acked sync.Map
	var count atomic.Int64
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100_000; i++ {
				k := fmt.Sprintf("w%d-%d", w, i)
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				_, err := c.Put(ctx, "t", []byte(k), []byte(k))
				cancel()
				if err != nil {
					return
				}
				acked.Store(k, true)
				count.Add(1)
			}
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for count.Load() < 500 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // poll interval
	}
	if err := n.stop(); err != nil {
		t.Fatalf("cortexd exit after SIGTERM: %v\n%s", err, n.logs)
	}
	wg.Wait()
	if _, err := os.Stat(n.socket); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket still there after a clean stop: %v", err)
	}
	n.start()
	total := 0
	acked.Range(func(k, _ any) bool {
		total++
		if _, err := c.Get(context.Background(), "t", []byte(k.(string))); err != nil {
			t.Errorf("acknowledged key %s lost: %v", k, err)
		}
		return true
	})
	t.Logf("%d writes acknowledged before SIGTERM, all present", total)
}

// Garbage and absurd lengths on the socket get an error; the daemon keeps
// running and nothing changes.
func TestBadInputOnSocket(t *testing.T) {
	n := newNode(t, "home")
	n.start()
	n.must("table", "create", "t")
	n.must("put", "t", "k", "v")
	c := n.client()
	defer c.Close()
	before := tableKeys(t, c)

	raw := func(payload string) string {
		conn, err := net.Dial("unix", n.socket)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		conn.Write([]byte(payload))
		line, _ := bufio.NewReader(conn).ReadString('\n')
		return line
	}
	post := func(path, body string) string {
		return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", path, len(body), body)
	}
	cases := map[string]string{
		"garbage":        "\x00\x01\x02 not http at all\r\n\r\n",
		"2GiB length":    "POST /v1/put HTTP/1.1\r\nHost: x\r\nContent-Length: 2147483648\r\n\r\n{\"table\":\"t\"",
		"bad json":       post("/v1/put", `{"table":`),
		"unknown field":  post("/v1/put", `{"table":"t","key":"aw==","bogus":true}`),
		"unknown call":   post("/v1/nope", `{}`),
		"GET not POST":   "GET /v1/put HTTP/1.1\r\nHost: x\r\n\r\n",
		"empty key":      post("/v1/put", `{"table":"t","key":""}`),
		"unknown table":  post("/v1/put", `{"table":"nope","key":"aw=="}`),
		"reserved table": post("/v1/table/create", `{"table":"cortex_evil"}`),
		"bad scope":      post("/v1/table/create", `{"table":"u","scope":[","]}`),
		"bad base64":     post("/v1/put", `{"table":"t","key":"%%%"}`),
	}
	for name, payload := range cases {
		status := raw(payload)
		if !strings.HasPrefix(status, "HTTP/1.1 4") {
			t.Errorf("%s: got %q, want a 4xx status", name, status)
		}
	}
	if got := tableKeys(t, c); got != before {
		t.Fatalf("state changed: %s -> %s", before, got)
	}
	n.must("node", "status")
}

func tableKeys(t *testing.T, c *api.Client) string {
	t.Helper()
	list, err := c.Tables(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, ti := range list {
		fmt.Fprintf(&b, "%s:%d ", ti.Name, ti.Keys)
	}
	return b.String()
}
