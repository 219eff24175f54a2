package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/store"
	"github.com/cortex-mesh/cortex/wal"
)

// dataDir is a data directory this process holds an exclusive lock on.
type dataDir struct {
	path string
	lock *os.File
	// For release: whether this process made the directory, and LOCK
	// (else prev is what LOCK held before: the pid of an earlier run), and
	// the other entries the directory held when it was locked.
	madeDir, created bool
	prev             []byte
	entries          map[string]bool
}

// lockDataDir checks the data directory, creates it (mode 0700) if it does
// not exist, and takes its lock, so that a second cortexd on the same
// directory fails at once. Refused, changing nothing: a data directory that
// is a symbolic link (give the real path: whoever may change the link may
// point the node at other data), that is not a directory, or that its group
// or others may write to (they could replace the node's files); a LOCK that
// is a symbolic link or not a regular file (LOCK is opened with O_NOFOLLOW,
// so a link planted between the check and the open is refused too). A LOCK
// this call created is removed again if the lock cannot be taken.
func lockDataDir(path string) (*dataDir, error) {
	madeDir, err := prepareDataDir(path)
	if err != nil {
		return nil, err
	}
	// A refused start removes the LOCK it made (release), perhaps just
	// after this process opened it: the lock then holds a file that is no
	// longer LOCK, and is taken again on the new one.
	for range 3 {
		d, err := lockOnce(path)
		if !errors.Is(err, errLockReplaced) {
			if d != nil {
				d.madeDir = madeDir
			}
			return d, err
		}
	}
	return nil, fmt.Errorf("data directory %s: %w three times: is another cortexd starting and failing there?", path, errLockReplaced)
}

var errLockReplaced = errors.New("LOCK was removed or replaced while it was being locked")

func lockOnce(path string) (*dataDir, error) {
	lockPath := filepath.Join(path, "LOCK")
	if fi, err := os.Lstat(lockPath); err == nil {
		if err := checkLockFile(lockPath, fi); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("data directory %s: %w", path, err)
	}
	f, created, err := openLock(lockPath)
	if errors.Is(err, syscall.ELOOP) {
		return nil, lockSymlinkError(lockPath)
	}
	if err != nil {
		return nil, fmt.Errorf("data directory %s: %w", path, err)
	}
	fail := func(err error) (*dataDir, error) {
		f.Close()
		if created {
			os.Remove(lockPath)
		}
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		return fail(fmt.Errorf("data directory %s: %w", path, err))
	}
	if err := checkLockFile(lockPath, fi); err != nil {
		return fail(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			// Another process holds this very file: never remove it.
			pid, _ := io.ReadAll(f)
			f.Close()
			return nil, fmt.Errorf("data directory %s is in use by another cortexd (pid %s); stop it first or use another --data-dir",
				path, strings.TrimSpace(string(pid)))
		}
		return fail(fmt.Errorf("data directory %s: lock: %w", path, err))
	}
	if now, err := os.Lstat(lockPath); err != nil || !os.SameFile(fi, now) {
		f.Close() // not LOCK any more: whoever replaced it owns the new one
		return nil, errLockReplaced
	}
	d := &dataDir{path: path, lock: f, created: created, entries: map[string]bool{}}
	if !created {
		d.prev, _ = io.ReadAll(io.LimitReader(f, 64))
	}
	des, err := os.ReadDir(path)
	if err != nil {
		f.Close() // a LOCK this call made stays: the directory cannot be read to check it is the only new entry
		return nil, fmt.Errorf("data directory %s: %w", path, err)
	}
	for _, de := range des {
		d.entries[de.Name()] = true
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return d, nil
}

// prepareDataDir creates the data directory (mode 0700) if it does not
// exist and checks what is there. Only the last element of path is checked
// for a symbolic link: links higher up (/var -> /private/var) are the
// system's, and one whose owner is not trusted cannot be told apart here.
func prepareDataDir(path string) (made bool, err error) {
	// Clean drops a trailing slash, with which lstat would follow a link.
	path = filepath.Clean(path)
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(path, 0o700); err != nil {
			return false, fmt.Errorf("data directory %s: %w", path, err)
		}
		made = true
	} else if err != nil {
		return false, fmt.Errorf("data directory %s: %w", path, err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return made, fmt.Errorf("data directory %s: %w", path, err)
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		if target, err := filepath.EvalSymlinks(path); err == nil {
			return made, fmt.Errorf("data directory %s is a symbolic link to %s: give the real path (--data-dir %s)", path, target, target)
		}
		return made, fmt.Errorf("data directory %s is a symbolic link: give the real path of the directory", path)
	case !fi.IsDir():
		return made, fmt.Errorf("data directory %s is not a directory", path)
	case fi.Mode().Perm()&0o022 != 0:
		return made, fmt.Errorf("data directory %s is writable by its group or others (mode %04o): only the user cortexd runs as may write there (chmod 700 %s)",
			path, fi.Mode().Perm(), path)
	}
	return made, nil
}

// openLock opens LOCK without following a symbolic link, creating it if
// needed; created says whether this call made it.
func openLock(path string) (f *os.File, created bool, err error) {
	f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err == nil {
		return f, true, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return nil, false, err
	}
	f, err = os.OpenFile(path, os.O_RDWR|syscall.O_NOFOLLOW, 0)
	return f, false, err
}

// checkLockFile refuses a LOCK that is a symbolic link or not a regular file.
func checkLockFile(path string, fi fs.FileInfo) error {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return lockSymlinkError(path)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file (mode %s): remove it and start again", path, fi.Mode())
	}
	return nil
}

func lockSymlinkError(path string) error {
	return fmt.Errorf("%s is a symbolic link: cortexd never writes through one; remove it (rm %s) and start again", path, path)
}

// unlock lets the directory go after a run: LOCK stays, holding the pid
// of the run (cortex-wal and the next cortexd lock it again).
func (d *dataDir) unlock() { d.lock.Close() }

// release lets the directory go after a refused start, as it was before,
// while still holding the lock (so that no other process is in it): the
// entries the start added (NODE, tables/ in a new directory) are removed,
// a LOCK it made too, one that was there gets its old content back, and a
// directory it made is removed. Whatever was there before is not touched.
func (d *dataDir) release() error {
	defer d.lock.Close()
	des, err := os.ReadDir(d.path)
	if err != nil {
		return fmt.Errorf("data directory %s: %w", d.path, err)
	}
	var errs []error
	for _, de := range des {
		if name := de.Name(); name != "LOCK" && !d.entries[name] {
			errs = append(errs, os.RemoveAll(filepath.Join(d.path, name)))
		}
	}
	if d.created {
		errs = append(errs, os.Remove(filepath.Join(d.path, "LOCK")))
		if d.madeDir {
			errs = append(errs, os.Remove(d.path))
		}
	} else {
		errs = append(errs, d.lock.Truncate(0))
		_, err := d.lock.WriteAt(d.prev, 0)
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("data directory %s: undoing a refused start: %w", d.path, err)
	}
	return nil
}

// nodeName settles this node's name: the one stored in the directory, which
// a different --node-name may not change (every record written here carries
// it); else the one given; else the host name made into a valid node name.
func (d *dataDir) nodeName(given string) (string, error) {
	path := filepath.Join(d.path, "NODE")
	b, err := os.ReadFile(path)
	if err == nil {
		stored := strings.TrimSpace(string(b))
		if given != "" && given != stored {
			return "", fmt.Errorf("data directory %s belongs to node %q, not %q", d.path, stored, given)
		}
		return stored, scope.ValidateNodeName(stored)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	name := given
	if name == "" {
		host, _ := os.Hostname()
		name = hostNodeName(host)
	}
	if err := scope.ValidateNodeName(name); err != nil {
		return "", err
	}
	err = wal.WriteFileAtomic(path, func(w io.Writer) error {
		_, err := io.WriteString(w, name+"\n")
		return err
	})
	return name, err
}

// hostNodeName turns a host name into a valid node name.
func hostNodeName(host string) string {
	host, _, _ = strings.Cut(strings.ToLower(host), ".")
	var b strings.Builder
	for _, c := range host {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			b.WriteRune(c)
		default:
			b.WriteByte('-')
		}
	}
	name := strings.TrimLeft(b.String(), "-_")
	if len(name) > 63 {
		name = name[:63]
	}
	if name == "" {
		name = "node"
	}
	return name
}

// incarnation returns the id of this data directory (INCARNATION), made
// the first time a node starts in it: a wiped data directory gets a new
// one, so the mesh tells a node that lost its data (and rejoins) from one
// it forgot coming back with its old data (docs/lifecycle.md).
func (d *dataDir) incarnation() (string, error) {
	path := filepath.Join(d.path, "INCARNATION")
	b, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if err := store.ValidateIncarnation(id); err != nil {
			return "", fmt.Errorf("%s: %w (it is made by cortexd: restore it from a backup of the directory, or wipe the directory to rejoin as a new node)", path, err)
		}
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("data directory %s: %w", d.path, err)
	}
	id := store.NewIncarnation()
	err = wal.WriteFileAtomic(path, func(w io.Writer) error {
		_, err := io.WriteString(w, id+"\n")
		return err
	})
	if err != nil {
		return "", fmt.Errorf("data directory %s: write INCARNATION: %w", d.path, err)
	}
	return id, nil
}
