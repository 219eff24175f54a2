package wal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Damage: entries that are on disk but do not read back (a flipped bit, a
// bad sector), as opposed to a torn tail (an append a crash cut short, which
// Open cuts off). The log says where; what to do about it (cut the damaged
// part behind a checkpoint, or salvage the rest into a new log) is the
// table's decision.

// ErrCorrupt is wrapped by errors about an entry on disk that does not
// read back.
var ErrCorrupt = errors.New("corrupt log entry")

// CorruptError is an entry that does not read back, at Offset.
type CorruptError struct {
	Offset uint64
	Err    error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("offset %d: %v: %v", e.Offset, ErrCorrupt, e.Err)
}

func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

func (e *CorruptError) Unwrap() error { return e.Err }

// Salvage reads every entry of the log in dir that still decodes, without
// changing a file: at a bad frame it resumes at the next intact one. The
// offsets after a bad frame are counted from there, so they are right only
// if the damage took exactly one entry; use them for order, not identity.
// It returns the records and one Problem per damaged place.
func Salvage(dir string) ([]Record, []*Problem, error) {
	r, err := OpenReader(dir)
	if err != nil {
		return nil, nil, err
	}
	var recs []Record
	var problems []*Problem
	next := r.First()
	for i, s := range r.segs {
		if s.first > next {
			problems = append(problems, gapProblem(s, next))
			next = s.first
		}
		data, err := readSegment(s)
		if err != nil {
			return nil, nil, err
		}
		for pos := 0; pos < len(data); {
			end, _, bad := scanFrames(data[pos:], func(_ int, e Entry) bool {
				recs = append(recs, Record{Offset: next, Entry: cloneEntry(e)})
				next++
				return true
			})
			if bad == nil {
				break
			}
			at := pos + end
			sc := scanSegment(data[at:])
			problems = append(problems, &Problem{Segment: s.path, Offset: next, Pos: int64(at), Bytes: int64(len(data) - at),
				Torn: i == len(r.segs)-1 && sc.torn(), Reason: bad.Error()})
			if sc.next < 0 {
				break
			}
			pos = at + sc.next
			next++ // the damaged entry had an offset
		}
	}
	return recs, problems, nil
}

// cloneEntry copies the parts of e that alias a segment's bytes.
func cloneEntry(e Entry) Entry {
	e.Key = append([]byte(nil), e.Key...)
	e.Value = append([]byte(nil), e.Value...)
	e.Proof = append([]byte(nil), e.Proof...)
	if len(e.Proof) == 0 {
		e.Proof = nil
	}
	return e
}

// SetAside renames a damaged log directory out of the way (to
// DIR.damaged-<unix time>), keeping it for a human, and returns the new name.
func SetAside(dir string) (string, error) {
	to := fmt.Sprintf("%s.damaged-%d", dir, time.Now().Unix())
	if err := os.Rename(dir, to); err != nil {
		return "", err
	}
	return to, SyncDir(filepath.Dir(dir))
}
