package main

import (
	"os"
	"testing"

	"github.com/cortex-mesh/cortex/cmd/internal/cli"
)

// docs/cli.md's reference of cortex is every command's --help: it cannot
// drift from the commands (CORTEX_UPDATE_DOCS=1 rewrites it).
func TestCLIDocReference(t *testing.T) {
	ref := cli.Reference(newRootCmd(newApp(nil, nil, nil, nil, false)))
	if err := cli.CheckDocSection("../../docs/cli.md", "cortex reference", ref, os.Getenv("CORTEX_UPDATE_DOCS") == "1"); err != nil {
		t.Fatal(err)
	}
}
