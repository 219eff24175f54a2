package main

import (
	"errors"
	"testing"

	"github.com/cortex-mesh/cortex/cmd/internal/cli"
	"github.com/cortex-mesh/cortex/repair"
)

// sync status exits 0 only when every table shown is in sync; a diverged
// table wins over the others.
func TestSyncStatusExit(t *testing.T) {
	tbl := func(name, state string) repair.TableStatus { return repair.TableStatus{Table: name, State: state} }
	for _, tc := range []struct {
		name   string
		tables []repair.TableStatus
		code   int
		msg    string
	}{
		{"nothing to show", nil, 0, ""},
		{"all in sync", []repair.TableStatus{tbl("a", repair.InSync), tbl("b", repair.InSync)}, 0, ""},
		{"degraded", []repair.TableStatus{tbl("a", repair.InSync), tbl("b", repair.Degraded)}, exitNotInSync, "not in sync: b degraded"},
		{"catching up and unknown", []repair.TableStatus{tbl("a", repair.CatchingUp), tbl("b", repair.Unknown)}, exitNotInSync, "not in sync: a catching up, b unknown"},
		{"diverged wins", []repair.TableStatus{tbl("a", repair.Degraded), tbl("b", repair.Diverged)}, exitDiverged, "diverged: b (run cortex sync repair TABLE)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := notInSync(repair.Status{Tables: tc.tables})
			var ee *cli.ExitError
			switch {
			case tc.code == 0 && err != nil:
				t.Fatalf("got %v, want no error", err)
			case tc.code == 0:
			case !errors.As(err, &ee) || ee.Code != tc.code || ee.Msg != tc.msg:
				t.Fatalf("got %#v, want exit %d %q", err, tc.code, tc.msg)
			}
		})
	}
	if code, msg := newApp(nil, nil, nil, nil, false).describe(&cli.ExitError{Code: exitNotInSync, Msg: "x"}); code != exitNotInSync || msg != "x" {
		t.Fatalf("describe gives exit %d %q for an ExitError", code, msg)
	}
}
