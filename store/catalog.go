package store

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/tables"
)

// catalogKey is the key of a table's record in cortex_meta.
func catalogKey(name string) []byte { return []byte("table/" + name) }

func decodeTableInfo(r tables.Record) (scope.TableInfo, error) {
	var ti scope.TableInfo
	if err := json.Unmarshal(r.Value, &ti); err != nil {
		return ti, fmt.Errorf("catalog record %q: %w", r.Key, err)
	}
	if ti.Name != strings.TrimPrefix(string(r.Key), "table/") || ti.ID == "" {
		return ti, fmt.Errorf("catalog record %q: name or id missing", r.Key)
	}
	return ti, nil
}

// systemInfo is the fixed catalog record of a system table.
func systemInfo(name string) scope.TableInfo {
	return scope.TableInfo{Name: name, ID: "system", Scope: scope.Scope{All: true}}
}

// MemberKey is the key of a node's membership record in cortex_meta.
func MemberKey(node string) []byte { return []byte("node/" + node) }
