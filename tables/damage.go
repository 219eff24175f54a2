package tables

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cortex-mesh/cortex/wal"
)

// Damage: entries of the log that are on disk but do not read back (a
// flipped bit, a bad sector; not a torn tail, which the log cuts itself).
// A damaged copy is contained, never silently: it opens, serves and takes
// writes, the damage is logged at ERROR and shown in Stats, and it heals:
//
//   - Damage the view does not need (entries a checkpoint covers, or that
//     the view has applied) is cut from the log behind a checkpoint: peers
//     that still needed those offsets get a snapshot instead, and nothing
//     is served that does not read back. This is found at Open (every
//     segment is read) and while serving (Changes).
//   - Damage the view did need (entries after the checkpoint): the other
//     entries are replayed, the damaged ones skipped, the log is cut behind
//     a new checkpoint, and the copy forgets its cursors in its peers'
//     logs, so that it follows each of them again from a snapshot, merged by
//     last-write-wins: what the damage took comes back from any peer that
//     has it, and the copy's own writes that peers do not have stay.
//   - A log that cannot be opened at all (the damage is in the middle of its
//     last segment, or breaks its framing) is set aside (wal.damaged-<time>,
//     for a human), every entry that still decodes is salvaged into the
//     view with the newest readable checkpoint, and the copy starts a new
//     log (a new log id, so peers never mistake it for the old one) from a
//     checkpoint of that view; its cursors are forgotten as above.

// openAndRecover opens the log (salvaging it if it cannot be opened) and
// recovers the view, healing damage as above.
func (t *Table) openAndRecover() error {
	found := t.findDamage() // before Open, which may repair the tail
	log, err := t.openLog()
	salvaged := errors.Is(err, wal.ErrCorrupt)
	var recs []wal.Record
	if salvaged {
		if recs, err = t.salvage(err); err != nil {
			return err
		}
		log, err = t.openLog() // a new, empty log
	}
	if err != nil {
		return err
	}
	t.log = log
	ckpt, badCkpts := t.loadCheckpoint(salvaged)
	if salvaged {
		if err := t.applyToView(slices.DeleteFunc(recs, func(r wal.Record) bool { return r.Offset <= ckpt })); err != nil {
			return err
		}
		t.applied = 0 // the view as of the new log's start
		return t.healed(0, true, "the log could not be opened: set aside, every entry that decodes salvaged into a new log")
	}
	first, last := t.log.Bounds()
	var why []string
	for _, err := range badCkpts {
		why = append(why, err.Error())
	}
	lost := false
	switch err := JoinsLog(t.applied, first, last); {
	case errors.Is(err, ErrLogGap): // entries between the checkpoint and the log are gone
		why = append(why, err.Error()+" (no longer in the log, nor in any checkpoint that loads)")
		t.applied, lost = first-1, true
	case err != nil:
		return err
	}
	t.ckptOffset = ckpt
	skipped, err := t.replay(t.applied + 1)
	if err != nil {
		return err
	}
	worst := uint64(0)
	if found != nil && found.Offset <= last {
		worst = found.Offset
		why = append(why, found.Error())
	}
	for _, off := range skipped {
		worst, lost = max(worst, off), true
	}
	if len(skipped) > 0 {
		why = append(why, fmt.Sprintf("%d damaged entries the view needed were skipped (the first at offset %d)", len(skipped), skipped[0]))
	}
	if len(why) == 0 {
		return nil
	}
	return t.healed(worst, lost, strings.Join(why, "; "))
}

// findDamage reads every segment of the log (read-only) and returns the
// first entry that does not read back, if it is damage rather than a torn
// tail.
func (t *Table) findDamage() *wal.Problem {
	r, err := wal.OpenReader(t.walDir())
	if err != nil {
		return nil
	}
	li, err := r.Inspect()
	if err != nil || li.Problem == nil || li.Problem.Torn {
		return nil
	}
	return li.Problem
}

// salvage reads every entry of the unopenable log that still decodes, sets
// the log aside and returns the entries.
func (t *Table) salvage(openErr error) ([]wal.Record, error) {
	recs, problems, err := wal.Salvage(t.walDir())
	if err != nil {
		return nil, fmt.Errorf("%w; salvaging it: %v", openErr, err)
	}
	id, _ := wal.ReadID(t.walDir())
	aside, err := wal.SetAside(t.walDir())
	if err != nil {
		return nil, fmt.Errorf("%w; setting it aside: %v", openErr, err)
	}
	// The checkpoints belong to the old log: keep them with it, and read the
	// newest (loadCheckpoint) from there.
	for _, f := range checkpointFiles(t.dir) {
		os.Rename(f.path, filepath.Join(aside, filepath.Base(f.path)))
	}
	t.salvagedFrom, t.salvagedID = aside, id
	for _, p := range problems {
		t.opts.Logger.Error("log damage: salvaging around it", "table", t.opts.Name, "problem", p.Error())
	}
	t.opts.Logger.Error("the log could not be opened: set aside and salvaged", "table", t.opts.Name,
		"err", openErr, "set_aside", aside, "entries_salvaged", len(recs), "damaged_places", len(problems))
	return recs, nil
}

// healed finishes the repair of a damaged copy: a checkpoint of the view
// (at the current applied offset) and the log cut behind it at cut+1 (every
// offset up to cut that was damaged is then out of the log); if the view
// lost entries, the cursors in peers' logs are forgotten so that every peer
// is followed again from a snapshot.
func (t *Table) healed(cut uint64, lost bool, why string) error {
	if err := t.checkpointNow(); err != nil {
		return fmt.Errorf("healing the damaged log: %w", err)
	}
	if err := t.log.TruncateFront(min(cut, t.applied) + 1); err != nil {
		return fmt.Errorf("healing the damaged log: %w", err)
	}
	if lost {
		t.cursors.reset()
		why += "; following every peer again from a snapshot"
	}
	t.noteDamage(why)
	return nil
}

// cutDamage handles an entry found damaged while serving the log: the view
// has it (served entries are applied), so the log is cut behind a
// checkpoint that covers it.
func (t *Table) cutDamage(ce *wal.CorruptError) error {
	if err := t.Checkpoint(); err != nil {
		return err
	}
	t.ckptMu.Lock()
	covered := t.ckptOffset
	t.ckptMu.Unlock()
	if covered < ce.Offset {
		return fmt.Errorf("damaged entry %d is not yet behind a checkpoint (at %d)", ce.Offset, covered)
	}
	if err := t.current().TruncateFront(ce.Offset + 1); err != nil {
		return err
	}
	seg := ""
	if r, err := wal.OpenReader(t.walDir()); err == nil {
		seg = r.SegmentOf(ce.Offset)
	}
	t.noteDamage(fmt.Sprintf("entry %d (segment %s) does not read back (%v): cut from the log behind the checkpoint at %d",
		ce.Offset, seg, ce.Err, covered))
	return nil
}

// noteDamage records (and logs) the damage found and what was done.
func (t *Table) noteDamage(what string) {
	t.failMu.Lock()
	t.damage = what
	t.failMu.Unlock()
	t.opts.Logger.Error("log damage contained", "table", t.opts.Name, "dir", t.dir, "what", what)
}
