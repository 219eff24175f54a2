package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/cortex-mesh/cortex/backup"
	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/store"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
)

// Backups and restores (the file format is package backup's):
//
//	POST /v1/backup        body BackupRequest; answers the backup file itself, streamed
//	                       (application/octet-stream), each table as of one offset of its log
//	POST /v1/restore/plan  body RestoreRequest; answers RestorePlan: what a restore would do
//	POST /v1/restore       body one line of JSON RestoreRequest, then the backup file;
//	                       answers RestoreResult once every record is applied
//
// A backup needs read permission on each table; a restore write on each
// table it merges into and what "table create" needs for each it creates.
// System tables are never backed up or restored. A restore spools the file
// into the data directory and verifies all of it (checksums, every record
// against this node's limits) before it changes anything.

// BackupRequest names the tables to back up (none: every table this node
// holds that the caller may read); Prefix, with one table, keeps only the
// keys starting with it (an export).
type BackupRequest struct {
	Tables []string `json:"tables,omitempty"`
	Prefix []byte   `json:"prefix,omitempty"`
}

// RestoreRequest says what to restore: the sections of the file chosen
// (their TableMeta as its manifest gives them; the file must hold them),
// --as, --scope, and the overrides (Confirmed also confirms merging into a
// table that exists). Import: every target must exist, and merging needs no
// confirmation. Size is the file's size in bytes (restore only).
type RestoreRequest struct {
	Sections []backup.TableMeta `json:"sections"`
	As       string             `json:"as,omitempty"`
	Scope    *scope.Scope       `json:"scope,omitempty"`
	Import   bool               `json:"import,omitempty"`
	Size     int64              `json:"size,omitempty"`
	Overrides
}

// RestoreStep is what a restore does with one section.
type RestoreStep struct {
	From    string      `json:"from"`
	To      string      `json:"to"`
	Action  string      `json:"action"` // "create" or "merge"
	Scope   scope.Scope `json:"scope"`
	Records uint64      `json:"records"`
	AsOf    uint64      `json:"as_of"`
}

// RestorePlan lists the steps of a restore.
type RestorePlan struct {
	Steps []RestoreStep `json:"steps"`
}

// RestoreTable is what a restore did with one section: the records it
// read, how many were newer than what the table held (applied, and
// replicated as any write) and the table's id.
type RestoreTable struct {
	RestoreStep
	ID      string `json:"id"`
	Applied uint64 `json:"applied"`
}

// RestoreResult is the answer of a restore.
type RestoreResult struct {
	Tables []RestoreTable `json:"tables"`
}

// maxRestoreBytes bounds the file a restore takes.
const maxRestoreBytes = 1 << 40

// backupStall is how long a backup stream may wait for its connection to
// take bytes, and a restore upload for the next bytes.
const backupStall = 60 * time.Second

// stallWriter sets the connection's write deadline before every write.
type stallWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (s stallWriter) Write(p []byte) (int, error) {
	s.rc.SetWriteDeadline(time.Now().Add(backupStall))
	return s.w.Write(p)
}

// stallReader sets the connection's read deadline before every read.
type stallReader struct {
	r  io.Reader
	rc *http.ResponseController
}

func (s stallReader) Read(p []byte) (int, error) {
	s.rc.SetReadDeadline(time.Now().Add(backupStall))
	return s.r.Read(p)
}

func who(c caller) string {
	if c.identity == "" {
		return "(socket)"
	}
	return c.identity
}

// backupTables resolves a backup's tables: each named one readable and
// held here, never a system table; none named, every user table held here
// that the caller may read.
func (s *Server) backupTables(c caller, req *BackupRequest) ([]scope.TableInfo, error) {
	var infos []scope.TableInfo
	if len(req.Tables) == 0 {
		for _, info := range s.store.HeldInfo() {
			if !info.System() && s.check(c, info.Name, store.PermRead) == nil {
				infos = append(infos, info)
			}
		}
	}
	seen := map[string]bool{}
	for _, name := range req.Tables {
		if scope.IsSystem(name) {
			return nil, &Error{Status: http.StatusBadRequest, Code: CodeInvalid, Message: fmt.Sprintf("%s is a system table: backups never hold system tables", name)}
		}
		if seen[name] {
			return nil, &Error{Status: http.StatusBadRequest, Code: CodeInvalid, Message: fmt.Sprintf("table %s is named twice", name)}
		}
		seen[name] = true
		if _, err := s.table(c, name, store.PermRead); err != nil {
			return nil, err
		}
		info, err := s.store.Info(name)
		if err != nil {
			return nil, err
		}
		infos = append(infos, info)
	}
	if len(req.Prefix) > 0 && len(infos) != 1 {
		return nil, &Error{Status: http.StatusBadRequest, Code: CodeInvalid, Message: "a prefix needs exactly one table"}
	}
	return infos, nil
}

// serveBackup answers POST /v1/backup.
func (s *Server) serveBackup(w http.ResponseWriter, r *http.Request) {
	var req BackupRequest
	if !s.decodeRequest(w, r, "backup", &req) {
		return
	}
	c := callerOf(r)
	infos, err := s.backupTables(c, &req)
	if err != nil {
		writeError(w, err)
		return
	}
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Time{})
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	names := make([]string, len(infos))
	for i, info := range infos {
		names[i] = info.Name
	}
	start := time.Now()
	bw, err := backup.NewWriter(stallWriter{w, rc}, backup.Header{Node: s.store.Node(),
		Created: start.UTC().Truncate(time.Millisecond), Prefix: req.Prefix, Tables: names})
	if err != nil {
		s.log.Warn("backup: the client did not take the stream", "identity", who(c), "err", err)
		return
	}
	var records uint64
	for _, info := range infos {
		n, err := s.backupTable(r.Context(), bw, info, req.Prefix)
		records += n
		if err != nil {
			if r.Context().Err() == nil && !errors.Is(err, errStream) {
				bw.Abort(err.Error())
			}
			s.log.Warn("backup failed", "identity", who(c), "table", info.Name, "err", err)
			return
		}
	}
	m, err := bw.Close()
	if err != nil {
		s.log.Warn("backup failed", "identity", who(c), "err", err)
		return
	}
	s.log.Info("backup done", "identity", who(c), "tables", names, "records", records, "bytes", m.Size,
		"seconds", time.Since(start).Seconds())
}

// errStream marks a failure to write the stream (nothing more can be sent).
var errStream = errors.New("the backup stream failed")

// backupTable writes one table's section: its copy frozen as of one
// offset, then every record (tombstones included).
func (s *Server) backupTable(ctx context.Context, bw *backup.Writer, info scope.TableInfo, prefix []byte) (uint64, error) {
	t, err := s.store.Table(info.Name)
	if err != nil {
		return 0, err
	}
	f := t.Freeze()
	m := backup.TableMeta{Name: info.Name, ID: info.ID, Scope: info.Scope, Home: info.Home, LogID: f.LogID,
		AsOf: f.Offset, Records: uint64(f.Count(prefix))}
	if err := bw.Begin(m); err != nil {
		return 0, fmt.Errorf("%w: %w", errStream, err)
	}
	var n uint64
	err = f.Each(prefix, func(rec tables.Record) error {
		if n%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		n++
		if err := bw.Add(backup.FromTable(rec)); err != nil {
			return fmt.Errorf("%w: %w", errStream, err)
		}
		return nil
	})
	if err != nil {
		return n, err
	}
	if err := bw.End(); err != nil {
		return n, fmt.Errorf("%w: %w", errStream, err)
	}
	return n, nil
}

// planRestore decides a restore's steps and checks the caller's rights:
// write on each table merged into, table creation (and its placement
// checks) for each created; merging needs confirmation unless an import.
func (s *Server) planRestore(c caller, req *RestoreRequest) ([]backup.Step, error) {
	present := map[string]backup.Presence{}
	for _, sec := range req.Sections {
		to := sec.Name
		if req.As != "" {
			to = req.As
		}
		switch _, err := s.store.Table(to); {
		case err == nil:
			present[to] = backup.Held
		case errors.Is(err, store.ErrNoTable):
		case errors.Is(err, store.ErrNotHeld):
			present[to] = backup.NotHeld
		default:
			return nil, err
		}
	}
	steps, err := backup.Plan(backup.PlanInput{Sections: req.Sections, As: req.As, Scope: req.Scope,
		Node: s.store.Node(), Present: present, MustExist: req.Import})
	switch {
	case errors.Is(err, backup.ErrNotHeld):
		return nil, &Error{Status: http.StatusMisdirectedRequest, Code: CodeNotHeld, Message: err.Error()}
	case errors.Is(err, backup.ErrMissing):
		return nil, &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: err.Error()}
	case err != nil:
		return nil, err
	}
	var merges []string
	for _, st := range steps {
		if st.Create {
			if err := s.check(c, "*", store.PermAdmin); err != nil {
				return nil, err
			}
			if err := s.guardPlacement(nil, scope.TableInfo{Name: st.To, Home: s.store.Node(), Scope: st.Scope}, req.Overrides); err != nil {
				return nil, err
			}
			continue
		}
		if err := s.check(c, st.To, store.PermWrite); err != nil {
			return nil, err
		}
		merges = append(merges, st.To)
	}
	if len(merges) > 0 && !req.Import && !req.Confirmed {
		return nil, &Error{Status: http.StatusPreconditionFailed, Code: CodeNeedsConfirm, Message: fmt.Sprintf(
			"table %s exists here: the file's records are merged into it by last-write-wins (a record here with a newer version stays)",
			joinNames(merges))}
	}
	return steps, nil
}

func joinNames(names []string) string {
	b, _ := json.Marshal(names)
	if len(names) == 1 {
		return names[0]
	}
	return string(b)
}

func describeSteps(steps []backup.Step) []RestoreStep {
	out := make([]RestoreStep, len(steps))
	for i, st := range steps {
		action, sc := "merge", st.From.Scope
		if st.Create {
			action, sc = "create", st.Scope
		}
		out[i] = RestoreStep{From: st.From.Name, To: st.To, Action: action, Scope: sc, Records: st.From.Records, AsOf: st.From.AsOf}
	}
	return out
}

func (s *Server) restorePlan(_ context.Context, c caller, req *RestoreRequest) (RestorePlan, error) {
	steps, err := s.planRestore(c, req)
	if err != nil {
		return RestorePlan{}, err
	}
	return RestorePlan{Steps: describeSteps(steps)}, nil
}

// serveRestore answers POST /v1/restore: a line of JSON, then the file.
func (s *Server) serveRestore(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeError(w, &Error{Status: http.StatusMethodNotAllowed, Code: CodeInvalid, Message: "use POST /v1/restore"})
		return
	}
	res, err := s.restore(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(res)
}

func (s *Server) restore(w http.ResponseWriter, r *http.Request) (RestoreResult, error) {
	c := callerOf(r)
	rc := http.NewResponseController(w)
	body := bufio.NewReaderSize(http.MaxBytesReader(w, r.Body, maxRestoreBytes+1<<20), 64<<10)
	line, err := body.ReadSlice('\n')
	if err != nil {
		return RestoreResult{}, &Error{Status: http.StatusBadRequest, Code: CodeInvalid, Message: "malformed restore request: it must start with one line of JSON"}
	}
	var req RestoreRequest
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return RestoreResult{}, &Error{Status: http.StatusBadRequest, Code: CodeInvalid, Message: "malformed restore request: " + err.Error()}
	}
	if req.Size <= 0 || req.Size > maxRestoreBytes {
		return RestoreResult{}, &Error{Status: http.StatusBadRequest, Code: CodeInvalid, Message: fmt.Sprintf("a restore needs the file's size, 1 byte to %d", int64(maxRestoreBytes))}
	}
	steps, err := s.planRestore(c, &req)
	if err != nil {
		return RestoreResult{}, err
	}

	// Spool and verify the whole file before anything changes.
	spool, err := os.CreateTemp(s.store.Dir(), restoreSpoolPattern)
	if err != nil {
		return RestoreResult{}, fmt.Errorf("restore: spool: %w", err)
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	start := time.Now()
	if err := s.verifyUpload(io.TeeReader(io.LimitReader(stallReader{body, rc}, req.Size), spool), steps); err != nil {
		if errors.Is(err, backup.ErrCorrupt) || errors.Is(err, backup.ErrAborted) || errors.Is(err, tables.ErrInvalid) {
			return RestoreResult{}, &Error{Status: http.StatusBadRequest, Code: CodeInvalid, Message: err.Error() + ": nothing was restored"}
		}
		return RestoreResult{}, fmt.Errorf("restore: %w: nothing was restored", err)
	}
	rc.SetReadDeadline(time.Time{})
	s.log.Info("restore: file verified", "identity", who(c), "bytes", req.Size, "seconds", time.Since(start).Seconds())

	// The catalog may have changed during the upload: decide again.
	again, err := s.planRestore(c, &req)
	if err != nil {
		return RestoreResult{}, err
	}
	steps = again
	// Verified: from here it finishes even if the client goes away.
	ctx := context.WithoutCancel(r.Context())
	res := RestoreResult{Tables: make([]RestoreTable, len(steps))}
	targets := map[string]*restoreTarget{}
	for i, st := range steps {
		res.Tables[i].RestoreStep = describeSteps(steps[i : i+1])[0]
		if st.Create {
			info, err := s.store.CreateTable(ctx, st.To, st.Scope)
			if err != nil {
				return res, fmt.Errorf("restore: create table %s: %w", st.To, err)
			}
			s.log.Info("restore: created table", "table", st.To, "id", info.ID, "scope", st.Scope.String())
		}
		t, err := s.store.Table(st.To)
		if err != nil {
			return res, fmt.Errorf("restore: table %s: %w", st.To, err)
		}
		info, _ := s.store.Info(st.To)
		res.Tables[i].ID = info.ID
		targets[st.From.Name] = &restoreTarget{t: t, res: &res.Tables[i]}
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return res, fmt.Errorf("restore: %w", err)
	}
	if err := applySpool(ctx, spool, targets); err != nil {
		return res, fmt.Errorf("restore stopped part way (what was applied stays, and restoring the file again is safe): %w", err)
	}
	for _, t := range res.Tables {
		s.log.Info("restore done", "identity", who(c), "from", t.From, "table", t.To, "records", t.Records, "applied", t.Applied,
			"seconds", time.Since(start).Seconds())
	}
	return res, nil
}

// restoreSpoolPattern names the file a restore spools its upload to, in
// the data directory.
const restoreSpoolPattern = "restore-*.tmp"

// RemoveRestoreSpools removes the spool files of restores that a crash or a
// kill -9 interrupted (a restore removes its own when it ends), logging each
// with its size. Call it at start, holding the data directory's lock and
// before the API serves: a spool is never applied from, so removing one
// changes no table. It returns how many it removed; a spool it could not
// remove is an error naming it (the rest are still removed).
func RemoveRestoreSpools(dataDir string, log *slog.Logger) (int, error) {
	files, err := filepath.Glob(filepath.Join(dataDir, restoreSpoolPattern))
	if err != nil {
		return 0, fmt.Errorf("restore spools in %s: %w", dataDir, err)
	}
	removed := 0
	var errs []error
	for _, f := range files {
		fi, err := os.Lstat(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("restore spool %s: %w", f, err))
			continue
		}
		if !fi.Mode().IsRegular() {
			errs = append(errs, fmt.Errorf("restore spool %s is not a regular file (mode %s): left in place", f, fi.Mode()))
			continue
		}
		if err := os.Remove(f); err != nil {
			errs = append(errs, fmt.Errorf("removing restore spool %s: %w", f, err))
			continue
		}
		removed++
		log.Warn("removed the spool of an interrupted restore (nothing of it was applied, or what was stays)",
			"file", f, "bytes", fi.Size(), "modified", fi.ModTime().UTC().Format(time.RFC3339))
	}
	return removed, errors.Join(errs...)
}

// verifyUpload reads the whole file, checking it (backup.Read) and every
// record of a chosen section as the table it goes to would take it: within
// this node's limits and clock horizon.
func (s *Server) verifyUpload(r io.Reader, steps []backup.Step) error {
	want := map[string]backup.Step{}
	for _, st := range steps {
		want[st.From.Name] = st
	}
	found := map[string]bool{}
	limits := s.limits
	_, err := backup.Read(r, backup.Visitor{
		Table: func(m backup.TableMeta) (bool, error) {
			st, ok := want[m.Name]
			if !ok {
				return false, nil
			}
			if m.ID != st.From.ID || m.AsOf != st.From.AsOf || m.Records != st.From.Records || m.LogID != st.From.LogID {
				return false, fmt.Errorf("%w: the file's table %s is not the one the request announced", tables.ErrInvalid, m.Name)
			}
			found[m.Name] = true
			return true, nil
		},
		Record: func(m backup.TableMeta, rec backup.Record) error {
			switch {
			case len(rec.Key) > limits.MaxKeySize:
				return fmt.Errorf("%w: table %s: key %q of %d bytes: this node takes keys of at most %d (cortexd --max-key-size)", tables.ErrInvalid, m.Name, rec.Key, len(rec.Key), limits.MaxKeySize)
			case len(rec.Value) > limits.MaxValueSize:
				return fmt.Errorf("%w: table %s: key %q: a value of %d bytes: this node takes values of at most %d (cortexd --max-value-size)", tables.ErrInvalid, m.Name, rec.Key, len(rec.Value), limits.MaxValueSize)
			case rec.HLC > s.store.Clock().Horizon():
				at, _ := tables.HLCTime(rec.HLC)
				return fmt.Errorf("%w: table %s: key %q: its version (%s) is ahead of this node's clock", tables.ErrInvalid, m.Name, rec.Key, at.Format(time.RFC3339))
			}
			return nil
		},
	})
	if err != nil {
		return err
	}
	for name := range want {
		if !found[name] {
			return fmt.Errorf("%w: the file holds no table %s", tables.ErrInvalid, name)
		}
	}
	return nil
}

type restoreTarget struct {
	t       *tables.Table
	res     *RestoreTable
	pending []wal.Entry
	size    int
}

// flush applies the pending entries by last-write-wins, as a peer's.
func (rt *restoreTarget) flush(ctx context.Context) error {
	if len(rt.pending) == 0 {
		return nil
	}
	n, err := rt.t.Apply(ctx, rt.pending)
	rt.res.Applied += uint64(n)
	rt.pending, rt.size = rt.pending[:0], 0
	if err != nil {
		return fmt.Errorf("table %s: %w", rt.res.To, err)
	}
	return nil
}

// applySpool reads the verified file again and applies the chosen
// sections' records in batches.
func applySpool(ctx context.Context, r io.Reader, targets map[string]*restoreTarget) error {
	var cur *restoreTarget
	_, err := backup.Read(r, backup.Visitor{
		Table: func(m backup.TableMeta) (bool, error) {
			if cur != nil {
				if err := cur.flush(ctx); err != nil {
					return false, err
				}
			}
			cur = targets[m.Name]
			return cur != nil, nil
		},
		Record: func(_ backup.TableMeta, rec backup.Record) error {
			cur.pending = append(cur.pending, rec.Entry())
			cur.size += len(rec.Key) + len(rec.Value)
			if len(cur.pending) >= 1024 || cur.size >= 4<<20 {
				return cur.flush(ctx)
			}
			return nil
		},
	})
	if err == nil && cur != nil {
		err = cur.flush(ctx)
	}
	return err
}

// Backup streams a backup of the tables req names (all this node holds
// that the caller may read, if none) into w. The stream is the file: check
// it with backup.Read (a cut stream does not verify).
func (c *Client) Backup(ctx context.Context, req BackupRequest, w io.Writer) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	hresp, err := c.post(ctx, "backup", bytes.NewReader(body), int64(len(body)))
	if err != nil {
		return err
	}
	defer hresp.Body.Close()
	if _, err := io.Copy(w, hresp.Body); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w at %s: the backup stream broke off: %w", ErrUnreachable, c.where, err)
	}
	return nil
}

// RestorePlan says what a restore of req would do, changing nothing.
func (c *Client) RestorePlan(ctx context.Context, req RestoreRequest) (RestorePlan, error) {
	var r RestorePlan
	return r, c.call(ctx, "restore/plan", req, &r)
}

// Restore sends a backup file (req.Size bytes from file) and restores the
// sections req chooses; it returns once every record is applied.
func (c *Client) Restore(ctx context.Context, req RestoreRequest, file io.Reader) (RestoreResult, error) {
	line, err := json.Marshal(req)
	if err != nil {
		return RestoreResult{}, err
	}
	line = append(line, '\n')
	hresp, err := c.post(ctx, "restore", io.MultiReader(bytes.NewReader(line), io.LimitReader(file, req.Size)), int64(len(line))+req.Size)
	if err != nil {
		return RestoreResult{}, err
	}
	defer hresp.Body.Close()
	var r RestoreResult
	if err := json.NewDecoder(io.LimitReader(hresp.Body, 16<<20)).Decode(&r); err != nil {
		return r, fmt.Errorf("restore: malformed response: %w", err)
	}
	return r, nil
}

// post sends a request whose answer is read by the caller; an answer that
// is not 200 is returned as an *Error.
func (c *Client) post(ctx context.Context, name string, body io.Reader, size int64) (*http.Response, error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+name, body)
	if err != nil {
		return nil, err
	}
	hreq.ContentLength = size
	hreq.Header.Set("Content-Type", "application/json")
	hresp, err := c.http.Do(hreq)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%w at %s: %w", ErrUnreachable, c.where, err)
	}
	if hresp.StatusCode == http.StatusOK {
		return hresp, nil
	}
	defer hresp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(hresp.Body, 1<<20))
	var eb ErrorBody
	if json.Unmarshal(data, &eb) != nil || eb.Code == "" {
		return nil, &Error{Status: hresp.StatusCode, Code: CodeInternal, Message: fmt.Sprintf("%s: HTTP %d: %s", name, hresp.StatusCode, bytes.TrimSpace(data))}
	}
	return nil, &Error{Status: hresp.StatusCode, Code: eb.Code, Message: eb.Error}
}
