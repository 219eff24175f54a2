package tables

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/cortex-mesh/cortex/wal"
	"github.com/tidwall/buntdb"
)

// A checkpoint file, checkpoint-<offset>, holds the view as of one log offset:
//
//	magic "CXCKPT01"
//	uvarint len + log_id, uvarint offset, uvarint clock, uvarint count
//	count x (uvarint len + key, uvarint len + record)   (view encoding)
//	crc32c(4) of everything before it
const (
	ckptMagic  = "CXCKPT01"
	ckptPrefix = "checkpoint-"
)

var ckptCRC = crc32.MakeTable(crc32.Castagnoli)

// Checkpoint writes the view, with the log offset it reflects, to a new
// checkpoint file (fsync + rename), removes older ones, and truncates the log
// behind it, keeping the retention window. It does nothing if the view has
// not moved since the last checkpoint.
func (t *Table) Checkpoint() error { return t.checkpoint(false) }

// checkpointNow writes a checkpoint even if the view has not moved since
// the last one (a copy rebuilt at Open).
func (t *Table) checkpointNow() error { return t.checkpoint(true) }

func (t *Table) checkpoint(force bool) error {
	t.ckptMu.Lock()
	defer t.ckptMu.Unlock()
	log := t.current()
	type kv struct{ k, v string }
	var items []kv
	var offset uint64
	t.db.View(func(tx *buntdb.Tx) error {
		offset = t.applied
		if offset == t.ckptOffset && !force {
			return nil
		}
		items = make([]kv, 0, t.keys+t.tombstones)
		return tx.Ascend("", func(k, v string) bool {
			items = append(items, kv{k, v})
			return true
		})
	})
	if offset == t.ckptOffset && !force {
		return nil
	}
	// The checkpoint must never be ahead of the durable log.
	if err := log.Sync(); err != nil {
		return fmt.Errorf("checkpoint %s: %w", t.opts.Name, err)
	}
	path := filepath.Join(t.dir, fmt.Sprintf("%s%020d", ckptPrefix, offset))
	err := wal.WriteFileAtomic(path, func(f io.Writer) error {
		crc := crc32.New(ckptCRC)
		bw := bufio.NewWriterSize(io.MultiWriter(f, crc), 1<<20)
		var hdr []byte
		hdr = append(hdr, ckptMagic...)
		hdr = appendString(hdr, log.ID())
		hdr = binary.AppendUvarint(hdr, offset)
		hdr = binary.AppendUvarint(hdr, t.opts.Clock.Last())
		hdr = binary.AppendUvarint(hdr, uint64(len(items)))
		bw.Write(hdr)
		var buf []byte
		for _, it := range items {
			buf = appendString(appendString(buf[:0], it.k), it.v)
			bw.Write(buf)
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		_, err := f.Write(binary.LittleEndian.AppendUint32(nil, crc.Sum32()))
		return err
	})
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", t.opts.Name, err)
	}
	t.ckptOffset = offset
	for _, old := range checkpointFiles(t.dir) {
		if old.offset < offset {
			os.Remove(old.path)
		}
	}
	if err := log.TruncateFront(t.truncationPoint(offset)); err != nil {
		return fmt.Errorf("checkpoint %s: %w", t.opts.Name, err)
	}
	return nil
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

type ckptFile struct {
	path   string
	offset uint64
}

// checkpointFiles lists dir's checkpoint files, newest first.
func checkpointFiles(dir string) []ckptFile {
	des, _ := os.ReadDir(dir)
	var out []ckptFile
	for _, de := range des {
		name := de.Name()
		if !strings.HasPrefix(name, ckptPrefix) || len(name) != len(ckptPrefix)+20 {
			continue
		}
		off, err := strconv.ParseUint(name[len(ckptPrefix):], 10, 64)
		if err != nil {
			continue
		}
		out = append(out, ckptFile{filepath.Join(dir, name), off})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].offset > out[j].offset })
	return out
}

// NewestCheckpoint returns the path and offset of the newest checkpoint file
// in a table copy's directory, ok false if there is none. It only reads the
// directory (cortex-wal uses it on a stopped node's data).
func NewestCheckpoint(dir string) (path string, offset uint64, ok bool) {
	files := checkpointFiles(dir)
	if len(files) == 0 {
		return "", 0, false
	}
	return files[0].path, files[0].offset, true
}

// loadNewestCheckpoint fills the (empty) view from the newest checkpoint and
// returns its offset (0 when there is none). A checkpoint that does not
// verify is an error: the table does not start from a view it cannot trust.
// loadCheckpoint loads the newest checkpoint that loads, and returns its
// offset and why the newer ones did not. Without any, the view starts empty
// (offset 0) and recovery replays the log and decides what is missing.
func (t *Table) loadCheckpoint(salvaged bool) (uint64, []error) {
	t.removeCheckpointTemps()
	dir, logID := t.dir, t.log.ID()
	if salvaged { // the old log's checkpoints went aside with it
		dir, logID = t.salvagedFrom, t.salvagedID
	}
	ids := []string{logID}
	if !salvaged { // the log's earlier ids (LostEntries), for the same offsets
		prev, err := wal.PreviousIDs(t.walDir())
		if err != nil {
			t.opts.Logger.Error("the log's earlier ids", "table", t.opts.Name, "err", err)
		}
		ids = append(ids, prev...)
	}
	var skipped []error
	for _, f := range checkpointFiles(dir) {
		offset, err := t.loadCheckpointFile(f, ids)
		if err == nil {
			return offset, skipped
		}
		t.opts.Logger.Error("skipping a checkpoint that does not load", "table", t.opts.Name, "err", err)
		skipped = append(skipped, err)
		t.resetView()
	}
	return 0, skipped
}

// resetView empties the view (after a checkpoint failed half-way through).
func (t *Table) resetView() {
	t.db.Update(func(tx *buntdb.Tx) error { return tx.DeleteAll() })
	t.applied, t.digest, t.keys, t.tombstones = 0, Digest{}, 0, 0
}

// loadCheckpointFile loads one checkpoint, which must belong to the log
// (ids[0], or an id it had before: the same entries at the same offsets).
func (t *Table) loadCheckpointFile(f ckptFile, ids []string) (uint64, error) {
	data, err := os.ReadFile(f.path)
	if err != nil {
		return 0, fmt.Errorf("checkpoint: %w", err)
	}
	ck, err := DecodeCheckpoint(data)
	if err != nil {
		return 0, fmt.Errorf("checkpoint %s: %w", f.path, err)
	}
	if !slices.Contains(ids, ck.LogID) {
		return 0, fmt.Errorf("checkpoint %s belongs to log %s, not to this copy's log %s", f.path, ck.LogID, ids[0])
	}
	if ck.Offset != f.offset {
		return 0, fmt.Errorf("checkpoint %s says offset %d", f.path, ck.Offset)
	}
	t.opts.Clock.Observe(ck.Clock)
	const chunk = 8192
	for i := 0; i < len(ck.Items); i += chunk {
		part := ck.Items[i:min(i+chunk, len(ck.Items))]
		err := t.db.Update(func(tx *buntdb.Tx) error {
			for _, it := range part {
				r, err := decodeRecord(it[0][len(userKeyPrefix):], it[1])
				if err != nil {
					return err
				}
				t.observe(r.Version)
				e := r.Entry()
				if err := t.set(tx, &e); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("checkpoint %s: %w", f.path, err)
		}
	}
	t.applied = ck.Offset
	return ck.Offset, nil
}

// removeCheckpointTemps removes the temporary files of checkpoints that a
// crash interrupted before their rename (wal.WriteFileAtomic's NAME.*.tmp).
// None was ever adopted (the log is truncated only after the rename), and
// each is as big as the view, so they would pile up crash after crash. It
// runs at Open, when no checkpoint can be in progress.
func (t *Table) removeCheckpointTemps() {
	des, _ := os.ReadDir(t.dir)
	for _, de := range des {
		name := de.Name()
		if !de.Type().IsRegular() || !strings.HasPrefix(name, ckptPrefix) || !strings.HasSuffix(name, ".tmp") {
			continue
		}
		path := filepath.Join(t.dir, name)
		if err := os.Remove(path); err != nil {
			t.opts.Logger.Warn("cannot remove an interrupted checkpoint", "table", t.opts.Name, "file", path, "err", err)
		} else {
			t.opts.Logger.Info("removed a checkpoint interrupted by a crash", "table", t.opts.Name, "file", path)
		}
	}
}

// Checkpoint is a decoded checkpoint file.
type CheckpointData struct {
	LogID  string
	Offset uint64
	Clock  uint64
	Items  [][2]string // view key (with namespace byte), view record
}

var errBadCheckpoint = errors.New("bad checkpoint")

// DecodeCheckpoint parses and verifies a checkpoint file's bytes. It never
// panics on any input.
func DecodeCheckpoint(data []byte) (CheckpointData, error) {
	var ck CheckpointData
	if len(data) < len(ckptMagic)+4 || string(data[:len(ckptMagic)]) != ckptMagic {
		return ck, fmt.Errorf("%w: not a checkpoint file", errBadCheckpoint)
	}
	body := data[:len(data)-4]
	if crc32.Checksum(body, ckptCRC) != binary.LittleEndian.Uint32(data[len(body):]) {
		return ck, fmt.Errorf("%w: checksum mismatch", errBadCheckpoint)
	}
	r := ckptReader{b: body[len(ckptMagic):]}
	ck.LogID = r.str()
	ck.Offset = r.uvarint()
	ck.Clock = r.uvarint()
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b))/2 {
		r.err = fmt.Errorf("%w: %d items cannot fit", errBadCheckpoint, n)
	}
	if r.err == nil {
		ck.Items = make([][2]string, 0, n)
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		k, v := r.str(), r.str()
		if r.err == nil && !strings.HasPrefix(k, userKeyPrefix) {
			r.err = fmt.Errorf("%w: item %d has an unknown key namespace", errBadCheckpoint, i)
		}
		ck.Items = append(ck.Items, [2]string{k, v})
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", errBadCheckpoint, len(r.b))
	}
	if r.err != nil {
		return CheckpointData{}, r.err
	}
	return ck, nil
}

type ckptReader struct {
	b   []byte
	err error
}

func (r *ckptReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, k := binary.Uvarint(r.b)
	if k <= 0 {
		r.err = fmt.Errorf("%w: truncated number", errBadCheckpoint)
		return 0
	}
	r.b = r.b[k:]
	return v
}

func (r *ckptReader) str() string {
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b)) {
		r.err = fmt.Errorf("%w: truncated string", errBadCheckpoint)
	}
	if r.err != nil {
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// Errors of JoinsLog.
var (
	ErrLogGap          = errors.New("entries are in neither the checkpoint nor the log")
	ErrCheckpointAhead = errors.New("the checkpoint is ahead of the log")
)

// JoinsLog checks that a checkpoint as of offset ckpt (0: none) and a log
// holding offsets first to last together hold every entry up to last: the
// rule recovery and cortex-wal verify both apply.
func JoinsLog(ckpt, first, last uint64) error {
	switch {
	case ckpt+1 < first && ckpt == 0:
		return fmt.Errorf("%w: the log starts at offset %d but there is no checkpoint: entries 1-%d are missing", ErrLogGap, first, first-1)
	case ckpt+1 < first:
		return fmt.Errorf("%w: the log starts at offset %d but the checkpoint covers only up to %d: entries %d-%d are missing", ErrLogGap, first, ckpt, ckpt+1, first-1)
	case ckpt > last:
		return fmt.Errorf("%w: the checkpoint covers offset %d but the log ends at %d", ErrCheckpointAhead, ckpt, last)
	}
	return nil
}
