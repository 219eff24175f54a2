// Command cortex is the command-line client of cortexd: it creates and lists
// tables, reads and writes keys, and manages identities and ACLs by calling
// the daemon's API over its Unix socket, or a node's mTLS listener with a
// client certificate (--addr); and it makes the mesh's certificates (cert).
// See /work/shared/CLI.md for the contract: names, flags, JSON shapes and
// exit codes.
//
// Conventions, the same for every command:
//   - Read commands print human-readable text, or with --json exactly one
//     JSON value (an object or an array) on stdout.
//   - Write commands print one confirmation line, except put and del, which
//     print nothing on success; with --json every write prints one JSON object.
//   - Errors are one line on stderr starting with "error: ".
//   - Exit codes: 0 ok, 1 error, 2 bad usage, 3 not found, 4 not allowed,
//     5 cannot reach the daemon.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/cortex-mesh/cortex/cmd/internal/cli"

	"github.com/cortex-mesh/cortex/api"
	"github.com/spf13/cobra"
)

// Exit codes (CLI.md).
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitNotFound    = 3
	exitDenied      = 4
	exitUnreachable = 5
	exitNotInSync   = 6 // sync status: a table degraded, catching up or unknown
	exitDiverged    = 7 // sync status: a table diverged
)

// defaultSocket is where the socket is looked for when neither --socket nor
// $CORTEX_SOCKET names one: cortexd's default with no flags.
const defaultSocket = "./cortex-data/cortex.sock"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv))
}

// run runs one command line and returns its exit code. Everything it reads
// or writes goes through its arguments, so tests call it in-process.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	return newApp(stdin, stdout, stderr, getenv, isTerminal(stdout)).execute(args)
}

// app is one invocation: its streams, its global flags and its client.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	tty            bool // stdout is a terminal

	// Global flags.
	socket  string
	json    bool
	timeout time.Duration
	remote  remote // --addr, --ca, --cert, --key

	client *api.Client
	// interrupt, if set, ends a watch as SIGINT or SIGTERM would (tests).
	interrupt context.Context
}

func newApp(stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string, tty bool) *app {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	return &app{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv, tty: tty}
}

func (a *app) execute(args []string) int {
	root := newRootCmd(a)
	root.SetArgs(args)
	err := root.Execute()
	if a.client != nil {
		a.client.Close()
	}
	if err == nil {
		return exitOK
	}
	code, msg := a.describe(err)
	fmt.Fprintf(a.stderr, "error: %s\n", cli.OneLine(msg))
	return code
}

// describe maps an error to its exit code and the message that tells the
// user what was wrong and what to do.
func (a *app) describe(err error) (int, string) {
	var ue *cli.UsageError
	var ee *cli.ExitError
	var ae *api.Error
	switch {
	case errors.As(err, &ue):
		return exitUsage, ue.Msg
	case errors.As(err, &ee):
		return ee.Code, ee.Msg
	case errors.Is(err, api.ErrUnreachable) && a.remote.addr != "":
		return exitUnreachable, a.remote.unreachable(err)
	case errors.Is(err, api.ErrUnreachable):
		return exitUnreachable, err.Error() + "; is cortexd running? Start it, or point --socket or $CORTEX_SOCKET at its socket"
	case errors.Is(err, context.DeadlineExceeded):
		return exitError, fmt.Sprintf("no answer from cortexd at %s within %s (--timeout); it may be overloaded or stuck: check its log, or retry with a longer --timeout", a.where(), a.timeout)
	case errors.As(err, &ae):
		switch ae.Code {
		case api.CodeNotFound:
			msg := ae.Message
			if strings.Contains(msg, "no such table") {
				msg += " (list the tables with: cortex table list)"
			}
			return exitNotFound, msg
		case api.CodeDenied:
			return exitDenied, ae.Message
		case api.CodeNotHeld:
			return exitError, ae.Message + "; run the command against a node that holds it"
		case api.CodeUnavailable:
			return exitError, ae.Message + "; cortexd is stopping or the table has failed: check the cortexd log"
		case api.CodeTooLarge:
			return exitError, ae.Message + "; the key or value is larger than this node accepts (cortexd --max-key-size, --max-value-size)"
		case api.CodeInternal:
			return exitError, ae.Message + "; check the cortexd log"
		}
		return exitError, ae.Message
	}
	return exitError, err.Error()
}

const rootLong = `cortex talks to a cortexd node over its Unix socket: it creates and lists
tables, reads and writes keys, and manages identities and ACLs. It also makes
the mesh's certificates (cortex cert), without any node.

The socket is --socket, else $CORTEX_SOCKET, else $CORTEX_DATA_DIR/cortex.sock,
else the profile's socket (below), else ./cortex-data/cortex.sock (where
cortexd puts it when started with no flags). Every API call gives up after --timeout (0: never).

Remote mode: --addr HOST:PORT --ca FILE --cert FILE --key FILE calls a node's
mTLS listener (cortexd --rpc-listen) instead, as the client identity named by
the certificate (cortex cert create-client). The node's certificate must be
signed by --ca and name HOST (made with cortex cert create-node NAME --host
HOST), as with any TLS server. The node's administrator registers the
identity (cortex identity add) and grants it tables (cortex acl grant); system
tables need admin. The socket is the local administrator and needs none.
--certs-dir DIR stands for --ca, --cert and --key: DIR/ca.crt and
DIR/client-NAME.crt, .key, as cortex cert makes them; --client NAME says
whose, if DIR holds more than one. $CORTEX_ADDR, $CORTEX_CERTS_DIR,
$CORTEX_CLIENT, $CORTEX_CA, $CORTEX_CERT and $CORTEX_KEY set these unless
--socket is given (use them for "identity add NAME --cert FILE", whose own
--cert names the certificate to pin).

Profiles: --profile NAME ($CORTEX_PROFILE, else the file's default_profile)
takes addr, certs_dir, client, ca, cert and key, or socket, from
[profiles.NAME] of the configuration file: --config FILE, else
$CORTEX_CONFIG, else $XDG_CONFIG_HOME/cortex/config.toml, else
~/.config/cortex/config.toml. A flag wins over its $CORTEX_ variable, which
wins over the profile; an address from any of them means remote mode unless
--socket is given. Relative paths in the file are relative to it.

Completion: source <(cortex completion bash) (or zsh, fish, powershell)
completes commands, flags, and table names, which it asks the node for
with the same connection flags (within 2s; no answer, no names).

Output: read commands print text for people, or with --json exactly one JSON
value (an object or an array) on stdout (watch, which goes on until it is
interrupted, prints one JSON object per change). Write commands print one
confirmation line, except put and del, which print nothing on success (for
scripts); with --json every write prints one JSON object instead. Errors are
one line on stderr starting with "error: ".

Exit codes:
  0  ok
  1  error
  2  bad usage (unknown command or flag, missing or extra argument, bad --scope)
  3  not found (unknown table or identity, missing key)
  4  not allowed (ACL; with --addr also an identity that is not registered)
  5  cannot reach the daemon (with --addr also a failed TLS handshake: the
     node refused our certificate, or its certificate is not the one expected)`

func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "cortex",
		Short: "Command-line client of the cortex key-value table store",
		Long:  rootLong,
		Example: `  cortex table create users --scope all
  cortex put users alice '{"plan":"pro"}'
  cortex get users alice
  cortex --socket /run/cortex/cortex.sock table list --json
  cortex --addr node1.example.com:7947 --certs-dir certs --client alice get users alice
  cortex --profile office get users alice`,
		SilenceUsage:          true,
		SilenceErrors:         true,
		Args:                  cobra.ArbitraryArgs,
		RunE:                  cli.GroupRun,
		DisableFlagsInUseLine: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.prepare(cmd)
		},
	}
	root.SetIn(a.stdin)
	cli.Conventions(root, a.stdout, a.stderr, "  cortex help table create")
	pf := root.PersistentFlags()
	pf.StringVar(&a.socket, "socket", "", "Unix socket of cortexd (default: $CORTEX_SOCKET, else $CORTEX_DATA_DIR/cortex.sock, else the profile's socket, else "+defaultSocket+")")
	pf.BoolVar(&a.json, "json", false, "print exactly one JSON value on stdout")
	pf.DurationVar(&a.timeout, "timeout", 30*time.Second, "give up on an API call after this long (0: never)")
	a.remote.flags(pf)

	root.AddGroup(&cobra.Group{ID: "data", Title: "Data:"}, &cobra.Group{ID: "admin", Title: "Administration:"})
	for _, c := range []*cobra.Command{tableCmd(a), putCmd(a), getCmd(a), delCmd(a), scanCmd(a), watchCmd(a), exportCmd(a), importCmd(a)} {
		c.GroupID = "data"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{identityCmd(a), aclCmd(a), nodeCmd(a), meshCmd(a), certCmd(a), benchCmd(a), syncCmd(a), backupCmd(a), restoreCmd(a)} {
		c.GroupID = "admin"
		root.AddCommand(c)
	}
	cli.AddVersion(root, "cortex")
	addCompletions(a, root)
	return root
}

// groupCmd makes a command that only holds subcommands.
func groupCmd(use, short, long, example string) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Long: long, Example: example,
		Args: cobra.ArbitraryArgs, RunE: cli.GroupRun, DisableFlagsInUseLine: true}
}

// dial returns the client, made on first use: over the Unix socket, or
// over mTLS in remote mode (--addr).
func (a *app) dial() (*api.Client, error) {
	if a.client == nil {
		if a.remote.addr == "" {
			a.client = api.Dial(a.socket)
		} else {
			c, err := a.remote.client()
			if err != nil {
				return nil, err
			}
			a.client = c
		}
	}
	return a.client, nil
}

// where names the node cortex talks to, for messages.
func (a *app) where() string {
	if a.remote.addr != "" {
		return a.remote.addr
	}
	return a.socket
}

// ctx bounds one API call by --timeout.
func (a *app) ctx() (context.Context, context.CancelFunc) {
	if a.timeout > 0 {
		return context.WithTimeout(context.Background(), a.timeout)
	}
	return context.WithCancel(context.Background())
}

// call makes one API call within --timeout.
func call[T any](a *app, f func(context.Context, *api.Client) (T, error)) (T, error) {
	c, err := a.dial()
	if err != nil {
		var zero T
		return zero, err
	}
	ctx, cancel := a.ctx()
	defer cancel()
	return f(ctx, c)
}
