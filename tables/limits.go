package tables

import (
	"errors"
	"fmt"
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

func (l Limits) check(key, value []byte) error {
	if len(key) == 0 {
		return fmt.Errorf("%w: empty key", ErrInvalid)
	}
	if len(key) > l.MaxKeySize {
		return fmt.Errorf("%w: key is %d bytes, the limit is %d", ErrInvalid, len(key), l.MaxKeySize)
	}
	if len(value) > l.MaxValueSize {
		return fmt.Errorf("%w: value is %d bytes, the limit is %d", ErrInvalid, len(value), l.MaxValueSize)
	}
	return nil
}
