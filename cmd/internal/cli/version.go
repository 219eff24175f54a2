package cli

import (
	"fmt"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/cortex-mesh/cortex/api"
	"github.com/spf13/cobra"
)

// Set at build time by the Makefile:
//
//	-ldflags "-X github.com/cortex-mesh/cortex/cmd/internal/cli.version=$(git describe --tags --always --dirty)
//	          -X github.com/cortex-mesh/cortex/cmd/internal/cli.commit=..."
//
// Empty with a plain go build: the build information is used instead.
var (
	version string
	commit  string
)

// BuildInfo is what a binary says about its build: cortex's version, the
// commit it was built from and the Go release that built it.
type BuildInfo struct {
	Binary  string `json:"binary"`
	Version string `json:"version"`
	Commit  string `json:"commit"`
	Go      string `json:"go"`
}

// String is the line --version prints: "cortex 0.2.0 (commit 1a2b3c4, go1.26.8)".
func (b BuildInfo) String() string {
	return fmt.Sprintf("%s %s (commit %s, %s)", b.Binary, b.Version, b.Commit, b.Go)
}

// Build returns the build information of this binary, named binary.
func Build(binary string) BuildInfo {
	bi, _ := debug.ReadBuildInfo()
	return describeBuild(binary, version, commit, bi, runtime.Version())
}

// Version is Build(binary).String().
func Version(binary string) string { return Build(binary).String() }

var (
	// A commit alone, as git describe --always prints it without a tag.
	commitOnly = regexp.MustCompile(`^g?[0-9a-f]{7,40}(-dirty)?$`)
	// A Go pseudo-version (v0.0.0-20260720101112-0123456789ab), made by
	// go build from a commit without a tag: the commit says more.
	pseudoVersion = regexp.MustCompile(`-(0\.)?[0-9]{14}-[0-9a-f]{12}(\+dirty)?$`)
)

// describeBuild settles the version and commit from the values the
// Makefile set (ldVersion, ldCommit), else the build information go build
// recorded (the module's version if it is a release, vcs.revision and
// vcs.modified), else api.Version and "unknown".
func describeBuild(binary, ldVersion, ldCommit string, bi *debug.BuildInfo, goVersion string) BuildInfo {
	b := BuildInfo{Binary: binary, Version: api.Version, Commit: "unknown", Go: goVersion}
	var revision, modified string
	if bi != nil {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		if v := bi.Main.Version; v != "" && v != "(devel)" && !pseudoVersion.MatchString(v) {
			b.Version = strings.TrimPrefix(v, "v")
		}
	}
	if revision != "" {
		b.Commit = revision[:min(7, len(revision))]
		if modified == "true" {
			b.Commit += "-dirty"
		}
	}
	if ldVersion != "" && !commitOnly.MatchString(ldVersion) {
		b.Version = strings.TrimPrefix(ldVersion, "v")
	}
	if ldCommit != "" {
		b.Commit = ldCommit
	}
	return b
}

// AddVersion gives root a --version flag and a version command (with
// --json), both printing Version(binary) on stdout.
func AddVersion(root *cobra.Command, binary string) {
	info := Build(binary)
	root.Version = info.String()
	root.SetVersionTemplate("{{.Version}}\n")
	root.Flags().Bool("version", false, "print the version, commit and Go release, then exit (the same as "+binary+" version)")
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go release",
		Long: "Print " + binary + "'s version, the commit it was built from and the Go release that built it,\n" +
			"on one line: " + binary + " VERSION (commit COMMIT, GO).\n\n" +
			"With --json: {\"binary\",\"version\",\"commit\",\"go\"}.",
		Example:               "  " + binary + " version\n  " + binary + " version --json",
		Args:                  Positional(cobra.NoArgs),
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if asJSON {
				return WriteJSON(cmd.OutOrStdout(), info)
			}
			_, err := fmt.Fprintln(cmd.OutOrStdout(), info)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	root.AddCommand(cmd)
}
