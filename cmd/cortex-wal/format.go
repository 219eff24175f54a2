package main

import (
	"strconv"
	"unicode"
	"unicode/utf8"

	"github.com/cortex-mesh/cortex/cmd/internal/cli"
)

// hlcString prints a hybrid logical clock timestamp as its wall time (UTC,
// RFC 3339 with milliseconds) and its logical counter: 2026-07-20T10:11:12.345Z/3.
func hlcString(hlc uint64) string { return cli.HLC(hlc) }

func hlcParts(hlc uint64) (string, uint16) { return cli.HLCParts(hlc) }

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

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
