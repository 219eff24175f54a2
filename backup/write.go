package backup

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"slices"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Frame kinds.
const (
	kindHeader   = 'H'
	kindTable    = 'T'
	kindRecords  = 'R'
	kindEnd      = 'E'
	kindManifest = 'M'
	kindAbort    = 'X'
)

// A records frame closes at this many records or payload bytes.
const (
	frameRecords = 1024
	frameBytes   = 1 << 20
)

// sectionEnd is the payload of an 'E' frame.
type sectionEnd struct {
	Records uint64 `json:"records"`
	SHA256  string `json:"sha256"`
}

// abortBody is the payload of an 'X' frame.
type abortBody struct {
	Error string `json:"error"`
}

// Writer writes a backup file as a stream: Begin a table, Add its records,
// End it, then Close writes the manifest. Only the frame being filled is
// held in memory. Not safe for concurrent use.
type Writer struct {
	bw       *bufio.Writer
	file     hash.Hash // every byte written so far
	size     int64
	manifest Manifest
	sec      *TableMeta
	secHash  hash.Hash
	secN     uint64
	recs     []byte // the records frame being filled (without its count)
	recN     int
	frame    []byte
	err      error
}

// NewWriter starts a backup on w with its header (Format is set).
func NewWriter(w io.Writer, h Header) (*Writer, error) {
	h.Format = Format
	if h.Tables == nil {
		h.Tables = []string{}
	}
	bw := &Writer{bw: bufio.NewWriterSize(w, 1<<20), file: sha256.New(),
		manifest: Manifest{Format: Format, Node: h.Node, Created: h.Created, Prefix: h.Prefix, Tables: []TableMeta{}}}
	bw.write([]byte(Magic))
	bw.writeJSON(kindHeader, h)
	return bw, bw.err
}

func (w *Writer) write(b []byte) {
	if w.err != nil {
		return
	}
	w.file.Write(b)
	w.size += int64(len(b))
	_, w.err = w.bw.Write(b)
}

func (w *Writer) writeFrame(kind byte, payload []byte) {
	f := append(w.frame[:0], kind)
	f = binary.AppendUvarint(f, uint64(len(payload)))
	f = append(f, payload...)
	f = binary.LittleEndian.AppendUint32(f, crc32.Checksum(f, castagnoli))
	w.frame = f
	w.write(f)
}

func (w *Writer) writeJSON(kind byte, v any) {
	b, err := json.Marshal(v)
	if err != nil && w.err == nil {
		w.err = err
	}
	w.writeFrame(kind, b)
}

// Begin starts the section of one table. m.Records is the number of
// records that will follow: End refuses another count.
func (w *Writer) Begin(m TableMeta) error {
	if w.err != nil {
		return w.err
	}
	if w.sec != nil {
		return fmt.Errorf("backup: table %s begun before table %s ended", m.Name, w.sec.Name)
	}
	if err := checkMeta(m); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	m.SHA256 = ""
	w.sec, w.secHash, w.secN = &m, sha256.New(), 0
	w.writeJSON(kindTable, m)
	return w.err
}

// Add appends one record to the current table's section.
func (w *Writer) Add(r Record) error {
	if w.err != nil {
		return w.err
	}
	if w.sec == nil {
		return errors.New("backup: a record outside a table's section")
	}
	if err := r.Check(); err != nil {
		return fmt.Errorf("backup: table %s, key %q: %w", w.sec.Name, r.Key, err)
	}
	w.recs = appendRecord(w.recs, r)
	w.recN++
	w.secN++
	if w.recN >= frameRecords || len(w.recs) >= frameBytes {
		w.flushRecords()
	}
	return w.err
}

func appendRecord(b []byte, r Record) []byte {
	var flags byte
	if r.Deleted {
		flags = 1
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, r.HLC)
	b = binary.AppendUvarint(b, uint64(len(r.Origin)))
	b = append(b, r.Origin...)
	b = binary.AppendUvarint(b, uint64(len(r.Key)))
	b = append(b, r.Key...)
	b = binary.AppendUvarint(b, uint64(len(r.Value)))
	return append(b, r.Value...)
}

func (w *Writer) flushRecords() {
	if w.recN == 0 {
		return
	}
	payload := binary.AppendUvarint(make([]byte, 0, len(w.recs)+binary.MaxVarintLen64), uint64(w.recN))
	payload = append(payload, w.recs...)
	w.secHash.Write(payload)
	w.writeFrame(kindRecords, payload)
	w.recs, w.recN = w.recs[:0], 0
}

// End closes the current table's section.
func (w *Writer) End() error {
	if w.err != nil {
		return w.err
	}
	if w.sec == nil {
		return errors.New("backup: End without Begin")
	}
	w.flushRecords()
	if w.secN != w.sec.Records {
		return fmt.Errorf("backup: table %s: %d records written, %d announced", w.sec.Name, w.secN, w.sec.Records)
	}
	m := *w.sec
	m.SHA256 = hex.EncodeToString(w.secHash.Sum(nil))
	w.writeJSON(kindEnd, sectionEnd{Records: w.secN, SHA256: m.SHA256})
	w.manifest.Tables = append(w.manifest.Tables, m)
	w.sec = nil
	return w.err
}

// Abort ends the file with the reason the backup could not be finished
// (Read reports it), and flushes it.
func (w *Writer) Abort(reason string) error {
	w.writeJSON(kindAbort, abortBody{Error: reason})
	if w.err == nil {
		w.err = w.bw.Flush()
	}
	return w.err
}

// Flush writes out what is buffered (a stream's progress).
func (w *Writer) Flush() error {
	if w.err == nil {
		w.err = w.bw.Flush()
	}
	return w.err
}

// Written is the number of bytes written so far (buffered ones included).
func (w *Writer) Written() int64 { return w.size }

// Close writes the manifest, flushes, and returns the manifest. Every
// section must have ended.
func (w *Writer) Close() (Manifest, error) {
	if w.err != nil {
		return Manifest{}, w.err
	}
	if w.sec != nil {
		return Manifest{}, fmt.Errorf("backup: table %s did not end", w.sec.Name)
	}
	m := w.manifest
	m.Tables = slices.Clone(m.Tables)
	m.SHA256, m.Size = hex.EncodeToString(w.file.Sum(nil)), w.size
	w.writeJSON(kindManifest, m)
	if w.err == nil {
		w.err = w.bw.Flush()
	}
	return m, w.err
}
