// Package cli owns the conventions the cortex commands share: one JSON
// value per --json command, JSON arrays streamed one element a line,
// aligned columns for people, bytes shown as text or base64, one-line
// errors, and usage errors (exit 2) that say what was wrong.
package cli

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	"github.com/cortex-mesh/cortex/tables"
)

// Marshal encodes v compactly, without escaping <, > and &.
func Marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// WriteJSON prints v as one JSON value and a newline.
func WriteJSON(w io.Writer, v any) error {
	b, err := Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// JSONList streams one JSON array, one element a line:
//
//	[
//	{...},
//	{...}
//	]
type JSONList struct {
	w io.Writer
	n int
}

// NewJSONList starts an array on w.
func NewJSONList(w io.Writer) *JSONList { return &JSONList{w: w} }

// Add writes one element.
func (l *JSONList) Add(v any) error {
	b, err := Marshal(v)
	if err != nil {
		return err
	}
	prefix := ",\n"
	if l.n == 0 {
		prefix = "[\n"
	}
	l.n++
	_, err = io.WriteString(l.w, prefix+string(b))
	return err
}

// Close ends the array.
func (l *JSONList) Close() error {
	end := "\n]\n"
	if l.n == 0 {
		end = "[]\n"
	}
	_, err := io.WriteString(l.w, end)
	return err
}

// Columns writes aligned columns under a header row; an empty cell shows
// as "-".
type Columns struct{ tw *tabwriter.Writer }

// NewColumns starts a table on w with its header row.
func NewColumns(w io.Writer, header ...string) *Columns {
	c := &Columns{tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	c.Row(header...)
	return c
}

// Row adds one row.
func (c *Columns) Row(cells ...string) {
	for i, s := range cells {
		if s == "" {
			cells[i] = "-"
		}
	}
	fmt.Fprintln(c.tw, strings.Join(cells, "\t"))
}

// Flush writes the table out.
func (c *Columns) Flush() error { return c.tw.Flush() }

// Text returns b as a JSON string if it is valid UTF-8, else nil and its
// base64 (standard encoding, padded).
func Text(b []byte) (*string, string) {
	if utf8.Valid(b) {
		s := string(b)
		return &s, ""
	}
	return nil, base64.StdEncoding.EncodeToString(b)
}

// HLC prints a hybrid logical clock timestamp as its wall time (UTC, RFC
// 3339 with milliseconds) and its logical counter: 2026-07-20T10:11:12.345Z/3.
func HLC(hlc uint64) string {
	t, c := HLCParts(hlc)
	return t + "/" + strconv.Itoa(int(c))
}

// HLCParts returns a timestamp's wall time, as HLC prints it, and its
// logical counter.
func HLCParts(hlc uint64) (string, uint16) {
	t, c := tables.HLCTime(hlc)
	return t.Format("2006-01-02T15:04:05.000Z07:00"), c
}
