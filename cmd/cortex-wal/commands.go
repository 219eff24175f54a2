package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/cortex-mesh/cortex/cmd/internal/cli"

	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
	"github.com/spf13/cobra"
)

// ---- ls ----

const lsLong = `List every table copy of DATA_DIR/tables: its directory (<name>-<id>) split
into table name and id, the log's id (wal/LOG_ID), the first and last offset,
the number of entries, segment files and bytes, the offset of the newest
checkpoint, and a status:

  ok                         every entry decodes
  torn_tail                  the last segment ends in an incomplete or bad frame
                             with nothing intact after it: a write torn by a
                             crash, which cortexd cuts at its next start (a
                             warning, not an error, here; verify fails on it)
  torn_tail_in_progress      the same while cortexd runs (--live): an append
                             in progress
  corrupt                    an entry that does not decode, or a gap in the
                             offsets (details on stderr; see cortex-wal verify)
  unreadable                 the log directory cannot be read

ls reads every entry of every log (to count them, checksums included), so it
takes as long as reading the logs. LAST is the last offset before any problem;
an empty log shows FIRST and LAST as "-". --segments also lists every segment
file: path (under DATA_DIR), first offset, entries, bytes.

With --json it prints one object:
  {"data_dir":..., "live":false, "tables":[{"dir","table","id","log_id",
   "first","last","entries","segments","bytes","checkpoint" (null if none),
   "status","problem" (if any: {"segment","offset","byte","bytes","torn",
   "reason"}),"warnings" (if any),"error" (unreadable only),
   "segment_files":[{"path","first","entries","bytes"}]}]}
An empty log has "entries":0 and "first" = "last"+1.`

func lsCmd(a *app) *cobra.Command {
	var asJSON, segments bool
	cmd := &cobra.Command{
		Use:   "ls DATA_DIR [--json] [--segments]",
		Short: "List table copies: log id, offsets, segments, bytes, checkpoint",
		Long:  lsLong,
		Example: `  cortex-wal ls ./cortex-data
  cortex-wal ls ./cortex-data --segments
  cortex-wal ls /var/lib/cortex --json | jq '.tables[] | {dir, last, status}'`,
		Args:                  cli.Positional(cobra.ExactArgs(1)),
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := a.openDataDir(args[0])
			if err != nil {
				return err
			}
			defer d.close()
			copies, err := d.copies()
			if err != nil {
				return err
			}
			reports := make([]copyReport, len(copies))
			for i, c := range copies {
				reports[i] = inspect(c)
				for _, w := range reports[i].warnings(d.live) {
					a.warnf("%s: %s", c.Dir, w)
				}
			}
			if asJSON {
				out := lsJSON{DataDir: d.path, Live: d.live, Tables: []lsTableJSON{}}
				for i := range reports {
					out.Tables = append(out.Tables, newLsTableJSON(&reports[i], d.live))
				}
				return cli.WriteJSON(a.stdout, out)
			}
			cols := cli.NewColumns(a.stdout, "TABLE", "ID", "LOG_ID", "FIRST", "LAST", "ENTRIES", "SEGMENTS", "BYTES", "CHECKPOINT", "STATUS")
			for i := range reports {
				r := &reports[i]
				ckpt := ""
				if r.ckptPath != "" {
					ckpt = strconv.FormatUint(r.ckptOffset, 10)
				}
				if r.err != nil {
					cols.Row(r.Name, r.ID, "", "", "", "", "", "", ckpt, statusUnreadable)
					continue
				}
				li := r.info
				first, last := "", ""
				if li.Entries() > 0 {
					first, last = strconv.FormatUint(li.First, 10), strconv.FormatUint(li.Last, 10)
				}
				status := r.status(d.live)
				if li.Problem != nil {
					status += " at " + strconv.FormatUint(li.Problem.Offset, 10)
				}
				cols.Row(r.Name, r.ID, li.ID, first, last, strconv.FormatUint(li.Entries(), 10),
					strconv.Itoa(len(li.Segments)), strconv.FormatInt(li.Bytes, 10), ckpt, status)
			}
			if err := cols.Flush(); err != nil || !segments {
				return err
			}
			fmt.Fprintln(a.stdout)
			cols = cli.NewColumns(a.stdout, "SEGMENT", "FIRST", "ENTRIES", "BYTES")
			for i := range reports {
				if reports[i].info == nil {
					continue
				}
				for _, s := range reports[i].info.Segments {
					cols.Row(relPath(d.path, s.Path), strconv.FormatUint(s.First, 10), strconv.Itoa(s.Entries), strconv.FormatInt(s.Size, 10))
				}
			}
			return cols.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	cmd.Flags().BoolVar(&segments, "segments", false, "also list every segment file")
	return cmd
}

type lsJSON struct {
	DataDir string        `json:"data_dir"`
	Live    bool          `json:"live"`
	Tables  []lsTableJSON `json:"tables"`
}

type lsTableJSON struct {
	Dir          string        `json:"dir"`
	Table        string        `json:"table"`
	ID           string        `json:"id"`
	LogID        string        `json:"log_id"`
	First        uint64        `json:"first"`
	Last         uint64        `json:"last"`
	Entries      uint64        `json:"entries"`
	Segments     int           `json:"segments"`
	Bytes        int64         `json:"bytes"`
	Checkpoint   *uint64       `json:"checkpoint"`
	Status       string        `json:"status"`
	Problem      *problemJSON  `json:"problem,omitempty"`
	Warnings     []string      `json:"warnings,omitempty"`
	Error        string        `json:"error,omitempty"`
	SegmentFiles []segmentJSON `json:"segment_files"`
}

type segmentJSON struct {
	Path    string `json:"path"`
	First   uint64 `json:"first"`
	Entries int    `json:"entries"`
	Bytes   int64  `json:"bytes"`
}

type problemJSON struct {
	Segment string `json:"segment"`
	Offset  uint64 `json:"offset"`
	Byte    int64  `json:"byte"`
	Bytes   int64  `json:"bytes"`
	Torn    bool   `json:"torn"`
	Reason  string `json:"reason"`
}

func newProblemJSON(p *wal.Problem) *problemJSON {
	if p == nil {
		return nil
	}
	return &problemJSON{Segment: p.Segment, Offset: p.Offset, Byte: p.Pos, Bytes: p.Bytes, Torn: p.Torn, Reason: p.Reason}
}

func newLsTableJSON(r *copyReport, live bool) lsTableJSON {
	t := lsTableJSON{Dir: r.Dir, Table: r.Name, ID: r.ID, Status: r.status(live), Warnings: r.warnings(live), SegmentFiles: []segmentJSON{}}
	if r.ckptPath != "" {
		off := r.ckptOffset
		t.Checkpoint = &off
	}
	if r.err != nil {
		t.Error, t.Warnings = r.err.Error(), nil
		return t
	}
	li := r.info
	t.LogID, t.First, t.Last, t.Entries, t.Segments, t.Bytes = li.ID, li.First, li.Last, li.Entries(), len(li.Segments), li.Bytes
	t.Problem = newProblemJSON(li.Problem)
	for _, s := range li.Segments {
		t.SegmentFiles = append(t.SegmentFiles, segmentJSON{s.Path, s.First, s.Entries, s.Size})
	}
	return t
}

func relPath(base, path string) string {
	if rel, err := filepath.Rel(base, path); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return path
}

// ---- dump ----

const dumpLong = `Print the entries of one table copy's log, one a line, in offset order, from
--from (default: the first offset the log holds) for at most --limit entries
(default 0: all). TABLE is the table's name, or its copy's directory name
(<name>-<id>, as cortex-wal ls shows) when several copies of that name exist
(a dropped and re-created table's leftover, say).

A line is:

  OFFSET TIME/COUNTER ORIGIN OP KEY SIZE [VALUE]

TIME is the entry's hybrid logical clock as UTC wall time (RFC 3339 with
milliseconds) and COUNTER its logical counter; OP is put or del; SIZE is the
value's size in bytes ("-" for del); VALUE (with --values; "-" for del) and
KEY are printed as they are when they are printable UTF-8 without spaces,
quotes or backslashes, else Go-quoted ("a b", "\x00\xff").

With --json it prints one JSON array, one entry a line (take the entries
out of it with jq '.[]'):
  {"offset","hlc","hlc_time","time","counter","origin","op","key","value_size"}
plus "value" with --values. hlc is the timestamp as a decimal string (a JSON
number that large would be rounded by jq or JavaScript), hlc_time and time
the UTC wall time it encodes, counter its logical counter. A key or value
that is not valid UTF-8 is given as "key_base64"/"value_base64" instead
("key" is then null).

Every entry printed has been decoded and its checksum checked. At a torn tail
dump stops with a warning (exit 0); at a bad entry it stops with an error
(exit 1) after the entries before it. An offset before the first one the log
holds (truncated behind a checkpoint) is an error.`

// errStop ends a Scan once --limit entries are printed.
var errStop = errors.New("limit reached")

func dumpCmd(a *app) *cobra.Command {
	var (
		from          uint64
		limit         int
		asJSON, vals  bool
		fromSpecified bool
	)
	cmd := &cobra.Command{
		Use:   "dump DATA_DIR TABLE [--from N] [--limit N] [--json] [--values]",
		Short: "Print a table copy's log entries, one a line",
		Long:  dumpLong,
		Example: `  cortex-wal dump ./cortex-data users
  cortex-wal dump ./cortex-data users --from 1200 --limit 10 --values
  cortex-wal dump ./cortex-data users --json | jq -c '.[] | select(.op == "del")'`,
		Args:                  cli.Positional(cobra.ExactArgs(2)),
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 0 {
				return cli.Usagef(cmd, "--limit %d is negative: give a number of entries, or 0 for all", limit)
			}
			fromSpecified = cmd.Flags().Changed("from")
			d, err := a.openDataDir(args[0])
			if err != nil {
				return err
			}
			defer d.close()
			c, err := d.find(args[1])
			if err != nil {
				return err
			}
			rd, err := wal.OpenReader(c.walDir())
			if err != nil {
				return fmt.Errorf("%s: %w", c.Dir, err)
			}
			if from == 0 {
				from = rd.First()
			}
			w := bufio.NewWriterSize(a.stdout, 64<<10)
			list := cli.NewJSONList(w)
			n := 0
			err = rd.Scan(from, func(r wal.Record) error {
				var err error
				if asJSON {
					err = list.Add(newEntryJSON(r, vals))
				} else {
					err = writeEntry(w, r, vals)
				}
				if err != nil {
					return err
				}
				if n++; limit > 0 && n >= limit {
					return errStop
				}
				return nil
			})
			var p *wal.Problem
			switch {
			case err == nil, errors.Is(err, errStop):
				err = nil
			case errors.As(err, &p) && p.Torn:
				a.warnf("%s: %s", c.Dir, describeProblem(p, d.live))
				err = nil
			case errors.As(err, &p):
				err = fmt.Errorf("%s: %s (cortex-wal verify checks every table)", c.Dir, describeProblem(p, d.live))
			case errors.Is(err, wal.ErrTruncated):
				hint := "the entries before it are only in the checkpoint"
				if path, off, ok := tables.NewestCheckpoint(c.Path); ok {
					hint = fmt.Sprintf("the entries up to %d are in the checkpoint %s", off, path)
				}
				err = fmt.Errorf("%s: --from %d is before the first offset the log holds, %d: it was truncated behind a checkpoint (%s); give --from %d or later", c.Dir, from, rd.First(), hint, rd.First())
			default:
				err = fmt.Errorf("%s: %w", c.Dir, err)
			}
			if asJSON {
				if cerr := list.Close(); err == nil {
					err = cerr
				}
			}
			if ferr := w.Flush(); err == nil {
				err = ferr
			}
			if err == nil && n == 0 && fromSpecified {
				a.warnf("%s: no entries at or after offset %d", c.Dir, from)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.Uint64Var(&from, "from", 0, "first offset to print (default: the first the log holds)")
	f.IntVar(&limit, "limit", 0, "print at most this many entries (0: all)")
	f.BoolVar(&asJSON, "json", false, "print one JSON array, one entry a line")
	f.BoolVar(&vals, "values", false, "also print each value")
	return cmd
}

func writeEntry(w *bufio.Writer, r wal.Record, values bool) error {
	size := "-"
	if r.Op != wal.OpDelete {
		size = strconv.Itoa(len(r.Value))
	}
	_, err := fmt.Fprintf(w, "%d %s %s %s %s %s", r.Offset, hlcString(r.Version.HLC), field([]byte(r.Version.Origin)), r.Op, field(r.Key), size)
	if err != nil {
		return err
	}
	if values {
		v := "-"
		if r.Op != wal.OpDelete {
			v = field(r.Value)
		}
		w.WriteString(" " + v)
	}
	return w.WriteByte('\n')
}

type entryJSON struct {
	Offset      uint64           `json:"offset"`
	HLC         tables.Timestamp `json:"hlc"`
	HLCTime     string           `json:"hlc_time"`
	Time        string           `json:"time"`
	Counter     uint16           `json:"counter"`
	Origin      string           `json:"origin"`
	Op          string           `json:"op"`
	Key         *string          `json:"key"`
	KeyBase64   string           `json:"key_base64,omitempty"`
	ValueSize   int              `json:"value_size"`
	Value       *string          `json:"value,omitempty"`
	ValueBase64 string           `json:"value_base64,omitempty"`
}

func newEntryJSON(r wal.Record, values bool) entryJSON {
	h := tables.Timestamp(r.Version.HLC)
	e := entryJSON{Offset: r.Offset, HLC: h, HLCTime: h.Time(), Origin: r.Version.Origin, Op: r.Op.String(), ValueSize: len(r.Value)}
	e.Time, e.Counter = hlcParts(r.Version.HLC)
	e.Key, e.KeyBase64 = cli.Text(r.Key)
	if values && r.Op != wal.OpDelete {
		e.Value, e.ValueBase64 = cli.Text(r.Value)
	}
	return e
}

// ---- verify ----

const verifyLong = `Verify every table copy of DATA_DIR (or only TABLE: its name, or its copy's
directory name): every entry of every segment frames and decodes (checksum
included), the segments' offsets are contiguous, wal/LOG_ID is well formed,
and the newest checkpoint decodes, belongs to this log (same log id), holds
the offset its name says, and joins the log (no gap between the checkpoint
and the first offset the log holds, not ahead of the last). These are the
checks cortexd's recovery makes.

It prints one line per copy on stdout: "ok DIR ..." or "FAIL DIR <problem>"
(for a bad entry: offset, segment file, byte position, reason). Exit 0 if
every copy is ok; else exit 1 with one "error: " line on stderr naming the
first problem.

A torn tail (the last segment ends in an incomplete or bad frame with nothing
intact after it) is a failure: "torn tail at offset N (cortexd cuts it at its
next start)". It means the node crashed in a write that was never
acknowledged; cortexd repairs it when it starts, and verify then passes. With
--live while cortexd runs it is an append in progress: "torn tail (in
progress)", not a failure. Leftovers of an interrupted truncation are noted,
not failed (cortexd completes it at its next start).

With --json it prints one object instead:
  {"ok":bool, "live":bool, "tables":[{"dir","table","id","ok","first","last",
   "entries","checkpoint" (null if none),"problem" (if any),"failures":[...],
   "notes":[...]}]}`

func verifyCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify DATA_DIR [TABLE] [--json]",
		Short: "Check that every entry decodes and offsets are contiguous (exit 1 if not)",
		Long:  verifyLong,
		Example: `  cortex-wal verify ./cortex-data
  cortex-wal verify ./cortex-data users && echo users is intact
  cortex-wal verify /var/lib/cortex --json | jq '.tables[] | select(.ok | not)'`,
		Args:                  cli.Positional(cobra.RangeArgs(1, 2)),
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := a.openDataDir(args[0])
			if err != nil {
				return err
			}
			defer d.close()
			var copies []tableCopy
			if len(args) == 2 {
				c, err := d.find(args[1])
				if err != nil {
					return err
				}
				copies = []tableCopy{c}
			} else if copies, err = d.copies(); err != nil {
				return err
			}
			results := make([]verifyResult, len(copies))
			failed, firstFailure := 0, ""
			for i, c := range copies {
				results[i] = verifyCopy(inspect(c), d.live)
				if r := &results[i]; len(r.Failures) > 0 {
					if failed == 0 {
						firstFailure = c.Dir + ": " + r.Failures[0]
					}
					failed++
				}
			}
			if asJSON {
				out := verifyJSON{OK: failed == 0, Live: d.live, Tables: results}
				if err := cli.WriteJSON(a.stdout, out); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
				for _, r := range results {
					if len(r.Failures) == 0 {
						fmt.Fprintf(tw, "ok\t%s\t%s\n", r.Dir, r.summary)
					}
					for _, f := range r.Failures {
						fmt.Fprintf(tw, "FAIL\t%s\t%s\n", r.Dir, f)
					}
					for _, n := range r.Notes {
						fmt.Fprintf(tw, "note\t%s\t%s\n", r.Dir, n)
					}
				}
				if err := tw.Flush(); err != nil {
					return err
				}
			}
			if failed == 0 {
				return nil
			}
			more := ""
			if n := failed - 1; n > 0 {
				more = fmt.Sprintf(" (and %s more, listed above)", plural(n, "copy", "copies"))
			}
			return fmt.Errorf("verify failed for %d of %s: %s%s", failed, plural(len(copies), "table copy", "table copies"), firstFailure, more)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

type verifyJSON struct {
	OK     bool           `json:"ok"`
	Live   bool           `json:"live"`
	Tables []verifyResult `json:"tables"`
}

type verifyResult struct {
	Dir        string       `json:"dir"`
	Table      string       `json:"table"`
	ID         string       `json:"id"`
	OK         bool         `json:"ok"`
	First      uint64       `json:"first"`
	Last       uint64       `json:"last"`
	Entries    uint64       `json:"entries"`
	Checkpoint *uint64      `json:"checkpoint"`
	Problem    *problemJSON `json:"problem,omitempty"`
	Failures   []string     `json:"failures"`
	Notes      []string     `json:"notes"`
	summary    string
}

// previousID reports whether id is one the log in dir had before its
// current one (a copy restored by copying files is given a new id, for the
// same entries: its checkpoints of the old id stay valid).
func previousID(dir, id string) bool {
	prev, _ := wal.PreviousIDs(dir)
	for _, p := range prev {
		if p == id {
			return true
		}
	}
	return false
}

// verifyCopy makes every check of verify on one copy.
func verifyCopy(r copyReport, live bool) verifyResult {
	v := verifyResult{Dir: r.Dir, Table: r.Name, ID: r.ID, Failures: []string{}, Notes: []string{}}
	fail := func(format string, args ...any) { v.Failures = append(v.Failures, fmt.Sprintf(format, args...)) }
	if r.ckptPath != "" {
		off := r.ckptOffset
		v.Checkpoint = &off
	}
	if r.err != nil {
		fail("cannot read the log: %v", r.err)
		return v
	}
	li := r.info
	v.First, v.Last, v.Entries = li.First, li.Last, li.Entries()
	v.Problem = newProblemJSON(li.Problem)
	if p := li.Problem; p != nil {
		if p.Torn && live {
			v.Notes = append(v.Notes, describeProblem(p, live))
		} else if p.Torn {
			fail("torn tail at offset %d (cortexd cuts it at its next start): %d bytes from byte %d of %s: %s", p.Offset, p.Bytes, p.Pos, p.Segment, p.Reason)
		} else {
			fail("%s", describeProblem(p, live))
		}
	}
	if li.IDErr != nil {
		fail("log id: %v", li.IDErr)
	}
	if len(li.Pending) > 0 {
		v.Notes = append(v.Notes, fmt.Sprintf("an interrupted log truncation left %s; cortexd completes it at its next start", strings.Join(li.Pending, ", ")))
	}
	logEnds := li.Problem == nil || li.Problem.Torn // Last is where the log ends once repaired
	if r.ckptPath == "" {
		if err := tables.JoinsLog(0, li.First, li.Last); errors.Is(err, tables.ErrLogGap) {
			fail("%v", err)
		}
	} else if data, err := os.ReadFile(r.ckptPath); err != nil {
		fail("checkpoint: %v", err)
	} else if ck, err := tables.DecodeCheckpoint(data); err != nil {
		fail("checkpoint %s: %v", r.ckptPath, err)
	} else {
		switch {
		case li.IDErr == nil && ck.LogID != li.ID && !previousID(r.walDir(), ck.LogID):
			fail("checkpoint %s belongs to log %s, not to this copy's log %s", r.ckptPath, ck.LogID, li.ID)
		case ck.Offset != r.ckptOffset:
			fail("checkpoint %s says offset %d", r.ckptPath, ck.Offset)
		default:
			// Where the log ends is known only once a damaged tail is cut.
			if err := tables.JoinsLog(ck.Offset, li.First, li.Last); errors.Is(err, tables.ErrLogGap) || logEnds && err != nil {
				fail("checkpoint %s: %v", r.ckptPath, err)
			}
		}
	}
	v.OK = len(v.Failures) == 0
	if li.Entries() == 0 {
		v.summary = fmt.Sprintf("log empty (next offset %d)", li.Last+1)
	} else {
		v.summary = fmt.Sprintf("offsets %d-%d (%s, %s)", li.First, li.Last, plural(int(li.Entries()), "entry", "entries"), plural(len(li.Segments), "segment", "segments"))
	}
	if r.ckptPath != "" {
		v.summary += fmt.Sprintf(", checkpoint %d", r.ckptOffset)
	} else {
		v.summary += ", no checkpoint"
	}
	return v
}
