package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/pki"
)

// TestMain runs cortexd's main instead of the tests when the test binary is
// started by cortexd (below) with CORTEXD_TEST_MAIN=1.
func TestMain(m *testing.M) {
	if os.Getenv("CORTEXD_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// cortexd runs the daemon (this test binary as main) with args and returns
// its exit code and standard error. It is for starts that must be refused:
// one that is not (cortexd logs that it is ready) is killed and fails the
// test, as is one still running after a minute.
func cortexd(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), "CORTEXD_TEST_MAIN=1")
	stderr := &readyWatch{ready: cancel}
	cmd.Stderr = stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatalf("cortexd %q was not refused: %s", args, stderr)
	}
	return cmd.ProcessState.ExitCode(), stderr.String()
}

// readyWatch collects a daemon's stderr and calls ready once it says the
// daemon is ready.
type readyWatch struct {
	mu    sync.Mutex
	b     bytes.Buffer
	ready func()
}

func (w *readyWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.Write(p)
	if strings.Contains(w.b.String(), "cortexd ready") {
		w.ready()
	}
	return len(p), nil
}

func (w *readyWatch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// A node key its group or others may read is refused: cortexd exits 1
// saying so, before it creates or locks the data directory.
func TestDaemonRefusesOpenKey(t *testing.T) {
	certs := t.TempDir()
	now := time.Now()
	if err := pki.CreateCA(certs, false, now); err != nil {
		t.Fatal(err)
	}
	if err := pki.CreateNodeCert(certs, "home", pki.RoleMember, nil, false, now); err != nil {
		t.Fatal(err)
	}
	crt, key := pki.NodeCertFiles(certs, "home")
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(t.TempDir(), "data")
	code, stderr := cortexd(t, "--data-dir", data, "--mesh-ca", filepath.Join(certs, "ca.crt"),
		"--mesh-cert", crt, "--mesh-key", key, "--mesh-listen", "127.0.0.1:0")
	want := "error: permissions 0644 for " + key + " are too open: the private key must be readable by its owner only (chmod 600 " + key + ")\n"
	if code != 1 || stderr != want {
		t.Errorf("exit %d, stderr %q; want exit 1, %q", code, stderr, want)
	}
	if _, err := os.Lstat(data); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused start created the data directory: %v", err)
	}
}

// cortexd refuses a data directory others may write to, one that is a
// symbolic link and a LOCK that is one: exit 1, the reason and the fix on
// stderr, nothing changed.
func TestDaemonRefusesUnsafeDataDir(t *testing.T) {
	base := t.TempDir()
	open := filepath.Join(base, "open")
	os.Mkdir(open, 0o700)
	os.Chmod(open, 0o777)
	realDir := filepath.Join(base, "real")
	os.Mkdir(realDir, 0o700)
	link := filepath.Join(base, "link")
	os.Symlink(realDir, link)
	lockLinked := filepath.Join(base, "locklinked")
	os.Mkdir(lockLinked, 0o700)
	victim := filepath.Join(base, "victim")
	os.WriteFile(victim, []byte("precious\n"), 0o600)
	os.Symlink(victim, filepath.Join(lockLinked, "LOCK"))
	for _, c := range []struct {
		dir, want string
	}{
		{open, "data directory " + open + " is writable by its group or others (mode 0777): only the user cortexd runs as may write there (chmod 700 " + open + ")"},
		{link, "data directory " + link + " is a symbolic link to " + realDir + ": give the real path (--data-dir " + realDir + ")"},
		{lockLinked, filepath.Join(lockLinked, "LOCK") + " is a symbolic link: cortexd never writes through one; remove it"},
	} {
		code, stderr := cortexd(t, "--data-dir", c.dir, "--node-name", "home")
		if code != 1 || !strings.HasPrefix(stderr, "error: "+c.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("--data-dir %s: exit %d, stderr %q; want exit 1 saying %q", c.dir, code, stderr, c.want)
		}
	}
	if got := entries(t, open); len(got) != 0 {
		t.Errorf("a refused start left %v in %s", got, open)
	}
	if got := entries(t, realDir); len(got) != 0 {
		t.Errorf("a refused start left %v through the link", got)
	}
	if got := entries(t, lockLinked); !slices.Equal(got, []string{"LOCK"}) {
		t.Errorf("a refused start left %v", got)
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Errorf("written through the LOCK link: %q", b)
	}
}
