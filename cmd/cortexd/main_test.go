package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
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
// its exit code and standard error. It is for starts that are refused: one
// that is not would serve until the test times out.
func cortexd(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "CORTEXD_TEST_MAIN=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), stderr.String()
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
