package cli

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func TestClosest(t *testing.T) {
	cmds := []string{"acl", "backup", "bench", "cert", "del", "export", "get", "identity", "import", "put", "scan", "table"}
	for _, c := range []struct{ typed, want string }{
		{"gett", "get"},     // cert is 2 edits away, get 1
		{"pt", "put"},       // get is 2 edits away, put 1
		{"GET", "get"},      // case aside
		{"ide", "identity"}, // a prefix beats del, 2 edits away
		{"b", "bench"},      // two prefixes: the fewer edits
		{"ce", "cert"},
		{"tabel", "table"},
		{"zzzzzz", ""},
	} {
		var near []string // what cobra would offer: within 2 edits or a prefix
		for _, n := range cmds {
			if levenshtein(strings.ToLower(c.typed), n) <= 2 || strings.HasPrefix(n, strings.ToLower(c.typed)) {
				near = append(near, n)
			}
		}
		if got := Closest(c.typed, near); got != c.want {
			t.Errorf("Closest(%q, %q) = %q, want %q", c.typed, near, got, c.want)
		}
	}
	if got := Closest("x", nil); got != "" {
		t.Errorf("no candidates: %q", got)
	}
}

func TestLevenshtein(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"", "abc", 3}, {"abc", "", 3}, {"get", "get", 0}, {"gett", "get", 1},
		{"gett", "cert", 2}, {"pt", "put", 1}, {"pt", "get", 2}, {"kitten", "sitting", 3}, {"héllo", "hello", 1},
	} {
		if got := levenshtein(c.a, c.b); got != c.want {
			t.Errorf("levenshtein(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func TestUseArgs(t *testing.T) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.String("out", "", "")
	fs.String("to", "", "")
	fs.Bool("json", false, "")
	fs.Bool("yes", false, "")
	for _, c := range []struct {
		use                string
		required, optional []string
	}{
		{"dump DATA_DIR TABLE [--from N] [--limit N] [--json] [--values]", []string{"DATA_DIR", "TABLE"}, nil},
		{"verify DATA_DIR [TABLE] [--json]", []string{"DATA_DIR"}, []string{"[TABLE]"}},
		{"ls DATA_DIR [--json] [--segments]", []string{"DATA_DIR"}, nil},
		{"backup --out FILE [TABLE...]", nil, []string{"[TABLE...]"}},
		{"replication --to SOCKET", nil, nil},
		{"set TABLE --tombstone-grace DURATION", []string{"TABLE"}, nil},
		{"drop NAME --yes", []string{"NAME"}, nil},
		{"drop --yes NAME", []string{"NAME"}, nil}, // --yes takes no value
		{"put TABLE KEY VALUE", []string{"TABLE", "KEY", "VALUE"}, nil},
		{"import TABLE [FILE|-]", []string{"TABLE"}, []string{"[FILE|-]"}},
		{"help [COMMAND]...", nil, []string{"[COMMAND]..."}},
		{"x [A [B]] C", []string{"C"}, []string{"[A [B]]"}},
		{"x [--from N", nil, nil}, // unclosed: the rest is the flag
		{"revoke NAME|FINGERPRINT", []string{"NAME|FINGERPRINT"}, nil},
		{"list", nil, nil},
	} {
		req, opt := UseArgs(c.use, fs)
		if !slices.Equal(req, c.required) || !slices.Equal(opt, c.optional) {
			t.Errorf("UseArgs(%q) = %q, %q; want %q, %q", c.use, req, opt, c.required, c.optional)
		}
	}
}

// Positional names what is missing or extra, from the Use line.
func TestPositional(t *testing.T) {
	root := &cobra.Command{Use: "w"}
	dump := &cobra.Command{Use: "dump DATA_DIR TABLE [--from N] [--json]", Args: Positional(cobra.ExactArgs(2))}
	dump.Flags().Uint64("from", 0, "")
	dump.Flags().Bool("json", false, "")
	backup := &cobra.Command{Use: "backup --out FILE [TABLE...]", Args: Positional(cobra.MinimumNArgs(0))}
	verify := &cobra.Command{Use: "verify DATA_DIR [TABLE]", Args: Positional(cobra.RangeArgs(1, 2))}
	root.AddCommand(dump, backup, verify)
	for _, c := range []struct {
		cmd  *cobra.Command
		args []string
		want string
	}{
		{dump, []string{"d"}, "missing TABLE: usage: w dump DATA_DIR TABLE [--from N] [--json] (see: w dump --help)"},
		{dump, nil, "missing DATA_DIR and TABLE: usage: w dump DATA_DIR TABLE [--from N] [--json] (see: w dump --help)"},
		{dump, []string{"d", "t", "x"}, `unexpected argument "x": usage: w dump DATA_DIR TABLE [--from N] [--json] (see: w dump --help)`},
		{verify, nil, "missing DATA_DIR: usage: w verify DATA_DIR [TABLE] (see: w verify --help)"},
		{verify, []string{"d", "t", "u"}, `unexpected argument "u": usage: w verify DATA_DIR [TABLE] (see: w verify --help)`},
	} {
		err := c.cmd.Args(c.cmd, c.args)
		var ue *UsageError
		if !errors.As(err, &ue) || ue.Msg != c.want {
			t.Errorf("%s %q: %v, want usage error %q", c.cmd.Name(), c.args, err, c.want)
		}
	}
	if err := backup.Args(backup, []string{"a", "b", "c"}); err != nil {
		t.Errorf("backup takes any number of tables: %v", err)
	}
	if err := dump.Args(dump, []string{"d", "t"}); err != nil {
		t.Errorf("dump d t: %v", err)
	}
}

// Bool flags are listed as --json, the others with their value's type and
// default, aligned as pflag does.
func TestFlagUsages(t *testing.T) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.Bool("json", false, "print JSON")
	fs.BoolP("yes", "y", false, "do not ask")
	fs.Bool("sync", true, "fsync")
	fs.Uint64("from", 0, "first offset")
	fs.String("out", "a.txt", "the `FILE` to write")
	want := "" +
		"      --json        print JSON\n" +
		"  -y, --yes         do not ask\n" +
		"      --sync        fsync (default true)\n" +
		"      --from uint   first offset\n" +
		"      --out FILE    the FILE to write (default \"a.txt\")\n"
	if got := FlagUsages(fs); got != want {
		t.Errorf("FlagUsages:\n%s\nwant:\n%s", got, want)
	}
	// Listing changes nothing: the flags still parse as bools.
	if err := fs.Parse([]string{"--json", "-y", "--sync=false"}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"json": true, "yes": true, "sync": false} {
		if got, err := fs.GetBool(name); err != nil || got != want {
			t.Errorf("--%s = %v, %v; want %v", name, got, err, want)
		}
	}
}

// A group command's help lists its subcommands without [=true|false], an
// unknown subcommand gets the closest suggestion, a missing one the list.
func TestConventions(t *testing.T) {
	var out, errOut bytes.Buffer
	tool := func() *cobra.Command { // flags keep their values across runs: a new one each time
		root := &cobra.Command{Use: "tool", Args: cobra.ArbitraryArgs, RunE: GroupRun, SilenceErrors: true, SilenceUsage: true}
		Conventions(root, &out, &errOut, "  tool help get")
		root.PersistentFlags().Bool("json", false, "print JSON")
		for _, n := range []string{"get", "put", "cert"} {
			root.AddCommand(&cobra.Command{Use: n + " KEY", Short: n + " a key", Args: Positional(cobra.ExactArgs(1)), RunE: func(*cobra.Command, []string) error { return nil }})
		}
		return root
	}
	root := tool()
	root.SetArgs([]string{"--help"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	help := out.String()
	if !strings.Contains(help, "Usage:\n  tool [command]\n") || strings.Contains(help, "tool [flags]") ||
		!strings.Contains(help, "      --json   print JSON\n") || strings.Contains(help, "true|false") {
		t.Errorf("help:\n%s", help)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"gett"}, `unknown command "gett" for tool: did you mean "get"? (see: tool --help)`},
		{[]string{"pt"}, `unknown command "pt" for tool: did you mean "put"? (see: tool --help)`},
		{[]string{"xyzzy"}, `unknown command "xyzzy" for tool: use one of cert, get, put (see: tool --help)`},
		{nil, `missing command: tool needs one of cert, get, put (see: tool --help)`},
		{[]string{"get", "--nope"}, `unknown flag: --nope (see: tool get --help)`},
	} {
		root := tool()
		root.SetArgs(c.args)
		err := root.Execute()
		var ue *UsageError
		if !errors.As(err, &ue) || ue.Msg != c.want {
			t.Errorf("tool %q: %v, want usage error %q", c.args, err, c.want)
		}
	}
}
