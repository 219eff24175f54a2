package integration

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cortex bench replication times each write by the watch on --to; when the
// --to node stops delivering (its process frozen with SIGSTOP, so the watch
// stream stays open but carries nothing), the run stops after --wait with
// an error naming the write and the node, instead of waiting for ever.
// When the --to node goes away, the end of its stream stops the run.
func TestBenchReplicationReceiverStalls(t *testing.T) {
	for _, c := range []struct {
		name   string
		signal syscall.Signal
		code   int
		want   string
	}{
		{"frozen", syscall.SIGSTOP, 1, "was not delivered by b 2s after it was sent"},
		{"killed", syscall.SIGKILL, 5, "the watch stream broke off"},
	} {
		t.Run(c.name, func(t *testing.T) {
			nodes := meshOfN(t, 2, 30*time.Second)
			a, b := nodes[0], nodes[1]
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, filepath.Join(bin, "cortex"), "--socket", a.socket,
				"bench", "replication", "--to", b.socket, "--n", "1000000", "--rate", "500", "--wait", "2s")
			var stdout, stderr syncBuffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			// The run is under way once b holds some of its writes.
			pollUntil(t, time.Minute, "b receives the bench's writes", func() (bool, string) {
				keys, err := b.heldKeys(ctx, "bench")
				return err == nil && keys >= 100, "keys: " + strings.TrimSpace(stderr.String())
			})
			if c.signal == syscall.SIGKILL {
				b.kill() // and reaps it
			} else {
				if err := b.cmd.Process.Signal(c.signal); err != nil {
					t.Fatal(err)
				}
				defer b.cmd.Process.Signal(syscall.SIGCONT)
			}
			var err error
			select {
			case err = <-done:
			case <-time.After(time.Minute):
				t.Fatalf("bench replication still running a minute after b was sent %s", c.signal)
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != c.code || !strings.Contains(stderr.String(), c.want) {
				t.Fatalf("bench replication: %v, want exit %d with %q\nstdout: %s\nstderr: %s", err, c.code, c.want, stdout.String(), stderr.String())
			}
		})
	}
}
