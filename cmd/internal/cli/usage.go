package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// UsageError is bad usage: an unknown flag or command, a missing or extra
// argument, a malformed argument. The commands exit 2 on it.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// ExitError is a command's verdict that is not a failure of the command
// itself (sync status finding a table not in sync): the commands print Msg
// and exit with Code.
type ExitError struct {
	Code int
	Msg  string
}

func (e *ExitError) Error() string { return e.Msg }

// Usagef returns a usage error for cmd, pointing at its --help.
func Usagef(cmd *cobra.Command, format string, args ...any) error {
	return &UsageError{fmt.Sprintf(format, args...) + fmt.Sprintf(" (see: %s --help)", cmd.CommandPath())}
}

// OneLine keeps a message on one line.
func OneLine(s string) string {
	s = strings.TrimSpace(s)
	return strings.NewReplacer("\r\n", "; ", "\n", "; ", "\r", "; ").Replace(s)
}

// GroupRun is the RunE of a command that only holds subcommands: reaching
// it means the subcommand is missing or unknown.
func GroupRun(cmd *cobra.Command, args []string) error {
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() && c.Name() != "help" && c.Name() != "completion" {
			names = append(names, c.Name())
		}
	}
	if len(args) == 0 {
		return Usagef(cmd, "missing command: %s needs one of %s", cmd.CommandPath(), strings.Join(names, ", "))
	}
	msg := fmt.Sprintf("unknown command %q for %s", args[0], cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf(": did you mean %q?", s[0])
	} else {
		msg += ": use one of " + strings.Join(names, ", ")
	}
	return Usagef(cmd, "%s", msg)
}

// Positional wraps a cobra argument check so that its failure is a usage
// error that names the missing or extra argument from cmd.Use.
func Positional(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if check(cmd, args) == nil {
			return nil
		}
		var required, optional []string
		for _, f := range strings.Fields(cmd.Use)[1:] {
			switch {
			case strings.HasPrefix(f, "[-"):
			case strings.HasPrefix(f, "["):
				optional = append(optional, f)
			default:
				required = append(required, f)
			}
		}
		usage := cmd.Parent().CommandPath() + " " + cmd.Use
		if len(args) < len(required) {
			return Usagef(cmd, "missing %s: usage: %s", strings.Join(required[len(args):], " and "), usage)
		}
		if n := len(required) + len(optional); len(args) > n {
			return Usagef(cmd, "unexpected argument %q: usage: %s", args[n], usage)
		}
		return Usagef(cmd, "wrong arguments: usage: %s", usage)
	}
}

// Conventions sets up a root command the way every cortex command works:
// output to stdout/stderr, flag errors as usage errors, group commands
// whose usage shows only their subcommands, and a help command that
// explains a command or says there is none.
func Conventions(root *cobra.Command, stdout, stderr io.Writer, example string) {
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return Usagef(cmd, "%v", err)
	})
	// A command that only holds subcommands is runnable (to report a
	// missing or unknown one) but its usage is "CMD [command]" alone.
	root.SetUsageTemplate(strings.Replace(root.UsageTemplate(),
		"{{if .Runnable}}", "{{if and .Runnable (not .HasAvailableSubCommands)}}", 1))
	root.SetHelpCommand(&cobra.Command{
		Use:     "help [COMMAND]...",
		Short:   "Explain a command",
		Long:    "Explain a command: the same as COMMAND --help.",
		Example: example,
		Args:    cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			target, rest, err := cmd.Root().Find(args)
			if err != nil || len(rest) > 0 {
				return Usagef(cmd.Root(), "no command %q to explain", strings.Join(args, " "))
			}
			return target.Help()
		},
	})
}
