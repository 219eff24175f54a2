package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/cortex-mesh/cortex/cmd/internal/cli"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// execute runs one cortexd command line and returns its exit code: the
// daemon (start, given the configuration) or one of its commands (version,
// completion, help). Help and version go to stdout; errors are one line on
// stderr starting with "error: ".
func execute(args []string, getenv func(string) string, stdout, stderr io.Writer, start func(Config, io.Writer) error) int {
	root := newRootCmd(getenv, stdout, stderr, start)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "error: %s\n", cli.OneLine(err.Error()))
	var ue *cli.UsageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitError
}

const rootLong = `cortexd is the cortex daemon: it opens the node's data directory, serves the
local API on a Unix socket (what cortex talks to) and, in mesh mode, replicates
the tables its scope selects with the other nodes over libp2p, authenticated by
the mesh CA's certificates.

Configuration: the defaults, then the environment (CORTEX_DATA_DIR,
CORTEX_SOCKET), then the TOML file --config names (the same keys as the flags,
with underscores: data_dir, node_name, mesh_ca, peers, ...; an unknown key is
refused), then the flags: each wins over the ones before. With no flags it runs
standalone on ./cortex-data, its socket at ./cortex-data/cortex.sock. Mesh mode
needs all three of --mesh-ca, --mesh-cert and --mesh-key (cortex cert).

A start that is refused (bad flags or config, an unreadable certificate, a data
directory in use, a port taken) removes what it added to the data directory:
no LOCK is left behind (one that was there keeps its content), nor on a first
start NODE and tables/, nor the directory if it made it.

Signals: SIGTERM or SIGINT stops it cleanly (the writes in flight finish, the
tables are checkpointed); SIGHUP reloads the node's certificate and key.

Logs go to stderr (--log-format text or json).

Exit codes:
  0  stopped cleanly
  1  error (a refused start, or a failure while serving)
  2  bad usage (unknown flag or command, an unexpected argument)`

// flagGroups lists cortexd's flags under titles for --help, in order;
// flags in no group (--help, --version) are listed last.
func flagGroups() []struct {
	title string
	names []string
} {
	return []struct {
		title string
		names []string
	}{
		{"Configuration", []string{"config"}},
		{"Node and storage", []string{"data-dir", "node-name", "socket", "fsync", "max-key-size", "max-value-size", "wal-retention", "checkpoint-every"}},
		{"Mesh", []string{"mesh-listen", "mesh-ca", "mesh-cert", "mesh-key", "peer", "max-clock-skew"}},
		{"Remote clients and monitoring", []string{"rpc-listen", "metrics-listen"}},
		{"Logging", []string{"log-level", "log-format"}},
	}
}

func newRootCmd(getenv func(string) string, stdout, stderr io.Writer, start func(Config, io.Writer) error) *cobra.Command {
	cfg := defaultConfig(getenv)
	var file string
	root := &cobra.Command{
		Use:   "cortexd [flags]",
		Short: "The cortex daemon: a node of the replicated key-value table store",
		Long:  rootLong,
		Example: `  cortexd --data-dir /tmp/home --node-name home
  cortexd --config /etc/cortex/cortexd.toml
  cortexd --data-dir /var/lib/cortex --mesh-listen 0.0.0.0:7946 \
    --mesh-ca certs/ca.crt --mesh-cert certs/node-home.crt --mesh-key certs/node-home.key \
    --peer office.example.com:7946
  cortexd version
  source <(cortexd completion bash)`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			msg := fmt.Sprintf("unexpected argument %q: cortexd takes flags only", args[0])
			if s := cli.Suggest(cmd, args[0]); s != "" {
				msg += fmt.Sprintf(" (did you mean the command %q?)", s)
			}
			return cli.Usagef(cmd, "%s", msg)
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			settled, err := settleConfig(cfg, file, cmd.Flags(), getenv)
			var ue usageError
			if errors.As(err, &ue) {
				return cli.Usagef(cmd, "%v", ue.error)
			}
			if err != nil {
				return err
			}
			return start(settled, cmd.ErrOrStderr())
		},
	}
	fs := root.Flags()
	fs.SortFlags = false
	fs.AddFlagSet(flagSet(&cfg, &file))
	root.InitDefaultHelpFlag() // also for "cortexd help", which lists the root's flags without parsing them
	cli.Conventions(root, stdout, stderr, "  cortexd help completion")
	cli.AddVersion(root, "cortexd")
	completions(root)
	inherited := root.UsageFunc()
	root.SetUsageFunc(func(c *cobra.Command) error {
		if c != root {
			return inherited(c)
		}
		_, err := io.WriteString(c.OutOrStderr(), rootUsage(c))
		return err
	})
	return root
}

// rootUsage is cortexd's usage, its flags in groups.
func rootUsage(root *cobra.Command) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage:\n  %s\n  %s [command]\n\nExamples:\n%s\n\nCommands:\n", root.UseLine(), root.CommandPath(), root.Example)
	for _, c := range root.Commands() {
		if c.IsAvailableCommand() || c.Name() == "help" {
			fmt.Fprintf(&b, "  %-*s %s\n", c.NamePadding(), c.Name(), c.Short)
		}
	}
	flags := root.LocalFlags()
	listed := map[string]bool{}
	section := func(title string, names []string) {
		group := pflag.NewFlagSet(title, pflag.ContinueOnError)
		group.SortFlags = false
		for _, n := range names {
			if f := flags.Lookup(n); f != nil && !f.Hidden {
				group.AddFlag(f)
				listed[n] = true
			}
		}
		if group.HasFlags() {
			fmt.Fprintf(&b, "\n%s flags:\n%s", title, cli.FlagUsages(group))
		}
	}
	for _, g := range flagGroups() {
		section(g.title, g.names)
	}
	var rest []string
	flags.VisitAll(func(f *pflag.Flag) {
		if !listed[f.Name] {
			rest = append(rest, f.Name)
		}
	})
	section("Other", rest)
	fmt.Fprintf(&b, "\nUse \"%s [command] --help\" for more information about a command.\n", root.CommandPath())
	return b.String()
}

// completions tells the shell completion (cortexd completion bash) what
// the flags take: fixed words, files, directories.
func completions(root *cobra.Command) {
	fixed := map[string][]string{
		"fsync":      {"batch", "never"},
		"log-level":  {"debug", "info", "warn", "error"},
		"log-format": {"text", "json"},
	}
	for name, words := range fixed {
		root.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(words, cobra.ShellCompDirectiveNoFileComp))
	}
	root.MarkFlagFilename("config", "toml")
	for _, name := range []string{"mesh-ca", "mesh-cert", "mesh-key", "socket"} {
		root.MarkFlagFilename(name)
	}
	root.MarkFlagDirname("data-dir")
	for _, name := range []string{"node-name", "mesh-listen", "peer", "rpc-listen", "metrics-listen", "max-key-size", "max-value-size",
		"wal-retention", "checkpoint-every", "max-clock-skew"} {
		root.RegisterFlagCompletionFunc(name, cobra.NoFileCompletions)
	}
}
