package cli

import (
	"fmt"
	"io"
	"strings"
	"text/template"
	"unicode"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
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
	if s := Suggest(cmd, args[0]); s != "" {
		msg += fmt.Sprintf(": did you mean %q?", s)
	} else {
		msg += ": use one of " + strings.Join(names, ", ")
	}
	return Usagef(cmd, "%s", msg)
}

// Suggest returns the subcommand of cmd closest to typed, or "" if none is
// close: cobra's candidates (within SuggestionsMinimumDistance, default 2,
// a prefix, or a SuggestFor) ranked by Closest.
func Suggest(cmd *cobra.Command, typed string) string {
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	return Closest(typed, cmd.SuggestionsFor(typed))
}

// Closest returns the candidate closest to typed: one that typed begins
// (case aside) first, then the fewest edits (Levenshtein distance, case
// aside), then the first by name; "" if there is none.
func Closest(typed string, candidates []string) string {
	best, bestPrefix, bestDist := "", false, 0
	typed = strings.ToLower(typed)
	for _, c := range candidates {
		lc := strings.ToLower(c)
		prefix, dist := strings.HasPrefix(lc, typed), levenshtein(typed, lc)
		better := best == "" ||
			prefix && !bestPrefix ||
			prefix == bestPrefix && (dist < bestDist || dist == bestDist && c < best)
		if better {
			best, bestPrefix, bestDist = c, prefix, dist
		}
	}
	return best
}

// levenshtein is the number of single-rune insertions, deletions and
// substitutions that turn a into b.
func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// Positional wraps a cobra argument check so that its failure is a usage
// error that names the missing or extra argument from cmd.Use.
func Positional(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if check(cmd, args) == nil {
			return nil
		}
		required, optional := UseArgs(cmd.Use, cmd.Flags())
		usage := cmd.Parent().CommandPath() + " " + cmd.Use
		if len(args) < len(required) {
			return Usagef(cmd, "missing %s: usage: %s", strings.Join(required[len(args):], " and "), usage)
		}
		if n := len(required) + len(optional); len(args) > n && !variadic(optional) && !variadic(required) {
			return Usagef(cmd, "unexpected argument %q: usage: %s", args[n], usage)
		}
		return Usagef(cmd, "wrong arguments: usage: %s", usage)
	}
}

// UseArgs returns the positional arguments a command's Use line names
// after the command's name, required (TABLE) and optional ([KEY],
// [TABLE...]), leaving out its flags: [--from N], [--json] and --out FILE
// (the value of a flag of fs that takes one; a flag fs does not know is
// taken to take one too).
func UseArgs(use string, fs *pflag.FlagSet) (required, optional []string) {
	fields := strings.Fields(use)
	for i := 1; i < len(fields); i++ {
		f := fields[i]
		switch {
		case strings.HasPrefix(f, "["):
			group := f
			for depth := brackets(f); depth > 0 && i+1 < len(fields); depth += brackets(fields[i]) {
				i++
				group += " " + fields[i]
			}
			if !strings.HasPrefix(group, "[-") {
				optional = append(optional, group)
			}
		case strings.HasPrefix(f, "-"):
			name, _, hasValue := strings.Cut(strings.TrimLeft(f, "-"), "=")
			if hasValue || i+1 == len(fields) || strings.HasPrefix(fields[i+1], "[") || strings.HasPrefix(fields[i+1], "-") {
				continue
			}
			if fl := lookup(fs, name); fl == nil || fl.NoOptDefVal == "" {
				i++ // the flag's value
			}
		default:
			required = append(required, f)
		}
	}
	return required, optional
}

func lookup(fs *pflag.FlagSet, name string) *pflag.Flag {
	if fs == nil {
		return nil
	}
	if len(name) == 1 {
		return fs.ShorthandLookup(name)
	}
	return fs.Lookup(name)
}

// brackets is how many more [ than ] s has.
func brackets(s string) int { return strings.Count(s, "[") - strings.Count(s, "]") }

// variadic reports whether the last of args takes any number (TABLE...).
func variadic(args []string) bool {
	return len(args) > 0 && strings.HasSuffix(strings.TrimSuffix(args[len(args)-1], "]"), "...")
}

// usageTemplate is cobra's, except that a command that only holds
// subcommands is runnable (to report a missing or unknown one) but its
// usage is "CMD [command]" alone, and flags are listed by FlagUsages.
const usageTemplate = `Usage:{{if and .Runnable (not .HasAvailableSubCommands)}}
  {{.UseLine}}{{end}}{{if .HasAvailableSubCommands}}
  {{.CommandPath}} [command]{{end}}{{if gt (len .Aliases) 0}}

Aliases:
  {{.NameAndAliases}}{{end}}{{if .HasExample}}

Examples:
{{.Example}}{{end}}{{if .HasAvailableSubCommands}}{{$cmds := .Commands}}{{if eq (len .Groups) 0}}

Available Commands:{{range $cmds}}{{if (or .IsAvailableCommand (eq .Name "help"))}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}{{else}}{{range $group := .Groups}}

{{.Title}}{{range $cmds}}{{if (and (eq .GroupID $group.ID) (or .IsAvailableCommand (eq .Name "help")))}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}{{end}}{{if not .AllChildCommandsHaveGroup}}

Additional Commands:{{range $cmds}}{{if (and (eq .GroupID "") (or .IsAvailableCommand (eq .Name "help")))}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}{{end}}{{end}}{{end}}{{if .HasAvailableLocalFlags}}

Flags:
{{flagUsages .LocalFlags | trimTrailingWhitespaces}}{{end}}{{if .HasAvailableInheritedFlags}}

Global Flags:
{{flagUsages .InheritedFlags | trimTrailingWhitespaces}}{{end}}{{if .HasHelpSubCommands}}

Additional help topics:{{range .Commands}}{{if .IsAdditionalHelpTopicCommand}}
  {{rpad .CommandPath .CommandPathPadding}} {{.Short}}{{end}}{{end}}{{end}}{{if .HasAvailableSubCommands}}

Use "{{.CommandPath}} [command] --help" for more information about a command.{{end}}
`

// FlagUsages lists fs's flags as pflag does, except that a bool flag shows
// as --json, not --json[=true|false].
func FlagUsages(fs *pflag.FlagSet) string {
	out := pflag.NewFlagSet(fs.Name(), pflag.ContinueOnError)
	out.SortFlags = fs.SortFlags
	fs.VisitAll(func(f *pflag.Flag) {
		c := *f
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			c.Value = plainBool{f.Value}
		}
		out.AddFlag(&c)
	})
	return out.FlagUsages()
}

// plainBool hides a bool flag's IsBoolFlag from pflag's usage, which
// then shows the flag alone (its NoOptDefVal "true" still says it takes
// no value). It is only ever listed, never parsed.
type plainBool struct{ pflag.Value }

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
	usage := template.Must(template.New("usage").Funcs(template.FuncMap{
		"rpad":                    func(s string, n int) string { return fmt.Sprintf("%-*s", n, s) },
		"trimTrailingWhitespaces": func(s string) string { return strings.TrimRightFunc(s, unicode.IsSpace) },
		"flagUsages":              FlagUsages,
	}).Parse(usageTemplate))
	root.SetUsageFunc(func(c *cobra.Command) error { return usage.Execute(c.OutOrStderr(), c) })
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
