package main

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/cortex-mesh/cortex/api"
	"github.com/spf13/cobra"
)

// completeTimeout bounds the call that lists the tables for the shell's
// completion: a node that does not answer at once gets no completion.
const completeTimeout = 2 * time.Second

// tableSlot says which arguments of a command are tables.
type tableSlot int

const (
	firstTable    tableSlot = iota // CMD TABLE ...
	everyTable                     // CMD [TABLE...]
	tableThenFile                  // CMD TABLE [FILE]
	secondTable                    // CMD IDENTITY TABLE ...
)

// tableArgs are the commands, by path below the root, whose arguments
// include tables.
var tableArgs = map[string]tableSlot{
	"put": firstTable, "get": firstTable, "del": firstTable, "scan": firstTable, "watch": firstTable,
	"export": firstTable, "import": tableThenFile, "backup": everyTable,
	"table set": firstTable, "table scope": firstTable, "table drop": firstTable,
	"sync status": firstTable, "sync repair": firstTable,
	"acl grant": secondTable, "acl revoke": secondTable,
}

// addCompletions makes the shell complete table names (asking the node,
// with the same connection flags) and --profile (from the configuration
// file).
func addCompletions(a *app, root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		path := strings.TrimPrefix(strings.TrimPrefix(c.CommandPath(), root.Name()), " ")
		if slot, ok := tableArgs[path]; ok {
			c.ValidArgsFunction = func(cmd *cobra.Command, args []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
				switch {
				case slot == tableThenFile && len(args) == 1:
					return nil, cobra.ShellCompDirectiveDefault
				case !slot.isTable(len(args)):
					return nil, cobra.ShellCompDirectiveNoFileComp
				}
				exclude := []string(nil)
				if slot == everyTable {
					exclude = args
				}
				return matchTables(a.tableList(cmd), prefix, exclude), cobra.ShellCompDirectiveNoFileComp
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	root.RegisterFlagCompletionFunc("profile", func(cmd *cobra.Command, _ []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
		path, explicit := configPath(a.remote.config, a.getenv)
		cfg, err := loadClientConfig(path, explicit)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, n := range cfg.names() {
			if strings.HasPrefix(n, prefix) {
				out = append(out, n)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	})
}

// isTable reports whether argument i (from 0) of a command is a table.
func (s tableSlot) isTable(i int) bool {
	switch s {
	case everyTable:
		return true
	case secondTable:
		return i == 1
	}
	return i == 0
}

// tableList asks the node for its tables, within completeTimeout; nil on
// any error (no completion, no message: the shell is typing).
func (a *app) tableList(cmd *cobra.Command) []api.TableInfo {
	if err := a.prepare(cmd); err != nil {
		return nil
	}
	c, err := a.dial()
	if err != nil {
		return nil
	}
	d := completeTimeout
	if a.timeout > 0 && a.timeout < d {
		d = a.timeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	list, err := c.Tables(ctx)
	if err != nil {
		return nil
	}
	return list
}

// matchTables returns the names of the tables that start with prefix and
// are not in exclude, sorted, each once.
func matchTables(list []api.TableInfo, prefix string, exclude []string) []cobra.Completion {
	var out []cobra.Completion
	for _, t := range list {
		if strings.HasPrefix(t.Name, prefix) && !slices.Contains(exclude, t.Name) {
			out = append(out, t.Name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
