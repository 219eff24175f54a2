package wal

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// frame is one tidwall/wal binary frame (uvarint size + data) in a segment.
type frame struct {
	start, data, end int // frame start, entry data start, frame end
}

// parseFrames splits a segment file into frames, independently of the code
// under test, and fails if the file is not a clean sequence of frames.
func parseFrames(t *testing.T, b []byte) []frame {
	t.Helper()
	var fs []frame
	for pos := 0; pos < len(b); {
		size, k := binary.Uvarint(b[pos:])
		if k <= 0 || size > uint64(len(b)-pos-k) {
			t.Fatalf("segment is not cleanly framed at byte %d", pos)
		}
		fs = append(fs, frame{pos, pos + k, pos + k + int(size)})
		pos += k + int(size)
	}
	return fs
}

// segFirst returns the offset encoded in a segment file's name.
func segFirst(t *testing.T, path string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(filepath.Base(path), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func lastSegment(t *testing.T, dir string) string {
	t.Helper()
	segs := segmentPaths(t, dir)
	if len(segs) == 0 {
		t.Fatalf("no segment files in %s", dir)
	}
	return segs[len(segs)-1]
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// buildLog writes testEntry(1..n) into a new log in dir and closes it.
func buildLog(t *testing.T, dir string, n uint64, opts Options) {
	t.Helper()
	opts.Logger = quietLogger()
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	appendRange(t, l, 1, n)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// capture is a logger that records what it is given.
func capture() (*slog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), &buf
}

// checkTornWarning asserts exactly one warning naming the cut offset.
func checkTornWarning(t *testing.T, logged string, offset uint64) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(logged), "\n")
	if len(lines) != 1 || lines[0] == "" {
		t.Fatalf("want exactly one log line, got %q", logged)
	}
	line := lines[0]
	for _, want := range []string{"level=WARN", "torn", fmt.Sprintf(" offset=%d ", offset), "table=repairtest"} {
		if !strings.Contains(line+" ", want) {
			t.Fatalf("log line %q does not contain %q", line, want)
		}
	}
}

// reopenRepaired opens dir with a capturing logger and checks the outcome of
// a torn-tail repair: entries first..good read back, the log ends at good,
// one warning names tornOffset, and the log keeps working and reopens clean.
func reopenRepaired(t *testing.T, dir string, opts Options, first, good, tornOffset uint64) {
	t.Helper()
	logger, buf := capture()
	opts.Logger, opts.Name = logger, "repairtest"
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open after a torn tail: %v", err)
	}
	defer l.Close()
	checkTornWarning(t, buf.String(), tornOffset)
	checkBounds(t, l, first, good)
	checkEntries(t, l, first, good)
	if _, err := l.Read(good + 1); err == nil {
		t.Fatalf("Read(%d) of the cut entry succeeded", good+1)
	}
	// The segment is cleanly framed again and holds only decodable entries.
	for _, f := range parseFrames(t, readFile(t, lastSegment(t, dir))) {
		if _, err := Decode(readFile(t, lastSegment(t, dir))[f.data:f.end]); err != nil {
			t.Fatalf("entry left in the repaired segment: %v", err)
		}
	}

	// Appends continue at the cut offset, and a reopen is silent.
	appendRange(t, l, good+1, good+3)
	checkEntries(t, l, first, good+3)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	logger2, buf2 := capture()
	opts.Logger = logger2
	l2, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	defer l2.Close()
	if buf2.Len() != 0 {
		t.Fatalf("second Open logged %q; the repair must be done once", buf2.String())
	}
	checkBounds(t, l2, first, good+3)
	checkEntries(t, l2, first, good+3)
}

func TestRepairTornTail(t *testing.T) {
	const n = 20
	tests := []struct {
		name string
		// damage edits the last segment, given its frames.
		damage func(b []byte, fs []frame) []byte
		// good is the last offset that must survive; torn is the offset the
		// warning must name.
		good, torn uint64
	}{
		{"cut a few bytes", func(b []byte, fs []frame) []byte { return b[:len(b)-3] }, n - 1, n},
		{"cut to one byte of the last frame", func(b []byte, fs []frame) []byte { return b[:fs[len(fs)-1].start+1] }, n - 1, n},
		{"cut inside the last entry's header", func(b []byte, fs []frame) []byte { return b[:fs[len(fs)-1].data+5] }, n - 1, n},
		{"cut just the crc's last byte", func(b []byte, fs []frame) []byte { return b[:len(b)-1] }, n - 1, n},
		{"zeros appended", func(b []byte, fs []frame) []byte { return append(b, make([]byte, 64)...) }, n, n + 1},
		{"one zero appended", func(b []byte, fs []frame) []byte { return append(b, 0) }, n, n + 1},
		{"garbage appended", func(b []byte, fs []frame) []byte { return append(b, 0x05, 'a', 'b') }, n, n + 1},
		{"last entry: value byte flipped", func(b []byte, fs []frame) []byte {
			b[fs[len(fs)-1].end-crcSize-2] ^= 0x20
			return b
		}, n - 1, n},
		{"last entry: crc byte flipped", func(b []byte, fs []frame) []byte {
			b[fs[len(fs)-1].end-1] ^= 0xff
			return b
		}, n - 1, n},
		{"last entry: frame size grows past the end", func(b []byte, fs []frame) []byte {
			b[fs[len(fs)-1].start]++
			return b
		}, n - 1, n},
		{"last entry zeroed", func(b []byte, fs []frame) []byte {
			clear(b[fs[len(fs)-1].start:])
			return b
		}, n - 1, n},
		{"last two entries zeroed", func(b []byte, fs []frame) []byte {
			clear(b[fs[len(fs)-2].start:])
			return b
		}, n - 2, n - 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			buildLog(t, dir, n, Options{})
			seg := lastSegment(t, dir)
			b := readFile(t, seg)
			fs := parseFrames(t, b)
			if len(fs) != n {
				t.Fatalf("segment holds %d frames, want %d", len(fs), n)
			}
			writeFile(t, seg, tc.damage(b, fs))
			reopenRepaired(t, dir, Options{}, 1, tc.good, tc.torn)
		})
	}
}

func TestRepairRefusesMiddleCorruption(t *testing.T) {
	const n = 20
	tests := []struct {
		name   string
		damage func(b []byte, fs []frame) []byte
		offset uint64 // the offset the error must name
	}{
		{"value byte of a middle entry", func(b []byte, fs []frame) []byte {
			b[fs[9].end-crcSize-3] ^= 0x01
			return b
		}, 10},
		{"value byte of the first entry", func(b []byte, fs []frame) []byte {
			b[fs[0].end-crcSize-1] ^= 0x40
			return b
		}, 1},
		{"crc of the next-to-last entry", func(b []byte, fs []frame) []byte {
			b[fs[n-2].end-1] ^= 0x01
			return b
		}, n - 1},
		{"key byte of a middle entry", func(b []byte, fs []frame) []byte {
			b[fs[14].data+fixedHeader+4] ^= 0x10
			return b
		}, 15},
		{"frame size of a middle entry shrunk", func(b []byte, fs []frame) []byte {
			b[fs[4].start]--
			return b
		}, 5},
		{"a middle entry zeroed", func(b []byte, fs []frame) []byte {
			clear(b[fs[6].start:fs[6].end])
			return b
		}, 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			buildLog(t, dir, n, Options{})
			seg := lastSegment(t, dir)
			b := readFile(t, seg)
			fs := parseFrames(t, b)
			if len(fs) != n {
				t.Fatalf("segment holds %d frames, want %d", len(fs), n)
			}
			damaged := tc.damage(b, fs)
			writeFile(t, seg, damaged)

			logger, buf := capture()
			l, err := Open(dir, Options{Name: "repairtest", Logger: logger})
			if err == nil {
				l.Close()
				t.Fatalf("Open accepted a corrupt entry followed by intact ones")
			}
			if want := fmt.Sprintf("offset %d ", tc.offset); !strings.Contains(err.Error()+" ", want) {
				t.Fatalf("error %q does not name %q", err, strings.TrimSpace(want))
			}
			if buf.Len() != 0 {
				t.Fatalf("a refused Open logged %q", buf.String())
			}
			// Nothing was cut: the evidence stays for a human.
			if !bytes.Equal(readFile(t, seg), damaged) {
				t.Fatal("a refused Open changed the segment file")
			}
			// And it keeps refusing.
			if l, err := Open(dir, Options{Name: "repairtest", Logger: logger}); err == nil {
				l.Close()
				t.Fatal("second Open accepted the corrupt log")
			}
		})
	}
}

// Repairs in a log with several segments, and in one whose front was
// truncated, so that the last segment does not start at offset 1.
func TestRepairMultiSegment(t *testing.T) {
	opts := Options{SegmentSize: 4096, NoSync: true}

	// setup writes entries one at a time until there are at least 4
	// segments and the last one holds at least 3 entries; n is the last
	// offset written.
	setup := func(t *testing.T) (dir, seg string, b []byte, fs []frame, segStart, n uint64) {
		t.Helper()
		dir = t.TempDir()
		l := openLog(t, dir, opts)
		for n = 1; ; n++ {
			mustAppend(t, l, testEntries(n, n), n)
			if segs := segmentPaths(t, dir); len(segs) >= 4 && n-segFirst(t, segs[len(segs)-1])+1 >= 3 {
				break
			}
			if n > 10000 {
				t.Fatal("the log does not make segments")
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		seg = lastSegment(t, dir)
		b = readFile(t, seg)
		fs = parseFrames(t, b)
		segStart = segFirst(t, seg)
		if len(fs) < 3 || segStart+uint64(len(fs))-1 != n {
			t.Fatalf("last segment %s holds %d frames; want >= 3 ending at %d", filepath.Base(seg), len(fs), n)
		}
		return dir, seg, b, fs, segStart, n
	}

	t.Run("truncated frame after good entries", func(t *testing.T) {
		dir, seg, b, fs, _, n := setup(t)
		writeFile(t, seg, b[:fs[len(fs)-1].end-7])
		reopenRepaired(t, dir, opts, 1, n-1, n)
	})
	t.Run("torn first frame of the last segment", func(t *testing.T) {
		dir, seg, b, _, segStart, _ := setup(t)
		writeFile(t, seg, b[:10])
		reopenRepaired(t, dir, opts, 1, segStart-1, segStart)
	})
	t.Run("zeros after good entries", func(t *testing.T) {
		dir, seg, b, _, _, n := setup(t)
		writeFile(t, seg, append(b, make([]byte, 100)...))
		reopenRepaired(t, dir, opts, 1, n, n+1)
	})
	t.Run("corrupt middle entry of the last segment", func(t *testing.T) {
		dir, seg, b, fs, segStart, _ := setup(t)
		b[fs[1].end-crcSize-1] ^= 0x04
		writeFile(t, seg, b)
		l, err := Open(dir, Options{SegmentSize: 4096, Logger: quietLogger()})
		if err == nil {
			l.Close()
			t.Fatal("Open accepted a corrupt entry followed by an intact one")
		}
		if want := fmt.Sprintf("offset %d ", segStart+1); !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not name %q", err, strings.TrimSpace(want))
		}
	})
	t.Run("after front truncation", func(t *testing.T) {
		const n = 300
		dir := t.TempDir()
		buildLog(t, dir, n, opts)
		l := openLog(t, dir, opts)
		const cut = 250
		if err := l.TruncateFront(cut); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		seg := lastSegment(t, dir)
		b := readFile(t, seg)
		writeFile(t, seg, b[:len(b)-2])
		reopenRepaired(t, dir, opts, cut, n-1, n)
	})
}

// An empty last segment (made when a segment fills up exactly, or when the
// whole log was truncated away) needs no repair.
func TestRepairNothingToDo(t *testing.T) {
	t.Run("new log", func(t *testing.T) {
		dir := t.TempDir()
		logger, buf := capture()
		l, err := Open(dir, Options{Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		l, err = Open(dir, Options{Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		if buf.Len() != 0 {
			t.Fatalf("logged %q", buf.String())
		}
	})
	t.Run("emptied log", func(t *testing.T) {
		dir := t.TempDir()
		buildLog(t, dir, 10, Options{})
		l := openLog(t, dir, Options{})
		if err := l.TruncateFront(11); err != nil {
			t.Fatal(err)
		}
		l.Close()
		logger, buf := capture()
		l2, err := Open(dir, Options{Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		defer l2.Close()
		if buf.Len() != 0 {
			t.Fatalf("logged %q", buf.String())
		}
		checkBounds(t, l2, 11, 10)
	})
}

// A crash in the middle of TruncateFront leaves a .START file; Open lets
// tidwall/wal finish the truncation before it checks the tail.
func TestRepairInterruptedTruncation(t *testing.T) {
	dir := t.TempDir()
	buildLog(t, dir, 10, Options{})
	seg := lastSegment(t, dir)
	b := readFile(t, seg)
	fs := parseFrames(t, b)
	// What TruncateFront(6) writes before it removes the old segment.
	start := filepath.Join(dir, fmt.Sprintf("%020d.START", 6))
	writeFile(t, start, b[fs[5].start:])

	logger, buf := capture()
	l, err := Open(dir, Options{Logger: logger})
	if err != nil {
		t.Fatalf("Open with a leftover .START: %v", err)
	}
	defer l.Close()
	if buf.Len() != 0 {
		t.Fatalf("logged %q", buf.String())
	}
	checkBounds(t, l, 6, 10)
	checkEntries(t, l, 6, 10)
	if segs := segmentPaths(t, dir); len(segs) != 1 || segFirst(t, segs[0]) != 6 {
		t.Fatalf("segments after Open: %v", segs)
	}
	if _, err := os.Stat(start); !os.IsNotExist(err) {
		t.Fatalf(".START file still there: %v", err)
	}
}
