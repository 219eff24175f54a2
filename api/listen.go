package api

import (
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// ListenUnix listens on a Unix socket at path, readable and writable only by
// its owner (mode 0600). A socket file left by a crashed daemon is replaced;
// one that still answers is an error.
func ListenUnix(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("listen %s: the path exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("listen %s: another cortexd is serving this socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("listen %s: remove stale socket: %w", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	// The socket is made 0600 right after it is created. (Not by changing
	// the umask around it: the umask is the process's, and other goroutines
	// create files and directories meanwhile.) Until the chmod it has the
	// umask's mode, which with any usual umask lets no one else write to it,
	// and connecting needs write permission.
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	return l, nil
}
