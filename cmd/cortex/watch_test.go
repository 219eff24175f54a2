package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/cmd/internal/cli"
	"github.com/cortex-mesh/cortex/tables"
)

// lockedBuffer is a bytes.Buffer a command writes while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// runningWatch is "cortex watch" running in-process until interrupted.
type runningWatch struct {
	stdout, stderr lockedBuffer
	interrupt      context.CancelFunc
	code           chan int
}

func (d *daemon) startWatch(t *testing.T, args ...string) *runningWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &runningWatch{interrupt: cancel, code: make(chan int, 1)}
	a := newApp(strings.NewReader(""), &w.stdout, &w.stderr, func(k string) string {
		return map[string]string{"CORTEX_SOCKET": d.socket}[k]
	}, false)
	a.interrupt = ctx
	go func() { w.code <- a.execute(append([]string{"watch"}, args...)) }()
	t.Cleanup(cancel)
	w.wait(t, "the watch to start", func() bool { return strings.HasPrefix(w.stderr.String(), "watching ") })
	return w
}

func (w *runningWatch) wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		select {
		case code := <-w.code:
			t.Fatalf("the watch exited %d waiting for %s: stdout %q, stderr %q", code, what, w.stdout.String(), w.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 10s: stdout %q, stderr %q", what, w.stdout.String(), w.stderr.String())
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
}

// lines waits for n lines on stdout.
func (w *runningWatch) lines(t *testing.T, n int) []string {
	t.Helper()
	w.wait(t, "the changes", func() bool { return strings.Count(w.stdout.String(), "\n") >= n })
	return strings.Split(strings.TrimSuffix(w.stdout.String(), "\n"), "\n")
}

// stop interrupts the watch as Ctrl-C does and returns its exit code.
func (w *runningWatch) stop(t *testing.T) int {
	t.Helper()
	w.interrupt()
	select {
	case code := <-w.code:
		return code
	case <-time.After(10 * time.Second):
		t.Fatal("the watch did not end within 10s of the interrupt")
	}
	return -1
}

// watch prints one escaped line per change, or one JSON object per line
// with --json, and an interrupt ends it with exit 0.
func TestWatchOutput(t *testing.T) {
	d := startDaemon(t)
	d.ok(t, "table", "create", "t")
	text := d.startWatch(t, "t")
	js := d.startWatch(t, "t", "--json")
	if want := "watching t on home from offset 1 (log "; !strings.HasPrefix(text.stderr.String(), want) {
		t.Errorf("stderr %q, want %q...", text.stderr.String(), want)
	}
	prefixed := d.startWatch(t, "t", "--prefix", "b")

	type version struct {
		HLC    tables.Timestamp `json:"hlc"`
		Origin string           `json:"origin"`
	}
	put := func(stdin string, args ...string) version {
		t.Helper()
		r := d.run(t, stdin, append([]string{"put", "--json"}, args...)...)
		if r.code != 0 {
			t.Fatalf("put %v: %v", args, r)
		}
		return decode[version](t, r.stdout)
	}
	v1 := put("", "t", "apple", "red")
	v2 := put("a\x00b\xff\tc\n", "t", "bin", "-")
	r := d.run(t, "", "del", "--json", "t", "apple")
	v3 := decode[version](t, r.stdout)
	v4 := put("", "t", "empty", "")

	got := text.lines(t, 4)
	want := []string{
		cli.HLC(uint64(v1.HLC)) + "\thome\tput\tapple\tred",
		cli.HLC(uint64(v2.HLC)) + "\thome\tput\tbin\ta\\x00b\\xff\\tc\\n",
		cli.HLC(uint64(v3.HLC)) + "\thome\tdel\tapple",
		cli.HLC(uint64(v4.HLC)) + "\thome\tput\tempty\t",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("text lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	for _, l := range js.lines(t, 4) {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not one JSON object a line: %q: %v", l, err)
		}
	}
	wantJSON := []string{
		`{"op":"put","key":"apple","value":"red","hlc":"%d","hlc_time":"%t","origin":"home","offset":1}`,
		`{"op":"put","key":"bin","value":null,"value_base64":"YQBi/wljCg==","hlc":"%d","hlc_time":"%t","origin":"home","offset":2}`,
		`{"op":"del","key":"apple","value":null,"hlc":"%d","hlc_time":"%t","origin":"home","offset":3}`,
		`{"op":"put","key":"empty","value":"","hlc":"%d","hlc_time":"%t","origin":"home","offset":4}`,
	}
	for i, l := range js.lines(t, 4) {
		h := []version{v1, v2, v3, v4}[i].HLC
		if w := strings.NewReplacer("%d", strconv.FormatUint(uint64(h), 10), "%t", h.Time()).Replace(wantJSON[i]); l != w {
			t.Errorf("json line %d: %s\nwant %s", i, l, w)
		}
	}

	if got := prefixed.lines(t, 1); len(got) != 1 || !strings.HasSuffix(got[0], "\thome\tput\tbin\ta\\x00b\\xff\\tc\\n") {
		t.Errorf("--prefix b: %q", got)
	}
	for _, w := range []*runningWatch{text, js, prefixed} {
		if code := w.stop(t); code != 0 {
			t.Errorf("exit %d after the interrupt, want 0; stderr %q", code, w.stderr.String())
		}
		if n := strings.Count(w.stderr.String(), "\n"); n != 1 {
			t.Errorf("stderr has %d lines, want the start line only: %q", n, w.stderr.String())
		}
	}
}

func TestWatchFailures(t *testing.T) {
	d := startDaemon(t)
	d.ok(t, "table", "create", "t")
	fails(t, d.run(t, "", "watch", "nope"), 3, "no such table: nope (list the tables with: cortex table list)")
	fails(t, d.run(t, "", "watch", "t", "--from", "9"), 1, "offset 9 is past the end of the log of table t on home")
	fails(t, d.run(t, "", "watch"), 2, "missing TABLE")
	fails(t, runEnv(t, map[string]string{"CORTEX_SOCKET": "/nonexistent/s.sock"}, "", "watch", "t"), 5, "cannot reach cortexd")
	// --timeout bounds the start of the stream.
	slow := fakeDaemon(t, http.StatusOK, `{}`, 5*time.Second)
	start := time.Now()
	fails(t, slow.run(t, "", "--timeout", "100ms", "watch", "t"), 1, "no answer from cortexd")
	if time.Since(start) > 3*time.Second {
		t.Errorf("--timeout 100ms took %v", time.Since(start))
	}
}
