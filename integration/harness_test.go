// Package integration runs real cortexd and cortex binaries: each test
// starts daemons in temporary directories and drives them through the CLI or
// the Go client over their Unix sockets.
package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/api"
)

// bin holds the binaries built once for the whole test run.
var bin string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "cortex-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// The daemon is built with the race detector when the tests run with
	// it; the CLIs, started once per command, without (they start 10x faster).
	daemon := []string{"build", "-o", dir + "/"}
	if raceEnabled {
		daemon = append(daemon, "-race")
	}
	for _, args := range [][]string{append(daemon, "../cmd/cortexd"), {"build", "-o", dir + "/", "../cmd/cortex", "../cmd/cortex-wal"}} {
		cmd := exec.Command("go", args...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building the binaries:", err)
			return 1
		}
	}
	bin = dir
	return m.Run()
}

// node is one cortexd process.
type node struct {
	t      testing.TB
	name   string
	dir    string // data directory
	socket string
	args   []string
	// meshAddr is the mesh listen address (mesh mode only).
	meshAddr string
	// netns, if set, is the network namespace cortexd runs in
	// (ip netns exec); its socket stays reachable through the filesystem.
	netns  string
	cmd    *exec.Cmd
	logs   *syncBuffer
	exited chan error
}

// newNode prepares a node with its own data directory; start runs it.
// Socket paths must stay short, so the directory lives under /tmp.
func newNode(t testing.TB, name string, extra ...string) *node {
	t.Helper()
	dir, err := os.MkdirTemp("", "cx-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	n := &node{t: t, name: name, dir: filepath.Join(dir, "data"), socket: filepath.Join(dir, "s.sock")}
	n.args = append([]string{"--data-dir", n.dir, "--node-name", name, "--socket", n.socket}, extra...)
	return n
}

// start runs cortexd and waits until its socket answers.
func (n *node) start() {
	n.t.Helper()
	if err := n.startNoWait(); err != nil {
		n.t.Fatal(err)
	}
	n.waitReady()
}

func (n *node) startNoWait() error {
	n.logs = &syncBuffer{}
	name, args := filepath.Join(bin, "cortexd"), n.args
	if n.netns != "" {
		// ip netns exec execs cortexd in place: the process is cortexd.
		name, args = "ip", append([]string{"netns", "exec", n.netns, name}, args...)
	}
	n.cmd = exec.Command(name, args...)
	n.cmd.Stdout, n.cmd.Stderr = n.logs, n.logs
	if err := n.cmd.Start(); err != nil {
		return err
	}
	n.exited = make(chan error, 1)
	go func(cmd *exec.Cmd, exited chan error) { exited <- cmd.Wait() }(n.cmd, n.exited)
	n.t.Cleanup(func() {
		if n.cmd.ProcessState == nil {
			n.cmd.Process.Kill()
			<-n.exited
		}
	})
	return nil
}

func (n *node) waitReady() {
	n.t.Helper()
	c := n.client()
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.NodeStatus(ctx)
		cancel()
		if err == nil {
			return
		}
		select {
		case err := <-n.exited:
			n.t.Fatalf("cortexd %s exited before it was ready: %v\n%s", n.name, err, n.logs)
		default:
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("cortexd %s not ready after 20s: %v\n%s", n.name, err, n.logs)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

// kill stops the process with SIGKILL, as a crash would.
func (n *node) kill() {
	n.t.Helper()
	n.cmd.Process.Kill()
	<-n.exited
}

// stop sends SIGTERM and returns the exit error (nil for exit 0).
func (n *node) stop() error {
	n.t.Helper()
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-n.exited:
		return err
	case <-time.After(30 * time.Second):
		n.cmd.Process.Kill()
		n.t.Fatalf("cortexd %s did not stop within 30s after SIGTERM\n%s", n.name, n.logs)
		return nil
	}
}

func (n *node) client() *api.Client { return api.Dial(n.socket) }

// result is what one CLI run printed and its exit code.
type result struct {
	stdout, stderr string
	code           int
}

// cli runs the cortex binary against this node.
func (n *node) cli(args ...string) result {
	return n.cliIn("", args...)
}

func (n *node) cliIn(stdin string, args ...string) result {
	n.t.Helper()
	cmd := exec.Command(filepath.Join(bin, "cortex"), append([]string{"--socket", n.socket}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		n.t.Fatalf("run cortex %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

// must runs the CLI and fails the test unless it exits 0.
func (n *node) must(args ...string) string {
	n.t.Helper()
	r := n.cli(args...)
	if r.code != 0 {
		n.t.Fatalf("cortex %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}
