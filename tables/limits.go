package tables

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/cortex-mesh/cortex/wal"
)

// ErrInvalid is wrapped by every error about bad input: names, keys, values.
var ErrInvalid = errors.New("invalid")

// SystemPrefix starts the names of the system tables; users cannot take it.
const SystemPrefix = "cortex_"

// Default limits on keys and values, and the largest a node may be
// configured with (a value must fit one replication frame).
const (
	DefaultMaxKeySize   = 1 << 10
	DefaultMaxValueSize = 1 << 20
	MaxKeyLimit         = wal.MaxKeySize
	MaxValueLimit       = 16 << 20
)

// ValidateName checks a table name: [a-z][a-z0-9_]{0,62}. The cortex_ prefix
// is accepted only when system is true.
func ValidateName(name string, system bool) error {
	if name == "" || len(name) > 63 {
		return fmt.Errorf("%w: table name %q must be 1 to 63 characters", ErrInvalid, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || i > 0 && (c >= '0' && c <= '9' || c == '_')
		if !ok {
			return fmt.Errorf("%w: table name %q must match [a-z][a-z0-9_]{0,62}", ErrInvalid, name)
		}
	}
	if !system && strings.HasPrefix(name, SystemPrefix) {
		return fmt.Errorf("%w: table name %q: the prefix %q is reserved for system tables", ErrInvalid, name, SystemPrefix)
	}
	return nil
}

// Limits bound the keys and values a table accepts from local writers.
type Limits struct {
	MaxKeySize   int
	MaxValueSize int
}

func (l Limits) withDefaults() Limits {
	if l.MaxKeySize <= 0 {
		l.MaxKeySize = DefaultMaxKeySize
	}
	if l.MaxValueSize <= 0 {
		l.MaxValueSize = DefaultMaxValueSize
	}
	// Never accept what the log could not decode again.
	l.MaxKeySize = min(l.MaxKeySize, wal.MaxKeySize)
	l.MaxValueSize = min(l.MaxValueSize, wal.MaxValueSize)
	return l
}

// Check checks a key and a value against the limits: the key non-empty
// and neither over its limit. The error gives the sizes as the caller sent
// them: "value is 2,097,152 bytes, over the limit of 1,048,576".
func (l Limits) Check(key, value []byte) error {
	if len(key) == 0 {
		return fmt.Errorf("%w: empty key", ErrInvalid)
	}
	if len(key) > l.MaxKeySize {
		return fmt.Errorf("%w: key is %s bytes, over the limit of %s", ErrInvalid, Thousands(len(key)), Thousands(l.MaxKeySize))
	}
	if len(value) > l.MaxValueSize {
		return fmt.Errorf("%w: value is %s bytes, over the limit of %s", ErrInvalid, Thousands(len(value)), Thousands(l.MaxValueSize))
	}
	return nil
}

// Thousands prints n in decimal with a comma between groups of three
// digits: 1048576 is "1,048,576".
func Thousands(n int) string {
	s := strconv.Itoa(n)
	sign := ""
	if n < 0 {
		sign, s = "-", s[1:]
	}
	var b strings.Builder
	b.WriteString(sign)
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
