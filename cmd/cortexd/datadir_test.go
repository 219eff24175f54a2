package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/cortex-mesh/cortex/store"
)

func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func perm(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode()
}

// A new data directory is made 0700 with a regular 0600 LOCK holding the
// pid; a second lock on it fails naming that pid; an existing LOCK (left by
// an earlier run) is reused.
func TestLockDataDirCreates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "data")
	d, err := lockDataDir(path)
	if err != nil {
		t.Fatal(err)
	}
	if m := perm(t, path); !m.IsDir() || m.Perm() != 0o700 {
		t.Errorf("new data directory: %v, want a 0700 directory", m)
	}
	lock := filepath.Join(path, "LOCK")
	if m := perm(t, lock); !m.IsRegular() || m.Perm() != 0o600 {
		t.Errorf("LOCK: %v, want a regular 0600 file", m)
	}
	pid := strconv.Itoa(os.Getpid())
	if b, _ := os.ReadFile(lock); string(b) != pid+"\n" {
		t.Errorf("LOCK holds %q, want the pid", b)
	}
	if _, err := lockDataDir(path); err == nil || !strings.Contains(err.Error(), "in use by another cortexd (pid "+pid+")") {
		t.Errorf("second lock: %v", err)
	}
	if _, err := os.Lstat(lock); err != nil {
		t.Errorf("a refused second lock removed the LOCK it did not create: %v", err)
	}
	d.unlock()
	d, err = lockDataDir(path)
	if err != nil {
		t.Fatalf("relock with the LOCK of an earlier run: %v", err)
	}
	d.unlock()
}

// A data directory its group or others may write to is refused, with the
// path and the fix, and nothing is changed in it; one they may only read is
// accepted.
func TestLockDataDirRefusesWritableDir(t *testing.T) {
	for _, m := range []fs.FileMode{0o777, 0o770, 0o707, 0o720, 0o702, 0o777 | fs.ModeSticky} {
		path := filepath.Join(t.TempDir(), "data")
		if err := os.Mkdir(path, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, m); err != nil {
			t.Fatal(err)
		}
		want := "data directory " + path + " is writable by its group or others (mode " + "0" + strconv.FormatUint(uint64(m.Perm()), 8) +
			"): only the user cortexd runs as may write there (chmod 700 " + path + ")"
		if d, err := lockDataDir(path); err == nil || err.Error() != want {
			t.Errorf("mode %v: %v, %v; want %q", m, d, err, want)
		}
		if got := entries(t, path); len(got) != 0 {
			t.Errorf("mode %v: a refused start left %v", m, got)
		}
		if got := perm(t, path); got != m|fs.ModeDir {
			t.Errorf("mode %v changed to %v", m, got)
		}
	}
	for _, m := range []fs.FileMode{0o755, 0o750, 0o700} {
		path := filepath.Join(t.TempDir(), "data")
		os.Mkdir(path, 0o700)
		os.Chmod(path, m)
		d, err := lockDataDir(path)
		if err != nil {
			t.Errorf("mode %v refused: %v", m, err)
			continue
		}
		d.unlock()
	}
}

// A data directory that is a symbolic link is refused, saying which real
// path to give; nothing is written where it points. The real path works.
func TestLockDataDirRefusesSymlink(t *testing.T) {
	base := t.TempDir()
	realDir := filepath.Join(base, "real")
	if err := os.Mkdir(realDir, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(realDir, link); err != nil {
		t.Fatal(err)
	}
	want := "data directory " + link + " is a symbolic link to " + realDir + ": give the real path (--data-dir " + realDir + ")"
	for _, given := range []string{link, link + "/"} {
		if d, err := lockDataDir(given); err == nil || err.Error() != want {
			t.Errorf("%s: %v, %v; want %q", given, d, err, want)
		}
	}
	if got := entries(t, realDir); len(got) != 0 {
		t.Errorf("a refused start wrote %v through the link", got)
	}
	dangling := filepath.Join(base, "dangling")
	if err := os.Symlink(filepath.Join(base, "absent"), dangling); err != nil {
		t.Fatal(err)
	}
	if _, err := lockDataDir(dangling); err == nil || !strings.Contains(err.Error(), dangling+" is a symbolic link: give the real path") {
		t.Errorf("dangling link: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(base, "absent")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the dangling link's target was created: %v", err)
	}
	// A link higher up the path is not the data directory's concern.
	d, err := lockDataDir(filepath.Join(link, "sub"))
	if err != nil {
		t.Fatalf("a data directory under a linked parent: %v", err)
	}
	d.unlock()
	d, err = lockDataDir(realDir)
	if err != nil {
		t.Fatal(err)
	}
	d.unlock()

	file := filepath.Join(base, "file")
	os.WriteFile(file, nil, 0o600)
	if _, err := lockDataDir(file); err == nil || err.Error() != "data directory "+file+" is not a directory" {
		t.Errorf("a file as the data directory: %v", err)
	}
}

// A LOCK that is a symbolic link (to a file or to nothing) or not a regular
// file is refused, and nothing is written through the link.
func TestLockDataDirRefusesLockSymlink(t *testing.T) {
	base := t.TempDir()
	victim := filepath.Join(base, "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	absent := filepath.Join(base, "absent")
	for _, target := range []string{victim, absent} {
		path := filepath.Join(t.TempDir(), "data")
		os.Mkdir(path, 0o700)
		lock := filepath.Join(path, "LOCK")
		if err := os.Symlink(target, lock); err != nil {
			t.Fatal(err)
		}
		want := lock + " is a symbolic link: cortexd never writes through one; remove it (rm " + lock + ") and start again"
		if d, err := lockDataDir(path); err == nil || err.Error() != want {
			t.Errorf("LOCK -> %s: %v, %v; want %q", target, d, err, want)
		}
		if m := perm(t, lock); m&fs.ModeSymlink == 0 {
			t.Errorf("the LOCK link was replaced: %v", m)
		}
		if !slices.Equal(entries(t, path), []string{"LOCK"}) {
			t.Errorf("a refused start left %v", entries(t, path))
		}
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Errorf("written through the LOCK link: %q", b)
	}
	if _, err := os.Lstat(absent); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the dangling LOCK link's target was created: %v", err)
	}

	// A link planted after the check is refused by the open itself.
	lock := filepath.Join(t.TempDir(), "LOCK")
	os.Symlink(victim, lock)
	if _, _, err := openLock(lock); !errors.Is(err, syscall.ELOOP) {
		t.Errorf("openLock through a link: %v, want ELOOP", err)
	}

	for name, mk := range map[string]func(string) error{
		"directory": func(p string) error { return os.Mkdir(p, 0o700) },
		"fifo":      func(p string) error { return syscall.Mkfifo(p, 0o600) },
	} {
		path := filepath.Join(t.TempDir(), "data")
		os.Mkdir(path, 0o700)
		lock := filepath.Join(path, "LOCK")
		if err := mk(lock); err != nil {
			t.Fatal(err)
		}
		if _, err := lockDataDir(path); err == nil || !strings.Contains(err.Error(), lock+" is not a regular file") {
			t.Errorf("LOCK a %s: %v", name, err)
		}
	}
}

// release undoes what a refused start did: a directory it made goes; in
// one that was there, what it added goes, LOCK gets its old content back,
// and what was there stays.
func TestReleaseUndoesRefusedStart(t *testing.T) {
	made := filepath.Join(t.TempDir(), "made")
	d, err := lockDataDir(made)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(made, "NODE"), []byte("home\n"), 0o600)
	os.MkdirAll(filepath.Join(made, "tables", "cortex_meta-system"), 0o700)
	if err := d.release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(made); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a directory the start made is still there: %v", err)
	}

	old := t.TempDir()
	os.Chmod(old, 0o700)
	os.WriteFile(filepath.Join(old, "LOCK"), []byte("4242\n"), 0o600)
	os.WriteFile(filepath.Join(old, "NODE"), []byte("home\n"), 0o600)
	os.Mkdir(filepath.Join(old, "tables"), 0o700)
	if d, err = lockDataDir(old); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(old, "tables", "users-1"), 0o700) // inside an entry that was there: stays
	os.WriteFile(filepath.Join(old, "added"), nil, 0o600)
	if err := d.release(); err != nil {
		t.Fatal(err)
	}
	if got := entries(t, old); !slices.Equal(got, []string{"LOCK", "NODE", "tables"}) {
		t.Errorf("entries %v", got)
	}
	if b, _ := os.ReadFile(filepath.Join(old, "LOCK")); string(b) != "4242\n" {
		t.Errorf("LOCK holds %q, want the earlier run's 4242", b)
	}
	if got := entries(t, filepath.Join(old, "tables")); !slices.Equal(got, []string{"users-1"}) {
		t.Errorf("tables/: %v", got)
	}
	// Released means unlocked: the next start takes it.
	if d, err = lockDataDir(old); err != nil {
		t.Fatal(err)
	}
	d.unlock()
}

// A data directory gets an incarnation id at its first start and keeps it;
// a wiped one gets a new one; a damaged one is refused with what to do.
func TestDataDirIncarnation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data")
	d, err := lockDataDir(path)
	if err != nil {
		t.Fatal(err)
	}
	first, err := d.incarnation()
	if err != nil || store.ValidateIncarnation(first) != nil {
		t.Fatalf("first incarnation %q: %v", first, err)
	}
	again, err := d.incarnation()
	if err != nil || again != first {
		t.Fatalf("second start: %q %v, want %q", again, err, first)
	}
	d.unlock()
	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}
	d, err = lockDataDir(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.unlock()
	wiped, err := d.incarnation()
	if err != nil || wiped == first {
		t.Fatalf("wiped directory: %q %v, want a new incarnation", wiped, err)
	}
	if err := os.WriteFile(filepath.Join(path, "INCARNATION"), []byte("not-an-id\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := d.incarnation(); err == nil || !strings.Contains(err.Error(), "wipe the directory to rejoin as a new node") {
		t.Fatalf("damaged INCARNATION: %v", err)
	}
}
