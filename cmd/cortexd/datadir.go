package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"io"

	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/wal"
)

// dataDir is a data directory this process holds an exclusive lock on.
type dataDir struct {
	path string
	lock *os.File
}

// lockDataDir creates the directory if needed and takes its lock, so that a
// second cortexd on the same directory fails at once.
func lockDataDir(path string) (*dataDir, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("data directory %s: %w", path, err)
	}
	f, err := os.OpenFile(filepath.Join(path, "LOCK"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data directory %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		pid, _ := io.ReadAll(f)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data directory %s is in use by another cortexd (pid %s); stop it first or use another --data-dir",
				path, strings.TrimSpace(string(pid)))
		}
		return nil, fmt.Errorf("data directory %s: lock: %w", path, err)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return &dataDir{path: path, lock: f}, nil
}

func (d *dataDir) unlock() { d.lock.Close() }

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
