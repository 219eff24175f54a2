package main

import (
	"io"
	"os"
	"testing"

	"github.com/cortex-mesh/cortex/cmd/internal/cli"
)

// docs/cli.md's reference of cortexd is its --help (CORTEX_UPDATE_DOCS=1
// rewrites it).
func TestCLIDocReference(t *testing.T) {
	root := newRootCmd(func(string) string { return "" }, io.Discard, io.Discard, func(Config, io.Writer) error { return nil })
	if err := cli.CheckDocSection("../../docs/cli.md", "cortexd reference", cli.Reference(root), os.Getenv("CORTEX_UPDATE_DOCS") == "1"); err != nil {
		t.Fatal(err)
	}
}
