package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
	"unicode/utf8"

	"github.com/cortex-mesh/cortex/api"
	"github.com/cortex-mesh/cortex/backup"
	"github.com/cortex-mesh/cortex/cmd/internal/cli"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/spf13/cobra"
)

const exportLineHelp = `One JSON object a line, one line per record, tombstones included:
  {"key":"apple","value":"red","hlc":"7345...","hlc_time":"2026-12-02T15:04:05.123Z","origin":"home","deleted":false}
  {"key_b64":"AP8=","value_b64":"AAE=","hlc":"7345...","hlc_time":"...","origin":"office","deleted":false}
  {"key":"gone","hlc":"7345...","hlc_time":"...","origin":"home","deleted":true}
A key or value is text ("key", "value") when it is valid UTF-8 without a NUL
byte, else base64 ("key_b64", "value_b64", standard alphabet, padded); a
deleted record has no value. hlc is the version's hybrid logical clock
timestamp as a decimal string (it does not fit a JSON number exactly),
hlc_time the UTC wall time it encodes (import checks it agrees with hlc and
takes lines without it, and an hlc given as a number, as older versions
wrote them), origin the node that made the write.`

func exportCmd(a *app) *cobra.Command {
	var prefix string
	c := &cobra.Command{
		Use:   "export TABLE",
		Short: "Print a table's records as JSON lines (for import elsewhere)",
		Long: `Print every record of TABLE, as of one offset of the node's log (writes go
on meanwhile), on stdout, in key order; --prefix keeps the keys starting with
it. cortex import reads the same lines back, byte for byte.

` + exportLineHelp + `

The records come from a backup stream of the table, whose checksums are
checked as it arrives: a stream that breaks off or does not verify ends with
an error (exit 1 or 5) after the lines already printed. Over --addr it needs
read permission on TABLE. --timeout does not bound the stream.`,
		Example: `  cortex export fruit > fruit.jsonl
  cortex export fruit --prefix a | jq -r .key`,
		Args: cli.Positional(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := tables.ValidateName(args[0], true); err != nil {
				return cli.Usagef(cmd, "%v", err)
			}
			return a.export(args[0], []byte(prefix))
		},
	}
	c.Flags().StringVar(&prefix, "prefix", "", "only keys starting with this")
	return c
}

// exportLine is one line of export and import.
type exportLine struct {
	Key      *string          `json:"key,omitempty"`
	KeyB64   *string          `json:"key_b64,omitempty"`
	Value    *string          `json:"value,omitempty"`
	ValueB64 *string          `json:"value_b64,omitempty"`
	HLC      tables.Timestamp `json:"hlc"`
	HLCTime  *string          `json:"hlc_time,omitempty"`
	Origin   string           `json:"origin"`
	Deleted  bool             `json:"deleted"`
}

// textOrB64 returns b as text if it is valid UTF-8 without a NUL, else as
// base64.
func textOrB64(b []byte) (text, b64 *string) {
	if utf8.Valid(b) && bytes.IndexByte(b, 0) < 0 {
		s := string(b)
		return &s, nil
	}
	s := base64.StdEncoding.EncodeToString(b)
	return nil, &s
}

func encodeExportLine(r backup.Record) ([]byte, error) {
	at := tables.Timestamp(r.HLC).Time()
	l := exportLine{HLC: tables.Timestamp(r.HLC), HLCTime: &at, Origin: r.Origin, Deleted: r.Deleted}
	l.Key, l.KeyB64 = textOrB64(r.Key)
	if !r.Deleted {
		l.Value, l.ValueB64 = textOrB64(r.Value)
	}
	return cli.Marshal(l)
}

// decodeExportLine parses and checks one line: strict JSON (no unknown or
// missing fields), exactly one of key and key_b64, exactly one of value and
// value_b64 unless deleted (then neither), an hlc of decimal digits (a
// string, or a number as older versions wrote it), an hlc_time, if given,
// that is the hlc's, and a record any node would hold
// (backup.Record.Check).
func decodeExportLine(b []byte) (backup.Record, error) {
	var l exportLine
	var hlcSeen struct {
		HLC    json.RawMessage `json:"hlc"`
		Origin *string         `json:"origin"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return backup.Record{}, fmt.Errorf("not a JSON object of the export's fields: %v", err)
	}
	if dec.More() {
		return backup.Record{}, errors.New("more than one JSON value on the line")
	}
	json.Unmarshal(b, &hlcSeen)
	var r backup.Record
	var err error
	if r.Key, err = bytesField(l.Key, l.KeyB64, "key"); err != nil {
		return r, err
	}
	r.Deleted = l.Deleted
	if l.Deleted {
		if l.Value != nil || l.ValueB64 != nil {
			return r, errors.New("a deleted record with a value")
		}
	} else if r.Value, err = bytesField(l.Value, l.ValueB64, "value"); err != nil {
		return r, err
	}
	if hlcSeen.HLC == nil || string(hlcSeen.HLC) == "null" || hlcSeen.Origin == nil {
		return r, errors.New(`"hlc" and "origin" are needed`)
	}
	r.HLC = uint64(l.HLC)
	if l.HLCTime != nil && *l.HLCTime != l.HLC.Time() {
		return r, fmt.Errorf("hlc_time %q is not the time of hlc %d (%s)", *l.HLCTime, r.HLC, l.HLC.Time())
	}
	r.Origin = l.Origin
	if err := r.Check(); err != nil {
		return r, err
	}
	return r, nil
}

func bytesField(text, b64 *string, name string) ([]byte, error) {
	switch {
	case text != nil && b64 != nil:
		return nil, fmt.Errorf("both %q and %q", name, name+"_b64")
	case text != nil:
		return []byte(*text), nil
	case b64 != nil:
		b, err := base64.StdEncoding.Strict().DecodeString(*b64)
		if err != nil {
			return nil, fmt.Errorf("%s_b64 is not base64: %v", name, err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("no %q or %q", name, name+"_b64")
}

func (a *app) export(table string, prefix []byte) error {
	c, err := a.dial()
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	fetched := make(chan error, 1)
	go func() {
		err := c.Backup(context.Background(), api.BackupRequest{Tables: []string{table}, Prefix: prefix}, pw)
		pw.CloseWithError(err)
		fetched <- err
	}()
	out := bufio.NewWriterSize(a.stdout, 1<<16)
	_, rerr := backup.Read(pr, backup.Visitor{
		Table: func(backup.TableMeta) (bool, error) { return true, nil },
		Record: func(_ backup.TableMeta, r backup.Record) error {
			line, err := encodeExportLine(r)
			if err != nil {
				return err
			}
			_, err = out.Write(append(line, '\n'))
			return err
		},
	})
	pr.CloseWithError(errors.New("export stopped reading"))
	ferr := <-fetched
	if err := out.Flush(); rerr == nil {
		rerr = err
	}
	if ferr != nil { // the node's answer (denied, not found, ...) says more than a broken stream
		return ferr
	}
	if rerr != nil {
		return fmt.Errorf("export of %s: %w", table, rerr)
	}
	return nil
}

func importCmd(a *app) *cobra.Command {
	c := &cobra.Command{
		Use:   "import TABLE [FILE|-]",
		Short: "Write JSON lines (as export prints them) into a table, by last-write-wins",
		Long: `Read records as cortex export prints them from FILE (or stdin: "-" or no
FILE) and write them into TABLE, which must exist (cortex table create).

` + exportLineHelp + `

Every line is checked before anything is written: a line that is not one
such object, a key or value that is not text or valid base64, a missing or
malformed hlc, a record no node would hold, or one over this node's limits
or ahead of its clock is refused with its line number, and nothing is
imported. Then the records are written with their versions (hlc, origin)
kept, each through last-write-wins as a write from a peer would be: a record
the table holds with a newer version stays, and what is written replicates
like any write. Prints how many records were read and how many applied
(newer than what the table held). Over --addr it needs write permission on
TABLE. --timeout does not bound the upload.`,
		Example: `  cortex export fruit > fruit.jsonl      # on one mesh
  cortex import fruit fruit.jsonl        # on another
  cortex export fruit | cortex --socket /other/cortex.sock import fruit`,
		Args: cli.Positional(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := tables.ValidateName(args[0], false); err != nil {
				return cli.Usagef(cmd, "%v", err)
			}
			src := "-"
			if len(args) == 2 {
				src = args[1]
			}
			return a.importLines(args[0], src)
		},
	}
	return c
}

// maxImportLine bounds one line: the largest key and value, in base64.
const maxImportLine = 4*(64<<20)/3 + 4*(64<<10)/3 + 1<<20

// scanLines calls fn with every line of r (without its newline) and its
// number, until fn returns an error.
func scanLines(r io.Reader, fn func(n int, line []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), maxImportLine)
	n := 0
	for sc.Scan() {
		n++
		if err := fn(n, sc.Bytes()); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("line %d: %w", n+1, err)
	}
	return nil
}

func (a *app) importLines(table, src string) error {
	infos, err := call(a, func(ctx context.Context, c *api.Client) ([]api.TableInfo, error) { return c.Tables(ctx) })
	if err != nil {
		return err
	}
	var info *api.TableInfo
	for i := range infos {
		if infos[i].Name == table {
			info = &infos[i]
		}
	}
	if info == nil {
		return &cli.ExitError{Code: exitNotFound, Msg: fmt.Sprintf("no such table: %s (create it first: cortex table create %s): nothing was imported", table, table)}
	}

	// Pass 1: check every line (and keep stdin, to read it again).
	var in io.Reader
	var raw *os.File
	if src == "-" {
		if raw, err = os.CreateTemp("", "cortex-import-*.jsonl"); err != nil {
			return err
		}
		defer os.Remove(raw.Name())
		defer raw.Close()
		in = io.TeeReader(a.stdin, raw)
	} else {
		f, err := os.Open(src)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	var count uint64
	err = scanLines(in, func(n int, line []byte) error {
		if _, err := decodeExportLine(line); err != nil {
			return fmt.Errorf("line %d: %v", n, err)
		}
		count++
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: %w: nothing was imported", src, err)
	}
	if raw == nil {
		if raw, err = os.Open(src); err != nil {
			return err
		}
		defer raw.Close()
	} else if _, err := raw.Seek(0, io.SeekStart); err != nil {
		return err
	}

	// Pass 2: the records as a backup file of one section, sent as a restore.
	file, err := os.CreateTemp("", "cortex-import-*.cxb")
	if err != nil {
		return err
	}
	defer os.Remove(file.Name())
	defer file.Close()
	meta := backup.TableMeta{Name: info.Name, ID: info.ID, Scope: info.Scope, Home: info.Home, LogID: "import", Records: count}
	bw, err := backup.NewWriter(file, backup.Header{Node: info.Home, Created: time.Now().UTC().Truncate(time.Millisecond), Tables: []string{info.Name}})
	if err == nil {
		err = bw.Begin(meta)
	}
	if err == nil {
		err = scanLines(raw, func(n int, line []byte) error {
			r, err := decodeExportLine(line)
			if err != nil {
				return fmt.Errorf("line %d: %v (the input changed while it was read)", n, err)
			}
			return bw.Add(r)
		})
	}
	if err == nil {
		err = bw.End()
	}
	var m backup.Manifest
	if err == nil {
		m, err = bw.Close()
	}
	if err != nil {
		return fmt.Errorf("import: %w: nothing was imported", err)
	}
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		return err
	}
	c, err := a.dial()
	if err != nil {
		return err
	}
	fi, err := file.Stat()
	if err != nil {
		return err
	}
	prog := a.progress("importing", fi.Size())
	res, err := c.Restore(context.Background(), api.RestoreRequest{Sections: m.Tables, Import: true, Size: fi.Size()}, io.TeeReader(file, prog))
	prog.stop()
	if err != nil {
		return err
	}
	if a.json {
		return cli.WriteJSON(a.stdout, res)
	}
	t := res.Tables[0]
	_, err = fmt.Fprintf(a.stdout, "imported %d records into %s: %d applied (newer than what it held)\n", t.Records, t.To, t.Applied)
	return err
}
