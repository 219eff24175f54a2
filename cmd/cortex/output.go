package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cortex-mesh/cortex/cmd/internal/cli"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/spf13/cobra"
)

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// writeJSONList prints items as one JSON array.
func writeJSONList[T any](w io.Writer, items []T) error {
	l := cli.NewJSONList(w)
	for _, it := range items {
		if err := l.Add(it); err != nil {
			return err
		}
	}
	return l.Close()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// formatTime prints a time in UTC to the second ("" if unset).
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// escape makes key or value bytes safe for one field of a key<TAB>value
// line: a backslash, tab, newline, carriage return, other control
// characters and bytes that are not UTF-8 are written as \\, \t, \n, \r and
// \xHH. Everything else is printed as is.
func escape(b []byte) string {
	var sb strings.Builder
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		switch {
		case r == '\\':
			sb.WriteString(`\\`)
		case r == '\t':
			sb.WriteString(`\t`)
		case r == '\n':
			sb.WriteString(`\n`)
		case r == '\r':
			sb.WriteString(`\r`)
		case r == utf8.RuneError && size == 1, r < 0x20, r == 0x7f:
			fmt.Fprintf(&sb, `\x%02x`, b[0])
		default:
			sb.Write(b[:size])
		}
		b = b[size:]
	}
	return sb.String()
}

// recordJSON is a key's record as printed by get and scan. Key and value
// are strings; one that is not valid UTF-8 is null and its bytes are in
// key_base64 or value_base64. hlc is the version's timestamp as a decimal
// string (it is above 2^53: a JSON number would be rounded by jq and
// JavaScript), hlc_time the wall time it encodes.
type recordJSON struct {
	Table       string           `json:"table,omitempty"`
	Key         *string          `json:"key"`
	KeyBase64   string           `json:"key_base64,omitempty"`
	Value       *string          `json:"value"`
	ValueBase64 string           `json:"value_base64,omitempty"`
	HLC         tables.Timestamp `json:"hlc"`
	HLCTime     string           `json:"hlc_time"`
	Origin      string           `json:"origin"`
}

func newRecordJSON(table string, key, value []byte, hlc tables.Timestamp, origin string) recordJSON {
	r := recordJSON{Table: table, HLC: hlc, HLCTime: hlc.Time(), Origin: origin}
	r.Key, r.KeyBase64 = cli.Text(key)
	r.Value, r.ValueBase64 = cli.Text(value)
	return r
}

// writeResultJSON is what put and del print with --json.
type writeResultJSON struct {
	Table     string           `json:"table"`
	Key       *string          `json:"key"`
	KeyBase64 string           `json:"key_base64,omitempty"`
	HLC       tables.Timestamp `json:"hlc"`
	HLCTime   string           `json:"hlc_time"`
	Origin    string           `json:"origin"`
}

func newWriteResultJSON(table string, key []byte, hlc tables.Timestamp, origin string) writeResultJSON {
	r := writeResultJSON{Table: table, HLC: hlc, HLCTime: hlc.Time(), Origin: origin}
	r.Key, r.KeyBase64 = cli.Text(key)
	return r
}

// spinner shows "what..." with the seconds elapsed on stderr while a long
// call runs, when stderr is a terminal; the returned func clears it.
func (a *app) spinner(what string) (stop func()) {
	if !isTerminal(a.stderr) {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		start := time.Now()
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				fmt.Fprint(a.stderr, "\r\033[K")
				return
			case <-tick.C:
				fmt.Fprintf(a.stderr, "\r%s... %.0fs", what, time.Since(start).Seconds())
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// confirm asks before something destructive: yes (--yes) goes on; otherwise
// a terminal on stdin is asked the question and must answer y or yes; with
// no terminal the command stops with a usage error saying to add --yes.
func (a *app) confirm(cmd *cobra.Command, yes bool, question string) error {
	if yes {
		return nil
	}
	in, ok := a.stdin.(*os.File)
	if !ok || !isTerminal(in) {
		return cli.Usagef(cmd, "%s (asked on a terminal: add --yes to go on without one)", question)
	}
	fmt.Fprintf(a.stderr, "%s [y/N] ", question)
	line, _ := bufio.NewReader(in).ReadString('\n')
	if answer := strings.ToLower(strings.TrimSpace(line)); answer != "y" && answer != "yes" {
		return errors.New("not confirmed: nothing changed")
	}
	return nil
}
