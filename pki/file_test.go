package pki

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
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

func tooOpen(path string, mode os.FileMode) string {
	return fmt.Sprintf("permissions %04o for %s are too open: the private key must be readable by its owner only (chmod 600 %s)", mode, path, path)
}

// A key file its group or others may read or write is refused when loaded,
// as ssh does; the error names the file, its mode and the fix.
func TestLoadIdentityRefusesOpenKey(t *testing.T) {
	dir := newCA(t, t0)
	nodeCert(t, dir, "home")
	clientCert(t, dir, "alice")
	homeCrt, homeKey := NodeCertFiles(dir, "home")
	aliceCrt, aliceKey := ClientCertFiles(dir, "alice")
	for _, m := range []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o620, 0o602, 0o601, 0o610, 0o666} {
		for _, c := range []struct {
			crt, key string
			kind     Kind
		}{{homeCrt, homeKey, KindNode}, {aliceCrt, aliceKey, KindClient}} {
			if err := os.Chmod(c.key, m); err != nil {
				t.Fatal(err)
			}
			id, err := LoadIdentity(c.crt, c.key, c.kind)
			if id != nil || !errors.Is(err, ErrKeyTooOpen) || err.Error() != tooOpen(c.key, m) {
				t.Errorf("%s mode %04o: %+v, %v; want %q", filepath.Base(c.key), m, id, err, tooOpen(c.key, m))
			}
		}
	}
	for _, m := range []os.FileMode{0o600, 0o400} {
		os.Chmod(homeKey, m)
		if _, err := LoadIdentity(homeCrt, homeKey, KindNode); err != nil {
			t.Errorf("mode %04o refused: %v", m, err)
		}
	}
	// A symbolic link is judged by the file it points to.
	os.Chmod(homeKey, 0o600)
	link := filepath.Join(t.TempDir(), "home.key")
	if err := os.Symlink(homeKey, link); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadIdentity(homeCrt, link, KindNode); err != nil {
		t.Errorf("a link to a 0600 key: %v", err)
	}
	os.Chmod(homeKey, 0o644)
	if _, err := LoadIdentity(homeCrt, link, KindNode); err == nil || err.Error() != tooOpen(link, 0o644) {
		t.Errorf("a link to a 0644 key: %v", err)
	}
	// Not a regular file.
	if _, err := LoadIdentity(homeCrt, dir, KindNode); err == nil || !strings.Contains(err.Error(), dir+" is not a regular file") {
		t.Errorf("a directory as the key: %v", err)
	}
	// LoadKeyPair, for callers that need no mesh kind, checks the same.
	if _, err := LoadKeyPair(homeCrt, homeKey); !errors.Is(err, ErrKeyTooOpen) {
		t.Errorf("LoadKeyPair of a 0644 key: %v", err)
	}
}

// Issuing certificates refuses a CA key its group or others may read or
// write, and writes nothing.
func TestIssueRefusesOpenCAKey(t *testing.T) {
	dir := newCA(t, t0)
	if err := os.Chmod(caKeyPath(dir), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, create := range []func() error{
		func() error { return CreateNodeCert(dir, "home", RoleMember, nil, false, t0) },
		func() error { return CreateClientCert(dir, "alice", false, t0) },
	} {
		if err := create(); !errors.Is(err, ErrKeyTooOpen) || err.Error() != tooOpen(caKeyPath(dir), 0o644) {
			t.Errorf("issuing with a 0644 CA key: %v", err)
		}
	}
	if got := names(t, dir); !slices.Equal(got, []string{"ca.crt", "ca.key"}) {
		t.Errorf("a refused issue wrote files: %v", got)
	}
	os.Chmod(caKeyPath(dir), 0o600)
	if err := CreateClientCert(dir, "alice", false, t0); err != nil {
		t.Errorf("issuing with a 0600 CA key: %v", err)
	}
}
