package pki

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// checkFree returns ErrExists if any of paths exists, unless overwrite. A
// path that is a symbolic link exists, even if its target does not: it is
// never written through (writeFile replaces the link itself).
func checkFree(overwrite bool, paths ...string) error {
	if overwrite {
		return nil
	}
	for _, p := range paths {
		_, err := os.Lstat(p)
		if err == nil {
			return fmt.Errorf("%w: %s (use --overwrite to replace it)", ErrExists, p)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// writeFile replaces path with data, with the mode given whatever the umask,
// so that after a crash path holds either its old content or all of the new.
// The temporary file is a new one with a random name made with O_EXCL, so a
// symbolic link planted in the directory is never followed; the rename
// replaces whatever path is (a symbolic link included) and never writes
// through it.
//
// wal.WriteFileAtomic does the same for the data directory, but pki imports
// nothing of the project, so it keeps this small copy.
func writeFile(path string, data []byte, mode os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	closed := false
	defer func() {
		if err != nil {
			if !closed {
				f.Close()
			}
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	closed = true
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir fsyncs a directory so that a rename in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ErrKeyTooOpen is returned (wrapped in a message naming the file and the
// fix) for a private key file that its group or others may read or write.
var ErrKeyTooOpen = errors.New("private key file too open")

type keyModeError struct {
	path string
	mode fs.FileMode
}

func (e *keyModeError) Error() string {
	return fmt.Sprintf("permissions %04o for %s are too open: the private key must be readable by its owner only (chmod 600 %s)",
		e.mode.Perm(), e.path, e.path)
}

func (e *keyModeError) Unwrap() error { return ErrKeyTooOpen }

// readKey reads a private key file, refusing it, as ssh does, if its mode
// gives its group or others any access. The mode checked is that of the file
// read (fstat of the open file): a key that is a symbolic link to a 0600 file
// is accepted, since a link's own mode means nothing and whoever may replace
// the link may as well replace a key file in the same directory.
func readKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, &keyModeError{path: path, mode: fi.Mode()}
	}
	return io.ReadAll(f)
}

// LoadKeyPair is tls.LoadX509KeyPair, but it refuses a key file that its
// group or others may read or write (ErrKeyTooOpen).
func LoadKeyPair(certPath, keyPath string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyPEM, err := readKey(keyPath)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}
