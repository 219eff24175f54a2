package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cortex-mesh/cortex/api"
	"github.com/cortex-mesh/cortex/backup"
	"github.com/cortex-mesh/cortex/cmd/internal/cli"
	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
	"github.com/spf13/cobra"
)

const backupLong = `Write a backup of tables held by the node to FILE: every record (tombstones
included) with its version (hlc, origin), so a restore decides by
last-write-wins as the node would. Each table's copy is read as of one
offset of its log, in one read of its view: writes go on meanwhile and are
not in the backup. Without TABLE, every table the node holds (over --addr,
those the identity may read); system tables (cortex_*) are never backed up.

The file has a header, one section per table (its name, id, scope and home,
the log and offset it is as of, its record count and SHA-256) and a trailer
with the manifest and the SHA-256 of the whole file, so a truncated or
damaged file is found. It is streamed into a new temporary file next to FILE
(mode 0600), checked, fsynced and renamed into place: FILE never holds half
a backup. An existing FILE is replaced only with --overwrite. On a terminal
the bytes received so far are shown on stderr.

Prints one line per table and a summary; with --json the manifest. Over
--addr it needs read permission on each table. --timeout does not bound the
stream.`

func backupCmd(a *app) *cobra.Command {
	var out string
	var overwrite bool
	c := &cobra.Command{
		Use:   "backup --out FILE [TABLE...]",
		Short: "Write a consistent backup of tables to a file, while writes go on",
		Long:  backupLong,
		Example: `  cortex backup --out /backups/home-2026-07-20.cxb
  cortex backup --out fruit.cxb fruit --overwrite`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return cli.Usagef(cmd, "--out FILE is needed: the file to write the backup to")
			}
			for _, name := range args {
				if err := tables.ValidateName(name, true); err != nil {
					return cli.Usagef(cmd, "%v", err)
				}
				if scope.IsSystem(name) {
					return cli.Usagef(cmd, "%s is a system table: backups never hold system tables", name)
				}
			}
			return a.backup(out, overwrite, args)
		},
	}
	c.Flags().StringVar(&out, "out", "", "the `FILE` to write")
	c.Flags().BoolVar(&overwrite, "overwrite", false, "replace FILE if it exists")
	return c
}

func (a *app) backup(out string, overwrite bool, names []string) error {
	if _, err := os.Lstat(out); err == nil && !overwrite {
		return fmt.Errorf("%s exists: nothing was written (--overwrite replaces it)", out)
	}
	c, err := a.dial()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), filepath.Base(out)+".*.tmp")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(tmp.Name()) // gone once renamed or linked
	defer tmp.Close()
	prog := a.progress("backing up", 0)
	err = c.Backup(context.Background(), api.BackupRequest{Tables: names}, io.MultiWriter(tmp, prog))
	prog.stop()
	if err != nil {
		return err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	m, err := backup.Verify(tmp)
	if err != nil {
		return fmt.Errorf("the backup received does not verify, nothing was written to %s: %w", out, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if overwrite {
		err = os.Rename(tmp.Name(), out)
	} else if err = os.Link(tmp.Name(), out); errors.Is(err, os.ErrExist) { // never replaces a file made meanwhile
		err = fmt.Errorf("%s exists: nothing was written (--overwrite replaces it)", out)
	}
	if err != nil {
		return err
	}
	if err := wal.SyncDir(filepath.Dir(out)); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if a.json {
		return cli.WriteJSON(a.stdout, m)
	}
	size := m.Size
	if fi, err := os.Stat(out); err == nil {
		size = fi.Size()
	}
	var records uint64
	for _, t := range m.Tables {
		records += t.Records
		fmt.Fprintf(a.stdout, "%s: %d records as of offset %d (log %s)\n", t.Name, t.Records, t.AsOf, t.LogID)
	}
	_, err = fmt.Fprintf(a.stdout, "backed up %s of %s, %d records, to %s (%s, sha256 of the file before its manifest %s)\n",
		plural(len(m.Tables), "table"), m.Node, records, out, sizeText(size), m.SHA256)
	return err
}

const restoreLong = `Restore tables from a backup FILE (cortex backup) into the node: without
TABLE every table in the file, else the ones named. The whole file is read
and checked first (every checksum, every record): a truncated or damaged file
is refused and nothing changes. The node spools and checks the file again
before it applies a record.

A table that does not exist on the node is created, the node its home, with
the scope it had in the backup unless --scope: a new table with a new id, so
a new log that peers never take for the old one. The scope must include this
node (local, all, or a list naming it). Creating needs what "table create"
needs, and the same placement checks apply (--allow-unknown, --yes).

A table that exists is merged: every record goes through last-write-wins as
a write from a peer would, so a version on the node newer than the backup's
is kept, and what is applied replicates to the table's other holders like any
write. Merging asks first on a terminal (--yes: do not ask; without a
terminal --yes is needed, else exit 2).

--as NAME restores the one table chosen under another name. --dry-run shows
what would be done and changes nothing. On a terminal the progress is shown
on stderr. Prints one line per table (records in the file, records applied:
those newer than what the table held); with --json the result. Over --addr
it needs write permission on each table merged into. Exits 3 if FILE has no
such TABLE. --timeout does not bound the upload.`

func restoreCmd(a *app) *cobra.Command {
	var as, scopeArg string
	var o api.Overrides
	var dryRun bool
	c := &cobra.Command{
		Use:   "restore FILE [TABLE...]",
		Short: "Restore tables from a backup file (new tables, or merged by last-write-wins)",
		Long:  restoreLong,
		Example: `  cortex restore /backups/home-2026-07-20.cxb
  cortex restore home.cxb fruit --as fruit_old
  cortex restore home.cxb notes --scope local --yes`,
		Args: cli.Positional(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := api.RestoreRequest{As: as, Overrides: o}
			if as != "" {
				if err := tables.ValidateName(as, false); err != nil {
					return cli.Usagef(cmd, "--as: %v", err)
				}
			}
			if scopeArg != "" {
				sc, err := parseScope(cmd, scopeArg)
				if err != nil {
					return err
				}
				req.Scope = &sc
			}
			return a.restore(cmd, args[0], args[1:], req, dryRun)
		},
	}
	c.Flags().StringVar(&as, "as", "", "restore the one table chosen under this `NAME`")
	c.Flags().StringVar(&scopeArg, "scope", "", "the scope of tables created (default: the one in the backup)")
	c.Flags().BoolVar(&dryRun, "dry-run", false, "check the file and show what would be done; change nothing")
	placementFlags(c, &o)
	c.Flags().Lookup("yes").Usage = "do not ask before merging into a table that exists, or before a change to fewer copies"
	return c
}

// verifyFile reads and checks a whole backup file, showing progress.
func (a *app) verifyFile(path string) (backup.Manifest, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return backup.Manifest{}, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return backup.Manifest{}, 0, err
	}
	prog := a.progress("checking "+path, fi.Size())
	m, err := backup.Verify(io.TeeReader(f, prog))
	prog.stop()
	if err != nil {
		return m, 0, fmt.Errorf("%s: %w: nothing was restored", path, err)
	}
	return m, fi.Size(), nil
}

func (a *app) restore(cmd *cobra.Command, path string, names []string, req api.RestoreRequest, dryRun bool) error {
	m, size, err := a.verifyFile(path)
	if err != nil {
		return err
	}
	req.Size = size
	req.Sections, err = chooseSections(m, names)
	if err != nil {
		return err
	}
	plan, err := call(a, func(ctx context.Context, c *api.Client) (api.RestorePlan, error) { return c.RestorePlan(ctx, req) })
	var ae *api.Error
	if errors.As(err, &ae) && ae.Code == api.CodeNeedsConfirm && !dryRun {
		if err := a.confirm(cmd, false, ae.Message+". Go on?"); err != nil {
			return err
		}
		req.Confirmed = true
		plan, err = call(a, func(ctx context.Context, c *api.Client) (api.RestorePlan, error) { return c.RestorePlan(ctx, req) })
	}
	if err != nil && !(dryRun && errors.As(err, &ae) && ae.Code == api.CodeNeedsConfirm) {
		return err
	}
	if dryRun {
		if err != nil { // only confirmation missing: show the plan as confirmed
			req.Confirmed = true
			if plan, err = call(a, func(ctx context.Context, c *api.Client) (api.RestorePlan, error) { return c.RestorePlan(ctx, req) }); err != nil {
				return err
			}
		}
		if a.json {
			return cli.WriteJSON(a.stdout, plan)
		}
		for _, st := range plan.Steps {
			fmt.Fprintf(a.stdout, "would %s table %s from %s (scope %s): %d records as of offset %d\n", st.Action, st.To, st.From, st.Scope, st.Records, st.AsOf)
		}
		_, err := fmt.Fprintln(a.stdout, "dry run: nothing changed")
		return err
	}
	c, err := a.dial()
	if err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	prog := a.progress("restoring", size)
	res, err := c.Restore(context.Background(), req, io.TeeReader(f, prog))
	prog.stop()
	if err != nil {
		return err
	}
	if a.json {
		return cli.WriteJSON(a.stdout, res)
	}
	for _, t := range res.Tables {
		what := "merged"
		if t.Action == "create" {
			what = fmt.Sprintf("created (scope %s, id %s)", t.Scope, t.ID)
		}
		fmt.Fprintf(a.stdout, "restored %s as of offset %d into %s, %s: %d records, %d applied (newer than what it held)\n",
			t.From, t.AsOf, t.To, what, t.Records, t.Applied)
	}
	return nil
}

// chooseSections picks the named tables of a manifest (all if none).
func chooseSections(m backup.Manifest, names []string) ([]backup.TableMeta, error) {
	if len(names) == 0 {
		return m.Tables, nil
	}
	var out []backup.TableMeta
	for _, name := range names {
		i := slices.IndexFunc(m.Tables, func(t backup.TableMeta) bool { return t.Name == name })
		if i < 0 {
			have := make([]string, len(m.Tables))
			for j, t := range m.Tables {
				have[j] = t.Name
			}
			return nil, &cli.ExitError{Code: exitNotFound, Msg: fmt.Sprintf("the backup has no table %s (it has: %s): nothing was restored", name, strings.Join(have, ", "))}
		}
		out = append(out, m.Tables[i])
	}
	return out, nil
}

// progressCounter counts bytes and shows them on stderr, if it is a
// terminal, every 200 ms, with the share of total if total > 0.
type progressCounter struct {
	n    atomic.Int64
	stop func()
}

func (p *progressCounter) Write(b []byte) (int, error) {
	p.n.Add(int64(len(b)))
	return len(b), nil
}

func (a *app) progress(what string, total int64) *progressCounter {
	p := &progressCounter{stop: func() {}}
	if !isTerminal(a.stderr) {
		return p
	}
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		start := time.Now()
		for {
			select {
			case <-done:
				fmt.Fprint(a.stderr, "\r\033[K")
				return
			case <-tick.C:
				n := p.n.Load()
				line := fmt.Sprintf("\r\033[K%s... %s", what, sizeText(n))
				if total > 0 {
					line += fmt.Sprintf(" of %s (%d%%)", sizeText(total), n*100/total)
				}
				fmt.Fprintf(a.stderr, "%s, %.0fs", line, time.Since(start).Seconds())
			}
		}
	}()
	p.stop = func() {
		close(done)
		<-finished
	}
	return p
}

func sizeText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
