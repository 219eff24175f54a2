package backup

import (
	"bufio"
	"bytes"
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

	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/wal"
)

// Bounds on one frame's payload: a records frame closes after 1 MiB, so it
// holds that and at most one largest record; the JSON frames are small.
const (
	maxRecordsFrame = frameBytes + wal.MaxValueSize + wal.MaxKeySize + wal.MaxOriginSize + 64
	maxJSONFrame    = 16 << 20
)

// Visitor receives what Read finds, as it finds it. Table is called at the
// start of each section and says whether Record should be called with its
// records; a nil Table takes none. An error from either stops Read, which
// returns it. Everything is handed over before the section's and the file's
// checksums are verified: act on it only once Read has returned nil (or
// read the file twice: once to verify, once to use).
type Visitor struct {
	Header func(Header) error
	Table  func(TableMeta) (want bool, err error)
	Record func(TableMeta, Record) error
}

// Verify reads a whole backup and checks it, returning its manifest.
func Verify(r io.Reader) (Manifest, error) { return Read(r, Visitor{}) }

// Read reads a backup file from r, checks every frame's CRC, every record,
// every section's count and SHA-256, the manifest against the sections and
// the SHA-256 and size of the whole file, and that nothing follows the
// manifest. It returns the manifest, or an error wrapping ErrCorrupt (or
// ErrAborted) that says at which byte the file stops making sense. It never
// panics, and it holds only one frame in memory.
func Read(r io.Reader, v Visitor) (Manifest, error) {
	rd := &reader{br: bufio.NewReaderSize(r, 1<<20), file: sha256.New(), v: v}
	m, err := rd.read()
	if err != nil {
		var ce *visitorError
		if errors.As(err, &ce) {
			return Manifest{}, ce.err
		}
		return Manifest{}, err
	}
	return m, nil
}

// visitorError carries an error of the Visitor's through Read unchanged.
type visitorError struct{ err error }

func (e *visitorError) Error() string { return e.err.Error() }

type reader struct {
	br      *bufio.Reader
	file    hash.Hash
	off     int64 // bytes read so far
	start   int64 // where the current frame starts
	payload bytes.Buffer
	raw     []byte // the current frame's kind and length bytes
	v       Visitor
}

func (r *reader) corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: at byte %d: %s", ErrCorrupt, r.start, fmt.Sprintf(format, args...))
}

func (r *reader) read() (Manifest, error) {
	magic := make([]byte, len(Magic))
	n, err := io.ReadFull(r.br, magic)
	r.off += int64(n)
	if err != nil || string(magic) != Magic {
		return Manifest{}, fmt.Errorf("%w: not a cortex backup file (it does not start with %q)", ErrCorrupt, Magic)
	}
	r.file.Write(magic)

	kind, err := r.frame()
	if err != nil {
		return Manifest{}, err
	}
	if kind != kindHeader {
		return Manifest{}, r.corrupt("the file starts with a frame of kind %q, not the header", kind)
	}
	var h Header
	if err := r.decodeJSON(&h); err != nil {
		return Manifest{}, err
	}
	if h.Format != Format {
		return Manifest{}, fmt.Errorf("%w: backup format %d: this cortex reads format %d", ErrCorrupt, h.Format, Format)
	}
	if err := scope.ValidateNodeName(h.Node); err != nil {
		return Manifest{}, r.corrupt("header: node: %v", err)
	}
	if r.v.Header != nil {
		if err := r.v.Header(h); err != nil {
			return Manifest{}, &visitorError{err}
		}
	}

	var seen []TableMeta
	for {
		kind, err := r.frame()
		if err != nil {
			return Manifest{}, err
		}
		switch kind {
		case kindTable:
			m, err := r.section()
			if err != nil {
				return Manifest{}, err
			}
			seen = append(seen, m)
		case kindManifest:
			sum := hex.EncodeToString(r.file.Sum(nil))
			size := r.start
			var m Manifest
			if err := r.decodeJSON(&m); err != nil {
				return Manifest{}, err
			}
			if err := r.checkManifest(m, h, seen, sum, size); err != nil {
				return Manifest{}, err
			}
			if extra, _ := r.br.Read(make([]byte, 1)); extra > 0 {
				r.start = r.off
				return Manifest{}, r.corrupt("bytes follow the manifest")
			}
			return m, nil
		case kindAbort:
			return Manifest{}, r.abort()
		default:
			return Manifest{}, r.corrupt("a frame of kind %q where a table or the manifest should start", kind)
		}
	}
}

// section reads one table's section, its 'T' frame just read.
func (r *reader) section() (TableMeta, error) {
	var m TableMeta
	if err := r.decodeJSON(&m); err != nil {
		return m, err
	}
	if m.SHA256 != "" {
		return m, r.corrupt("table %s: a checksum in the section's start", m.Name)
	}
	if err := checkMeta(m); err != nil {
		return m, r.corrupt("%v", err)
	}
	want := false
	if r.v.Table != nil {
		w, err := r.v.Table(m)
		if err != nil {
			return m, &visitorError{err}
		}
		want = w
	}
	sec := sha256.New()
	var n uint64
	for {
		kind, err := r.frame()
		if err != nil {
			return m, err
		}
		switch kind {
		case kindRecords:
			payload := r.payload.Bytes()
			sec.Write(payload)
			count, err := r.records(m, payload, want)
			if err != nil {
				return m, err
			}
			n += count
			if n > m.Records {
				return m, r.corrupt("table %s: more records than the %d announced", m.Name, m.Records)
			}
		case kindEnd:
			var end sectionEnd
			if err := r.decodeJSON(&end); err != nil {
				return m, err
			}
			sum := hex.EncodeToString(sec.Sum(nil))
			switch {
			case n != m.Records || end.Records != n:
				return m, r.corrupt("table %s: %d records, the section says %d and its end %d", m.Name, n, m.Records, end.Records)
			case end.SHA256 != sum:
				return m, r.corrupt("table %s: the records' SHA-256 is %s, the section says %s", m.Name, sum, end.SHA256)
			}
			m.SHA256 = sum
			return m, nil
		case kindAbort:
			return m, r.abort()
		default:
			return m, r.corrupt("table %s: a frame of kind %q inside its section", m.Name, kind)
		}
	}
}

// records decodes one records frame's payload and hands each record to the
// visitor if want.
func (r *reader) records(m TableMeta, p []byte, want bool) (uint64, error) {
	count, k := binary.Uvarint(p)
	if k <= 0 || count == 0 || count > uint64(len(p)) {
		return 0, r.corrupt("table %s: a records frame with a bad count", m.Name)
	}
	p = p[k:]
	for i := uint64(0); i < count; i++ {
		var rec Record
		var err error
		if rec, p, err = decodeRecord(p); err != nil {
			return 0, r.corrupt("table %s: record %d of a frame: %v", m.Name, i, err)
		}
		if err := rec.Check(); err != nil {
			return 0, r.corrupt("table %s: key %q: %v", m.Name, rec.Key, err)
		}
		if want && r.v.Record != nil {
			if err := r.v.Record(m, rec); err != nil {
				return 0, &visitorError{err}
			}
		}
	}
	if len(p) != 0 {
		return 0, r.corrupt("table %s: %d bytes after a frame's last record", m.Name, len(p))
	}
	return count, nil
}

// decodeRecord decodes one record; its slices do not alias p.
func decodeRecord(p []byte) (Record, []byte, error) {
	var rec Record
	if len(p) < 1 || p[0]&^1 != 0 {
		return rec, nil, errors.New("bad flags")
	}
	rec.Deleted = p[0]&1 != 0
	p = p[1:]
	hlc, k := binary.Uvarint(p)
	if k <= 0 {
		return rec, nil, errors.New("bad hlc")
	}
	rec.HLC, p = hlc, p[k:]
	var field []byte
	var err error
	if field, p, err = lenField(p, wal.MaxOriginSize, "origin"); err != nil {
		return rec, nil, err
	}
	rec.Origin = string(field)
	if field, p, err = lenField(p, wal.MaxKeySize, "key"); err != nil {
		return rec, nil, err
	}
	rec.Key = slices.Clone(field)
	if field, p, err = lenField(p, wal.MaxValueSize, "value"); err != nil {
		return rec, nil, err
	}
	rec.Value = slices.Clone(field)
	if rec.Value == nil && !rec.Deleted {
		rec.Value = []byte{}
	}
	return rec, p, nil
}

func lenField(p []byte, limit int, what string) ([]byte, []byte, error) {
	n, k := binary.Uvarint(p)
	if k <= 0 || n > uint64(limit) || n > uint64(len(p)-k) {
		return nil, nil, fmt.Errorf("bad %s length", what)
	}
	return p[k : k+int(n)], p[k+int(n):], nil
}

func (r *reader) checkManifest(m Manifest, h Header, seen []TableMeta, sum string, size int64) error {
	names := make([]string, len(seen))
	for i, s := range seen {
		names[i] = s.Name
	}
	switch {
	case m.Format != h.Format || m.Node != h.Node || !m.Created.Equal(h.Created) || !bytes.Equal(m.Prefix, h.Prefix):
		return r.corrupt("the manifest does not match the header")
	case !slices.Equal(names, h.Tables):
		return r.corrupt("the header names tables %q, the file holds %q", h.Tables, names)
	case len(m.Tables) != len(seen):
		return r.corrupt("the manifest lists %d tables, the file holds %d", len(m.Tables), len(seen))
	case m.SHA256 != sum:
		return r.corrupt("the file's SHA-256 is %s, the manifest says %s", sum, m.SHA256)
	case m.Size != size:
		return r.corrupt("the file holds %d bytes before its manifest, the manifest says %d", size, m.Size)
	}
	for i, s := range seen {
		if !sameMeta(m.Tables[i], s) {
			return r.corrupt("the manifest's table %s does not match its section", m.Tables[i].Name)
		}
	}
	return nil
}

func sameMeta(a, b TableMeta) bool {
	return a.Name == b.Name && a.ID == b.ID && a.Home == b.Home && a.LogID == b.LogID && a.AsOf == b.AsOf &&
		a.Records == b.Records && a.SHA256 == b.SHA256 && a.Scope.String() == b.Scope.String()
}

func (r *reader) abort() error {
	var a abortBody
	if err := r.decodeJSON(&a); err != nil {
		return err
	}
	return fmt.Errorf("%w: %s", ErrAborted, a.Error)
}

// frame reads the next frame into r.payload and checks its CRC.
func (r *reader) frame() (byte, error) {
	r.start = r.off
	kind, err := r.br.ReadByte()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return 0, r.corrupt("the file ends before its manifest (truncated)")
		}
		return 0, fmt.Errorf("backup: read: %w", err)
	}
	r.off++
	r.raw = append(r.raw[:0], kind)
	var size uint64
	for shift := 0; ; shift += 7 {
		b, err := r.br.ReadByte()
		if err != nil {
			return 0, r.truncated(err)
		}
		r.off++
		r.raw = append(r.raw, b)
		if shift >= 63 || len(r.raw) > binary.MaxVarintLen64+1 {
			return 0, r.corrupt("a frame with a bad length")
		}
		size |= uint64(b&0x7f) << shift
		if b < 0x80 {
			break
		}
	}
	limit := uint64(maxJSONFrame)
	if kind == kindRecords {
		limit = maxRecordsFrame
	}
	if size > limit {
		return 0, r.corrupt("a frame of kind %q of %d bytes (at most %d)", kind, size, limit)
	}
	r.payload.Reset()
	// Copied as it arrives: a length that lies costs no more memory than the
	// bytes that are really there.
	n, err := io.CopyN(&r.payload, r.br, int64(size))
	r.off += n
	if err != nil {
		return 0, r.truncated(err)
	}
	var crc [4]byte
	k, err := io.ReadFull(r.br, crc[:])
	r.off += int64(k)
	if err != nil {
		return 0, r.truncated(err)
	}
	c := crc32.Update(crc32.Checksum(r.raw, castagnoli), castagnoli, r.payload.Bytes())
	if c != binary.LittleEndian.Uint32(crc[:]) {
		return 0, r.corrupt("a frame of kind %q fails its checksum (the file is damaged)", kind)
	}
	if kind != kindManifest {
		r.file.Write(r.raw)
		r.file.Write(r.payload.Bytes())
		r.file.Write(crc[:])
	}
	return kind, nil
}

func (r *reader) truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return r.corrupt("the file ends inside a frame (truncated)")
	}
	return fmt.Errorf("backup: read: %w", err)
}

func (r *reader) decodeJSON(v any) error {
	dec := json.NewDecoder(bytes.NewReader(r.payload.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return r.corrupt("a malformed frame: %v", err)
	}
	if dec.More() {
		return r.corrupt("a malformed frame: data after its JSON value")
	}
	return nil
}
