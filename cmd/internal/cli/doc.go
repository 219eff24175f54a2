package cli

import (
	"bytes"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// Reference renders the --help of root and of every command below it, in
// command order, as the reference part of docs/cli.md: a heading per
// command and its help text verbatim. Flags inherited from the root are
// shown once, under the root. help and completion are left out (cobra's
// own).
func Reference(root *cobra.Command) string {
	var b strings.Builder
	var walk func(c *cobra.Command, level int)
	walk = func(c *cobra.Command, level int) {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			return
		}
		var help bytes.Buffer
		c.SetOut(&help)
		c.SetErr(&help)
		c.Help()
		text := help.String()
		if c != root {
			if i := strings.Index(text, "\nGlobal Flags:\n"); i >= 0 {
				text = text[:i+1]
			}
		}
		fmt.Fprintf(&b, "%s `%s`\n\n```text\n%s\n```\n\n", strings.Repeat("#", level), c.CommandPath(), strings.TrimRight(text, "\n"))
		for _, sub := range c.Commands() {
			walk(sub, min(level+1, 5))
		}
	}
	walk(root, 3)
	return b.String()
}

// CheckDocSection reports whether the part of the file at path between the
// lines "<!-- BEGIN name -->" and "<!-- END name -->" is want. With update
// it writes want there instead (go test ./cmd/... with CORTEX_UPDATE_DOCS=1
// regenerates docs/cli.md's reference from the commands' --help).
func CheckDocSection(path, name, want string, update bool) error {
	doc, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	begin, end := "<!-- BEGIN "+name+" -->\n", "<!-- END "+name+" -->"
	i := bytes.Index(doc, []byte(begin))
	j := bytes.Index(doc, []byte(end))
	if i < 0 || j < i {
		return fmt.Errorf("%s: no %q ... %q section", path, strings.TrimSpace(begin), end)
	}
	i += len(begin)
	if string(doc[i:j]) == want {
		return nil
	}
	if !update {
		return fmt.Errorf("%s: the %s section differs from the commands' --help: run CORTEX_UPDATE_DOCS=1 go test ./cmd/... and commit the result", path, name)
	}
	out := append(append(append([]byte{}, doc[:i]...), want...), doc[j:]...)
	return os.WriteFile(path, out, 0o644)
}
