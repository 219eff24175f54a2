package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cortex-mesh/cortex/cmd/internal/cli"
	"github.com/cortex-mesh/cortex/scope"

	"github.com/cortex-mesh/cortex/api"
	"github.com/spf13/cobra"
)

const scopeHelp = `A scope says which nodes hold a copy of the table:
  all      every node of the mesh
  local    only the table's home node (the node that created it)
  a,b,...  exactly the named nodes (names match [a-z0-9][a-z0-9_-]{0,62})`

func tableCmd(a *app) *cobra.Command {
	c := groupCmd("table", "Create, list, re-scope and drop tables",
		"Create, list, re-scope and drop tables.\n\n"+scopeHelp,
		`  cortex table create users --scope all
  cortex table list`)
	c.AddCommand(tableCreateCmd(a), tableScopeCmd(a), tableListCmd(a), tableDropCmd(a), tableSetCmd(a))
	return c
}

// tableJSON is one table as printed with --json.
type tableJSON struct {
	Name  string      `json:"name"`
	Scope scope.Scope `json:"scope"`
	Home  string      `json:"home"`
	Held  bool        `json:"held"`
	// Draining: a copy kept outside the scope until a holder has all of it.
	Draining bool      `json:"draining,omitempty"`
	Keys     int64     `json:"keys"`
	ID       string    `json:"id"`
	System   bool      `json:"system"`
	Created  time.Time `json:"created,omitzero"`
}

func newTableJSON(t api.TableInfo) tableJSON {
	return tableJSON{Name: t.Name, Scope: t.Scope, Home: t.Home, Held: t.Held, Draining: t.Draining, Keys: t.Keys,
		ID: t.ID, System: t.System, Created: t.Created}
}

// parseScope reads a scope argument; a malformed one is bad usage.
func parseScope(cmd *cobra.Command, s string) (scope.Scope, error) {
	scope, err := scope.ParseScope(s)
	if err != nil {
		return scope, cli.Usagef(cmd, "bad scope %q: %s; use all, local or node names separated by commas (a,b)",
			s, strings.TrimPrefix(err.Error(), "scope: "))
	}
	return scope, nil
}

func describeScope(t api.TableInfo) string {
	return fmt.Sprintf("scope %s, home %s", t.Scope, t.Home)
}

// placementHelp is the part of create's and scope's help on the checks.
const placementHelp = `A scope naming a node that is not a member of the mesh (a typo, say) is
refused with the list of members; --allow-unknown accepts a node that has
not joined yet. A change that lowers the number of copies, or leaves no node
that would hold a copy reachable now, shows the change ("copies: home,
office, laptop -> office") and asks for a yes on a terminal; --yes goes on
without asking (without a terminal it is needed, else exit 2).`

// placementFlags are the flags that lift the placement checks.
func placementFlags(c *cobra.Command, o *api.Overrides) {
	c.Flags().BoolVar(&o.AllowUnknown, "allow-unknown", false, "let the scope name nodes that are not members of the mesh yet")
	c.Flags().BoolVar(&o.Confirmed, "yes", false, "do not ask before a change to fewer copies or to no reachable holder")
}

// guarded makes a placement change. When cortexd answers that it needs a
// confirmation, the user is asked (unless --yes was given, which already
// confirmed it) and the change is sent again, confirmed.
func guarded(a *app, cmd *cobra.Command, o api.Overrides, do func(context.Context, *api.Client, api.Overrides) (api.TableInfo, error)) (api.TableInfo, error) {
	info, err := call(a, func(ctx context.Context, c *api.Client) (api.TableInfo, error) { return do(ctx, c, o) })
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeNeedsConfirm {
		return info, err
	}
	if err := a.confirm(cmd, false, ae.Message+". Go on?"); err != nil {
		return info, err
	}
	o.Confirmed = true
	return call(a, func(ctx context.Context, c *api.Client) (api.TableInfo, error) { return do(ctx, c, o) })
}

func tableCreateCmd(a *app) *cobra.Command {
	var scope string
	var grace time.Duration
	var o api.Overrides
	c := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a table with this node as its home",
		Long: `Create a table. The node cortex talks to becomes the table's home. NAME
matches [a-z][a-z0-9_]{0,62} and must not start with cortex_ (reserved for
the system tables).

` + scopeHelp + `

` + placementHelp + `

--tombstone-grace (default 24h, 1s to 87600h) is how long a deleted key's
tombstone is kept at least; it is purged once every holder has it too
(docs/lifecycle.md). cortex table set changes it later.

Prints "created table NAME (scope SCOPE, home NODE)"; with --json the table
as "table list --json" prints it. Exits 1 if the table exists.`,
		Example: `  cortex table create sessions
  cortex table create users --scope all
  cortex table create orders --scope node1,node2
  cortex table create spare --scope home,newbox --allow-unknown   # newbox joins later`,
		Args: named(cobra.ExactArgs(1), newTableArg),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			sc, err := parseScope(cmd, scope)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("tombstone-grace") && grace < time.Second || grace > 87600*time.Hour {
				return cli.Usagef(cmd, "bad --tombstone-grace %s: it must be between 1s and 87600h", grace)
			}
			info, err := guarded(a, cmd, o, func(ctx context.Context, c *api.Client, o api.Overrides) (api.TableInfo, error) {
				return c.CreateTableWith(ctx, api.CreateTableRequest{Table: name, Scope: &sc, TombstoneGraceMS: grace.Milliseconds(), Overrides: o})
			})
			if err != nil {
				return err
			}
			if a.json {
				return cli.WriteJSON(a.stdout, newTableJSON(info))
			}
			_, err = fmt.Fprintf(a.stdout, "created table %s (%s)\n", info.Name, describeScope(info))
			return err
		},
	}
	c.Flags().StringVar(&scope, "scope", "local", "where the table has copies: all, local or a,b,...")
	c.Flags().DurationVar(&grace, "tombstone-grace", 0, "keep tombstones at least this long before purging them (default 24h)")
	placementFlags(c, &o)
	return c
}

func tableSetCmd(a *app) *cobra.Command {
	var grace time.Duration
	c := &cobra.Command{
		Use:   "set TABLE --tombstone-grace DURATION",
		Short: "Change a table's settings (its tombstone grace)",
		Long: `Change a table's tombstone grace: how long a deleted key's tombstone is
kept at least before it may be purged (1s to 87600h). Only the table's home
node or an admin node may change it. A longer grace keeps tombstones that
are not purged yet; a shorter one lets the next horizon go further, never
below a holder that has not acknowledged them (docs/lifecycle.md).`,
		Example: `  cortex table set notes --tombstone-grace 72h`,
		Args:    named(cobra.ExactArgs(1), tableArg),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("tombstone-grace") {
				return cli.Usagef(cmd, "nothing to set: give --tombstone-grace DURATION")
			}
			if grace < time.Second || grace > 87600*time.Hour {
				return cli.Usagef(cmd, "bad --tombstone-grace %s: it must be between 1s and 87600h", grace)
			}
			info, err := call(a, func(ctx context.Context, c *api.Client) (api.TableInfo, error) {
				return c.SetTable(ctx, args[0], grace)
			})
			if err != nil {
				return err
			}
			if a.json {
				return cli.WriteJSON(a.stdout, newTableJSON(info))
			}
			_, err = fmt.Fprintf(a.stdout, "table %s: tombstone grace %s\n", info.Name, grace)
			return err
		},
	}
	c.Flags().DurationVar(&grace, "tombstone-grace", 0, "keep tombstones at least this long before purging them")
	return c
}

func tableScopeCmd(a *app) *cobra.Command {
	var o api.Overrides
	c := &cobra.Command{
		Use:   "scope NAME SCOPE",
		Short: "Change a table's scope",
		Long: `Change which nodes hold a copy of a table. The scope of the system tables
(cortex_*) cannot change.

` + scopeHelp + `

` + placementHelp + `

Prints "table NAME: scope SCOPE, home NODE"; with --json the table as
"table list --json" prints it.`,
		Example: `  cortex table scope users all
  cortex table scope orders node1,node3
  cortex table scope notes office --yes   # from three copies to one, without asking`,
		Args: named(cobra.ExactArgs(2), tableArg),
		RunE: func(cmd *cobra.Command, args []string) error {
			sc, err := parseScope(cmd, args[1])
			if err != nil {
				return err
			}
			info, err := guarded(a, cmd, o, func(ctx context.Context, c *api.Client, o api.Overrides) (api.TableInfo, error) {
				return c.SetScope(ctx, args[0], sc, o)
			})
			if err != nil {
				return err
			}
			if a.json {
				return cli.WriteJSON(a.stdout, newTableJSON(info))
			}
			_, err = fmt.Fprintf(a.stdout, "table %s: %s\n", info.Name, describeScope(info))
			return err
		},
	}
	placementFlags(c, &o)
	return c
}

func tableListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the tables",
		Long: `List every table of the catalog, the system tables (cortex_*) first: its
name, scope, home node, whether this node holds a copy (HELD yes/no) and how
many keys that copy has (- when not held).

With --json, prints one array:
  [{"name","scope","home","held":bool,"keys":N,"id","system":bool,"created"}]
where "scope" is "all", "local" or an array of node names, "home" is "" for
the system tables and "created" is omitted for them.`,
		Example: `  cortex table list
  cortex table list --json | jq -r '.[] | select(.held) | .name'`,
		Args: cli.Positional(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := call(a, func(ctx context.Context, c *api.Client) ([]api.TableInfo, error) {
				return c.Tables(ctx)
			})
			if err != nil {
				return err
			}
			if a.json {
				out := make([]tableJSON, len(list))
				for i, t := range list {
					out[i] = newTableJSON(t)
				}
				return writeJSONList(a.stdout, out)
			}
			cols := cli.NewColumns(a.stdout, "NAME", "SCOPE", "HOME", "HELD", "KEYS")
			seen := map[string]int{}
			for _, t := range list {
				seen[t.Name]++
			}
			for _, t := range list {
				keys, held := "", yesNo(t.Held)
				if t.Held || t.Draining {
					keys = fmt.Sprint(t.Keys)
				}
				if t.Draining {
					held = "handing off"
				}
				name := t.Name
				if seen[t.Name] > 1 {
					name += " (conflict: id " + t.ID + ")"
				}
				cols.Row(name, t.Scope.String(), t.Home, held, keys)
			}
			return cols.Flush()
		},
	}
}

func tableDropCmd(a *app) *cobra.Command {
	var id string
	var yes bool
	c := &cobra.Command{
		Use:   "drop NAME",
		Short: "Drop a table and every key in it",
		Long: `Drop a table: remove it from the catalog and delete every copy of it, with
every key in it, on every node. There is no undo. System tables (cortex_*)
cannot be dropped. Only the table's home node or an admin node may drop it
(exit 4 elsewhere). Exits 3 if there is no such table.

When two tables have the same name (made on two nodes while they were cut
apart, shown twice by table list), reads and writes by that name are
refused until one is dropped: --id ID picks it (the ids are in
cortex table list --json).

Asks for a yes on a terminal; --yes drops without asking (and is needed
without a terminal, else exit 2).

Prints "dropped table NAME"; with --json {"table":NAME,"dropped":true}.`,
		Example: `  cortex table drop sessions
  cortex table drop notes --id 0a1b2c3d4e5f6a7b-laptop --yes`,
		Args: named(cobra.ExactArgs(1), tableArg),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.confirm(cmd, yes, fmt.Sprintf("drop table %s and delete every copy of it, with every key, on every node?", args[0])); err != nil {
				return err
			}
			_, err := call(a, func(ctx context.Context, c *api.Client) (struct{}, error) {
				return struct{}{}, c.DropTable(ctx, args[0], id)
			})
			if err != nil {
				return err
			}
			if a.json {
				return cli.WriteJSON(a.stdout, map[string]any{"table": args[0], "dropped": true})
			}
			_, err = fmt.Fprintf(a.stdout, "dropped table %s\n", args[0])
			return err
		},
	}
	c.Flags().StringVar(&id, "id", "", "the id of the table to drop, when several have the name")
	c.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	return c
}
