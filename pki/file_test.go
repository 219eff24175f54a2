package pki

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// victim is a file outside the certificate directory that a planted symbolic
// link points to; it must never be written.
func victim(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(path, []byte("not a key\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func assertUntouched(t *testing.T, path string) {
	t.Helper()
	if b, err := os.ReadFile(path); err != nil || string(b) != "not a key\n" {
		t.Errorf("%s was written through a symbolic link: %q %v", path, b, err)
	}
}

// assertRegular checks that path is a regular file (not a link) of mode want.
func assertRegular(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != want {
		t.Errorf("%s: %v, want a regular file of mode %o", filepath.Base(path), fi.Mode(), want)
	}
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, e := range entries {
		n = append(n, e.Name())
	}
	return n
}

// Symbolic links planted at the temporary names the writer once used
// (KEY.tmp) are not followed: the key lands in the directory.
func TestPlantedTempSymlinkNotFollowed(t *testing.T) {
	dir := newCA(t, t0)
	crt, key := NodeCertFiles(dir, "home")
	v := victim(t)
	for _, p := range []string{crt + ".tmp", key + ".tmp", caCertPath(dir) + ".tmp", caKeyPath(dir) + ".tmp"} {
		if err := os.Symlink(v, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := CreateNodeCert(dir, "home", RoleMember, nil, false, t0); err != nil {
		t.Fatal(err)
	}
	if err := CreateCA(dir, true, t0); err != nil {
		t.Fatal(err)
	}
	assertUntouched(t, v)
	assertRegular(t, key, 0o600)
	assertRegular(t, crt, 0o644)
	assertRegular(t, caKeyPath(dir), 0o600)
	assertRegular(t, caCertPath(dir), 0o644)
	want := []string{"ca.crt", "ca.crt.tmp", "ca.key", "ca.key.tmp", "node-home.crt", "node-home.crt.tmp", "node-home.key", "node-home.key.tmp"}
	if got := names(t, dir); !slices.Equal(got, want) {
		t.Errorf("directory holds %v, want %v (no temporary file left behind)", got, want)
	}
}

// A symbolic link at the target itself counts as an existing file (even a
// dangling one), and --overwrite replaces the link, never what it points to.
func TestSymlinkedTargetReplacedNotWrittenThrough(t *testing.T) {
	dir := newCA(t, t0)
	crt, key := NodeCertFiles(dir, "home")
	v := victim(t)
	dangling := filepath.Join(t.TempDir(), "absent")
	if err := os.Symlink(v, key); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(dangling, crt); err != nil {
		t.Fatal(err)
	}
	if err := CreateNodeCert(dir, "home", RoleMember, nil, false, t0); !errors.Is(err, ErrExists) {
		t.Fatalf("symbolic links at the targets without --overwrite: %v, want ErrExists", err)
	}
	cCrt, cKey := ClientCertFiles(dir, "alice")
	if err := os.Symlink(dangling, cKey); err != nil {
		t.Fatal(err)
	}
	if err := CreateClientCert(dir, "alice", false, t0); !errors.Is(err, ErrExists) {
		t.Fatalf("a dangling symbolic link at the key without --overwrite: %v, want ErrExists", err)
	}
	if _, err := os.Lstat(dangling); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the dangling link's target was created: %v", err)
	}
	if _, err := os.Lstat(cCrt); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused create wrote the certificate: %v", err)
	}

	if err := CreateNodeCert(dir, "home", RoleMember, nil, true, t0); err != nil {
		t.Fatal(err)
	}
	assertUntouched(t, v)
	if _, err := os.Lstat(dangling); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the dangling link's target was created: %v", err)
	}
	assertRegular(t, key, 0o600)
	assertRegular(t, crt, 0o644)
	if _, err := LoadIdentity(crt, key, KindNode); err != nil {
		t.Errorf("the new pair: %v", err)
	}
}

// A write that fails leaves no temporary file behind and the target as it
// was.
func TestWriteFileFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "k")
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(target, []byte("x"), 0o600); err == nil {
		t.Fatal("rename over a directory succeeded")
	}
	if got := names(t, dir); !slices.Equal(got, []string{"k"}) {
		t.Errorf("directory holds %v after a failed write", got)
	}
	if fi, err := os.Lstat(target); err != nil || !fi.IsDir() {
		t.Errorf("target changed: %v %v", fi, err)
	}
}
