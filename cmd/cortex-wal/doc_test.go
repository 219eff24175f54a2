package main

import (
	"os"
	"testing"

	"github.com/cortex-mesh/cortex/cmd/internal/cli"
)

// docs/cli.md's reference of cortex-wal is every command's --help
// (CORTEX_UPDATE_DOCS=1 rewrites it).
func TestCLIDocReference(t *testing.T) {
	ref := cli.Reference(newRootCmd(&app{}))
	if err := cli.CheckDocSection("../../docs/cli.md", "cortex-wal reference", ref, os.Getenv("CORTEX_UPDATE_DOCS") == "1"); err != nil {
		t.Fatal(err)
	}
}
