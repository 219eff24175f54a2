// Command cortex-wal inspects the write-ahead logs of a cortex data
// directory offline: it lists the table copies and their segments, dumps
// entries, and verifies that every entry decodes. It never writes, creates,
// renames or truncates a file of the data directory (it reads segment files
// itself, through wal.Reader, instead of opening the log with tidwall/wal).
// See /work/shared/CLI.md (cortex-wal) and docs/storage.md.
//
// Errors are one line on stderr starting with "error: ", warnings lines
// starting with "warning: ". Exit codes: 0 ok, 1 error (or verify found a
// problem), 2 bad usage.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/cortex-mesh/cortex/cmd/internal/cli"

	"github.com/spf13/cobra"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs one command line and returns its exit code. Everything it writes
// goes to stdout and stderr, so tests call it in-process.
func run(args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr}
	root := newRootCmd(a)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	code := exitError
	var ue *cli.UsageError
	if errors.As(err, &ue) {
		code = exitUsage
	}
	fmt.Fprintf(stderr, "error: %s\n", cli.OneLine(err.Error()))
	return code
}

// app is one invocation: its streams and global flags.
type app struct {
	stdout, stderr io.Writer
	live           bool // --live
}

// warnf prints one warning line on stderr.
func (a *app) warnf(format string, args ...any) {
	fmt.Fprintf(a.stderr, "warning: %s\n", cli.OneLine(fmt.Sprintf(format, args...)))
}

const rootLong = `cortex-wal reads the write-ahead logs of a cortex data directory
(DATA_DIR/tables/<name>-<id>/wal/) without changing a byte: it lists the table
copies and their segments, prints entries, and verifies that every entry
decodes (checksum included) and that offsets are contiguous. It never opens a
file for writing, never creates, renames or truncates one, and does not use
tidwall/wal (whose open tidies files): it walks the segment files itself.

It is meant for a stopped node. It checks whether cortexd holds the data
directory (a shared, non-blocking lock on DATA_DIR/LOCK) and refuses if it
does, unless --live is given: it then reads the live log and warns that the
last entry may be an append in progress ("torn tail (in progress)", not
counted as corruption). While it reads a stopped node's directory it holds
that shared lock, so a cortexd started meanwhile refuses to start until
cortex-wal exits.

Torn tail: a last segment ending in an incomplete or undecodable frame with no
intact entry after it is a write torn by a crash; cortexd cuts it at its next
start. ls and dump report it as a warning, verify as a failure (exit 1),
except with --live while cortexd runs.

Errors are one line on stderr starting with "error: ", warnings lines starting
with "warning: ".

Exit codes:
  0  ok
  1  error, or verify found a problem
  2  bad usage (unknown command or flag, missing or extra argument)`

func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "cortex-wal",
		Short: "Inspect the write-ahead logs of a stopped cortex node (read-only)",
		Long:  rootLong,
		Example: `  cortex-wal ls ./cortex-data
  cortex-wal dump ./cortex-data users --from 100 --limit 20
  cortex-wal verify ./cortex-data
  cortex-wal --live ls /var/lib/cortex     # while cortexd runs`,
		SilenceUsage:          true,
		SilenceErrors:         true,
		Args:                  cobra.ArbitraryArgs,
		RunE:                  cli.GroupRun,
		DisableFlagsInUseLine: true,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	cli.Conventions(root, a.stdout, a.stderr, "  cortex-wal help dump")
	root.PersistentFlags().BoolVar(&a.live, "live", false, "read even while cortexd holds the data directory (the last entry may be an append in progress)")
	root.AddCommand(lsCmd(a), dumpCmd(a), verifyCmd(a))
	cli.AddVersion(root, "cortex-wal")
	return root
}
