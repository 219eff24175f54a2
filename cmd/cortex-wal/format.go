package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"

	"github.com/cortex-mesh/cortex/tables"
)

// hlcString prints a hybrid logical clock timestamp as its wall time (UTC,
// RFC 3339 with milliseconds) and its logical counter: 2026-07-20T10:11:12.345Z/3.
func hlcString(hlc uint64) string {
	t, c := hlcParts(hlc)
	return t + "/" + strconv.Itoa(int(c))
}

func hlcParts(hlc uint64) (string, uint16) {
	t, c := tables.HLCTime(hlc)
	return t.Format("2006-01-02T15:04:05.000Z07:00"), c
}

// field prints bytes as one space-separated field: as they are if they are
// non-empty printable UTF-8 without spaces, quotes or backslashes, else as
// a Go-quoted string ("a b", "\x00\xff", "").
func field(b []byte) string {
	plain := len(b) > 0 && utf8.Valid(b)
	for _, r := range string(b) {
		if !plain {
			break
		}
		plain = unicode.IsPrint(r) && r != ' ' && r != '"' && r != '\\'
	}
	if plain {
		return string(b)
	}
	return strconv.Quote(string(b))
}

// text returns b as a JSON string if it is valid UTF-8, else nil and its
// base64 (standard encoding, padded), as cortex does.
func text(b []byte) (*string, string) {
	if utf8.Valid(b) {
		s := string(b)
		return &s, ""
	}
	return nil, base64.StdEncoding.EncodeToString(b)
}

// marshal encodes v compactly, without escaping <, > and &.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// writeJSON prints v as one JSON value and a newline.
func writeJSON(w io.Writer, v any) error {
	b, err := marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// jsonList streams one JSON array, one element a line (as cortex scan):
//
//	[
//	{...},
//	{...}
//	]
type jsonList struct {
	w io.Writer
	n int
}

func (l *jsonList) add(v any) error {
	b, err := marshal(v)
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

func (l *jsonList) close() error {
	end := "\n]\n"
	if l.n == 0 {
		end = "[]\n"
	}
	_, err := io.WriteString(l.w, end)
	return err
}

// columns writes aligned columns under a header row.
type columns struct{ tw *tabwriter.Writer }

func newColumns(w io.Writer, header ...string) *columns {
	c := &columns{tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	c.row(header...)
	return c
}

func (c *columns) row(cells ...string) {
	for i, s := range cells {
		if s == "" {
			cells[i] = "-"
		}
	}
	fmt.Fprintln(c.tw, strings.Join(cells, "\t"))
}

func (c *columns) flush() error { return c.tw.Flush() }

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
