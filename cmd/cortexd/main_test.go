package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
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

// A refused start leaves the data directory as it found it: a new one is
// removed again; in one that was there, a LOCK of an earlier run keeps its
// content and nothing is added (no LOCK, no NODE, no tables/); the LOCK
// of a running cortexd is never touched. Each is refused at a different
// step: a port taken (after the tables are open), a socket that cannot be
// made, a certificate that cannot be read, a directory in use.
func TestRefusedStartLeavesNoLock(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	base := t.TempDir()
	earlier := func(name string) string { // a data directory an earlier run left
		dir := filepath.Join(base, name)
		os.Mkdir(dir, 0o700)
		os.WriteFile(filepath.Join(dir, "LOCK"), []byte("4242\n"), 0o600)
		os.WriteFile(filepath.Join(dir, "keep"), []byte("x"), 0o600)
		return dir
	}
	empty := filepath.Join(base, "empty")
	os.Mkdir(empty, 0o700)
	for _, c := range []struct {
		name string
		dir  string
		args []string
		want string
	}{
		{"new dir, port taken", filepath.Join(base, "new1"), []string{"--metrics-listen", busy.Addr().String()}, busy.Addr().String()},
		{"new dir, no socket", filepath.Join(base, "new2"), []string{"--socket", filepath.Join(base, "none", "s.sock")}, "bind: no such file or directory"},
		{"earlier LOCK, port taken", earlier("old1"), []string{"--metrics-listen", busy.Addr().String()}, busy.Addr().String()},
		{"earlier LOCK, bad certificate path", earlier("old2"), []string{"--mesh-ca", filepath.Join(base, "ca.crt"),
			"--mesh-cert", filepath.Join(base, "none.crt"), "--mesh-key", filepath.Join(base, "none.key"), "--mesh-listen", "127.0.0.1:0"}, "none.crt"},
		{"empty dir, port taken", empty, []string{"--metrics-listen", busy.Addr().String()}, busy.Addr().String()},
	} {
		t.Run(c.name, func(t *testing.T) {
			var before []string
			var lock []byte
			_, err := os.Stat(c.dir)
			existed := err == nil
			if existed {
				before = entries(t, c.dir)
				lock, _ = os.ReadFile(filepath.Join(c.dir, "LOCK"))
			}
			code, stderr := cortexd(t, append([]string{"--data-dir", c.dir, "--node-name", "home"}, c.args...)...)
			lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n") // the log, then the error
			if last := lines[len(lines)-1]; code != 1 || !strings.HasPrefix(last, "error: ") || !strings.Contains(last, c.want) {
				t.Fatalf("exit %d, stderr %q; want exit 1 saying %q", code, stderr, c.want)
			}
			if !existed {
				if _, err := os.Lstat(c.dir); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("the refused start left the data directory it made: %v %v", err, entries(t, c.dir))
				}
				return
			}
			if got := entries(t, c.dir); !slices.Equal(got, before) {
				t.Errorf("entries %v, were %v", got, before)
			}
			if got, _ := os.ReadFile(filepath.Join(c.dir, "LOCK")); !bytes.Equal(got, lock) {
				t.Errorf("LOCK holds %q, held %q", got, lock)
			}
		})
	}
	// A directory a running cortexd holds (here: this process, through the
	// same lock): refused, and its LOCK stays, locked, with its pid.
	held := filepath.Join(base, "held")
	d, err := lockDataDir(held)
	if err != nil {
		t.Fatal(err)
	}
	defer d.unlock()
	pid := strconv.Itoa(os.Getpid())
	code, stderr := cortexd(t, "--data-dir", held, "--node-name", "home")
	if want := "in use by another cortexd (pid " + pid + ")"; code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("exit %d, stderr %q; want exit 1 saying %q", code, stderr, want)
	}
	if b, err := os.ReadFile(filepath.Join(held, "LOCK")); err != nil || string(b) != pid+"\n" {
		t.Errorf("the running cortexd's LOCK: %q, %v", b, err)
	}
	if _, err := lockDataDir(held); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("the LOCK is no longer locked: %v", err)
	}
}

// cortexd --help and --version, as a script sees them: stdout, exit 0.
func TestDaemonHelpBinary(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"--version"}, {"completion", "bash"}} {
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), "CORTEXD_TEST_MAIN=1")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil || errb.Len() != 0 || out.Len() == 0 {
			t.Errorf("cortexd %s: %v, stderr %q, %d bytes on stdout", args, err, errb.String(), out.Len())
		}
	}
	if code, stderr := cortexd(t, "--nope"); code != 2 || stderr != "error: unknown flag: --nope (see: cortexd --help)\n" {
		t.Errorf("--nope: exit %d, %q", code, stderr)
	}
}
