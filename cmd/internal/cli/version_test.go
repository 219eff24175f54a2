package cli

import (
	"bytes"
	"encoding/json"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/cortex-mesh/cortex/api"
	"github.com/spf13/cobra"
)

func TestDescribeBuild(t *testing.T) {
	vcs := func(version, rev, modified string) *debug.BuildInfo {
		bi := &debug.BuildInfo{Main: debug.Module{Path: "github.com/cortex-mesh/cortex", Version: version}}
		if rev != "" {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: "vcs.revision", Value: rev})
		}
		if modified != "" {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: "vcs.modified", Value: modified})
		}
		return bi
	}
	const rev = "b9dc3ca0123456789abcdef0123456789abcdef0"
	for _, c := range []struct {
		name                string
		ldVersion, ldCommit string
		bi                  *debug.BuildInfo
		version, commit     string
	}{
		{"no build information", "", "", nil, api.Version, "unknown"},
		{"go build outside git", "", "", vcs("(devel)", "", ""), api.Version, "unknown"},
		{"go build, clean", "", "", vcs("(devel)", rev, "false"), api.Version, "b9dc3ca"},
		{"go build, dirty", "", "", vcs("(devel)", rev, "true"), api.Version, "b9dc3ca-dirty"},
		{"go build, pseudo-version", "", "", vcs("v0.0.0-20260720101112-b9dc3ca01234+dirty", rev, "true"), api.Version, "b9dc3ca-dirty"},
		{"go build at a tag", "", "", vcs("v0.2.0", rev, "false"), "0.2.0", "b9dc3ca"},
		{"go install of a release", "", "", vcs("v0.2.1", "", ""), "0.2.1", "unknown"},
		{"make at a tag", "v0.2.0", "b9dc3ca", vcs("(devel)", rev, "false"), "0.2.0", "b9dc3ca"},
		{"make after a tag", "v0.2.0-3-gb9dc3ca-dirty", "b9dc3ca-dirty", vcs("(devel)", rev, "true"), "0.2.0-3-gb9dc3ca-dirty", "b9dc3ca-dirty"},
		{"make without tags", "b9dc3ca-dirty", "b9dc3ca-dirty", vcs("(devel)", rev, "true"), api.Version, "b9dc3ca-dirty"},
		{"make without git", "", "", vcs("(devel)", "", ""), api.Version, "unknown"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := describeBuild("cortex", c.ldVersion, c.ldCommit, c.bi, "go1.26.8")
			want := BuildInfo{Binary: "cortex", Version: c.version, Commit: c.commit, Go: "go1.26.8"}
			if got != want {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}
	b := BuildInfo{Binary: "cortexd", Version: "0.2.0", Commit: "b9dc3ca", Go: "go1.26.8"}
	if got, want := b.String(), "cortexd 0.2.0 (commit b9dc3ca, go1.26.8)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

// --version and version print the same line; version --json the fields.
func TestAddVersion(t *testing.T) {
	want := Version("tool") + "\n"
	if !strings.HasPrefix(want, "tool ") || !strings.HasSuffix(want, ", "+runtime.Version()+")\n") {
		t.Fatalf("Version: %q", want)
	}
	run := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		root := &cobra.Command{Use: "tool", Args: cobra.NoArgs, RunE: func(*cobra.Command, []string) error { return nil },
			SilenceErrors: true, SilenceUsage: true}
		Conventions(root, &out, &errOut, "")
		AddVersion(root, "tool")
		root.SetArgs(args)
		err := root.Execute()
		return out.String(), err
	}
	for _, args := range [][]string{{"--version"}, {"version"}} {
		if got, err := run(args...); err != nil || got != want {
			t.Errorf("tool %q: %q, %v; want %q", args, got, err, want)
		}
	}
	got, err := run("version", "--json")
	var info BuildInfo
	if err != nil || json.Unmarshal([]byte(got), &info) != nil || info != Build("tool") {
		t.Errorf("version --json: %q, %v; want %+v", got, err, Build("tool"))
	}
	if _, err := run("version", "extra"); err == nil || !strings.Contains(err.Error(), `unexpected argument "extra"`) {
		t.Errorf("version extra: %v", err)
	}
}
