package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"

	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
)

// dataDir is a data directory opened for reading: whether cortexd holds it,
// and the shared lock cortex-wal holds while it reads a stopped node's files.
type dataDir struct {
	path string
	live bool // cortexd holds the directory and --live was given
	lock *os.File
}

// openDataDir checks that path is a data directory and that no cortexd
// holds it: a shared, non-blocking flock on DATA_DIR/LOCK (opened read-only,
// never created) fails while cortexd holds its exclusive one. With --live a
// held directory is read anyway, with a warning. The shared lock is kept
// until close, so that a cortexd starting meanwhile cannot cut a torn tail
// or truncate the log under the reader.
func (a *app) openDataDir(path string) (*dataDir, error) {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("data directory %s does not exist", path)
		}
		return nil, fmt.Errorf("data directory %s: %w", path, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory: give a cortex data directory", path)
	}
	if _, err := os.Stat(filepath.Join(path, "tables")); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s has no tables directory: not a cortex data directory (cortexd --data-dir)", path)
		}
		return nil, fmt.Errorf("data directory %s: %w", path, err)
	}
	d := &dataDir{path: path}
	lockPath := filepath.Join(path, "LOCK")
	var f *os.File
	for try := 0; ; try++ {
		f, err = os.Open(lockPath) // read-only: never created
		if errors.Is(err, os.ErrNotExist) {
			return d, nil // no cortexd ever ran here
		}
		if err != nil {
			return nil, fmt.Errorf("cannot check whether cortexd runs on %s: %w", path, err)
		}
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
		if err != nil {
			break
		}
		// A cortexd whose start was refused removes the LOCK it made: the
		// lock is on a file that may no longer be LOCK. Look again.
		opened, serr := f.Stat()
		now, lerr := os.Lstat(lockPath)
		if serr == nil && lerr == nil && os.SameFile(opened, now) {
			d.lock = f
			return d, nil
		}
		f.Close()
		if try == 2 {
			return nil, fmt.Errorf("cannot check whether cortexd runs on %s: %s keeps being replaced", path, lockPath)
		}
	}
	if !errors.Is(err, syscall.EWOULDBLOCK) {
		f.Close()
		return nil, fmt.Errorf("cannot check whether cortexd runs on %s: lock %s: %w", path, lockPath, err)
	}
	pid, _ := io.ReadAll(io.LimitReader(f, 32))
	f.Close()
	who := "a running cortexd"
	if p := strings.TrimSpace(string(pid)); p != "" {
		who += " (pid " + p + ")"
	}
	if !a.live {
		return nil, fmt.Errorf("data directory %s is in use by %s: stop it first, or give --live to read the live log (its last entry may be an append in progress)", path, who)
	}
	a.warnf("data directory %s is in use by %s: reading a live log (--live); the last entry may be an append in progress, reported as \"torn tail (in progress)\", and segments may be truncated while they are read", path, who)
	d.live = true
	return d, nil
}

func (d *dataDir) close() {
	if d.lock != nil {
		d.lock.Close()
	}
}

// tableCopy is one directory of DATA_DIR/tables: <name>-<id>.
type tableCopy struct {
	Dir  string // the directory's name
	Name string // the table's name
	ID   string // the table's id ("system" for system tables)
	Path string // DATA_DIR/tables/<dir>
}

// copies lists the table copies of the data directory: system tables
// first, then by name and directory.
func (d *dataDir) copies() ([]tableCopy, error) {
	tdir := filepath.Join(d.path, "tables")
	des, err := os.ReadDir(tdir)
	if err != nil {
		return nil, err
	}
	var out []tableCopy
	for _, de := range des {
		if !de.IsDir() {
			continue
		}
		// Table names hold no '-' ([a-z][a-z0-9_]*): the id follows the first.
		name, id, _ := strings.Cut(de.Name(), "-")
		out = append(out, tableCopy{Dir: de.Name(), Name: name, ID: id, Path: filepath.Join(tdir, de.Name())})
	}
	// System tables in the order cortexd opens them, then the rest.
	rank := func(c tableCopy) int {
		if i := slices.Index(scope.SystemTables, c.Name); i >= 0 {
			return i
		}
		return len(scope.SystemTables)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if ri, rj := rank(out[i]), rank(out[j]); ri != rj {
			return ri < rj
		}
		return out[i].Dir < out[j].Dir
	})
	return out, nil
}

// find picks the copy named by arg: its directory name, or its table name
// if exactly one copy has it.
func (d *dataDir) find(arg string) (tableCopy, error) {
	all, err := d.copies()
	if err != nil {
		return tableCopy{}, err
	}
	var byName []tableCopy
	for _, c := range all {
		if c.Dir == arg {
			return c, nil
		}
		if c.Name == arg {
			byName = append(byName, c)
		}
	}
	switch len(byName) {
	case 1:
		return byName[0], nil
	case 0:
		return tableCopy{}, fmt.Errorf("no copy of table %q in %s (list them with: cortex-wal ls %s)", arg, filepath.Join(d.path, "tables"), d.path)
	}
	dirs := make([]string, len(byName))
	for i, c := range byName {
		dirs[i] = c.Dir
	}
	return tableCopy{}, fmt.Errorf("%d copies of table %q in %s (a dropped table's leftover?): %s; name one by its directory", len(byName), arg, filepath.Join(d.path, "tables"), strings.Join(dirs, ", "))
}

// copyReport is what inspecting one table copy found.
type copyReport struct {
	tableCopy
	info *wal.LogInfo // nil when err is set
	err  error        // the log could not be read at all

	ckptPath   string // newest checkpoint file, "" if none
	ckptOffset uint64
}

func (c tableCopy) walDir() string { return filepath.Join(c.Path, "wal") }

// inspect reads a copy's whole log (wal.Reader.Inspect) and finds its newest
// checkpoint (by name; verify decodes it).
func inspect(c tableCopy) copyReport {
	r := copyReport{tableCopy: c}
	if p, off, ok := tables.NewestCheckpoint(c.Path); ok {
		r.ckptPath, r.ckptOffset = p, off
	}
	rd, err := wal.OpenReader(c.walDir())
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			err = fmt.Errorf("no wal directory %s", c.walDir())
		}
		r.err = err
		return r
	}
	r.info, r.err = rd.Inspect()
	return r
}

// status words, as printed by ls and in JSON.
const (
	statusOK         = "ok"
	statusTorn       = "torn_tail"
	statusInProgress = "torn_tail_in_progress"
	statusCorrupt    = "corrupt"
	statusUnreadable = "unreadable"
)

func (r *copyReport) status(live bool) string {
	switch {
	case r.err != nil:
		return statusUnreadable
	case r.info.Problem == nil:
		return statusOK
	case r.info.Problem.Torn && live:
		return statusInProgress
	case r.info.Problem.Torn:
		return statusTorn
	}
	return statusCorrupt
}

// describeProblem says what a log problem means, for one line of output.
func describeProblem(p *wal.Problem, live bool) string {
	switch {
	case p.Torn && live:
		return fmt.Sprintf("torn tail (in progress) at offset %d in %s: %d bytes; an append cortexd has not finished", p.Offset, p.Segment, p.Bytes)
	case p.Torn:
		return fmt.Sprintf("torn tail at offset %d in %s: %d bytes from byte %d: %s; cortexd cuts it at its next start", p.Offset, p.Segment, p.Bytes, p.Pos, p.Reason)
	}
	return fmt.Sprintf("bad entry at offset %d in %s (byte %d): %s", p.Offset, p.Segment, p.Pos, p.Reason)
}

// warnings are the notes ls and dump print about a copy besides its entries.
func (r *copyReport) warnings(live bool) []string {
	if r.err != nil {
		return []string{r.err.Error()}
	}
	var out []string
	if r.info.IDErr != nil {
		out = append(out, "log id: "+r.info.IDErr.Error())
	}
	if len(r.info.Pending) > 0 {
		out = append(out, fmt.Sprintf("an interrupted log truncation left %s; cortexd completes it at its next start (listed as it will be)", strings.Join(r.info.Pending, ", ")))
	}
	if p := r.info.Problem; p != nil {
		msg := describeProblem(p, live)
		if !p.Torn {
			msg += " (cortex-wal verify checks every table)"
		}
		out = append(out, msg)
	}
	return out
}
