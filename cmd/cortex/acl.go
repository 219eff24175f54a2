package main

import (
	"context"
	"fmt"

	"github.com/cortex-mesh/cortex/cmd/internal/cli"
	"github.com/cortex-mesh/cortex/store"

	"github.com/cortex-mesh/cortex/api"
	"github.com/spf13/cobra"
)

const permHelp = `Permissions, each including the ones before it:
  read   get and scan
  write  put and del
  admin  change the table's scope, drop it; on '*' also create tables
The system tables (cortex_*) always need admin. TABLE '*' means every table.`

func aclCmd(a *app) *cobra.Command {
	c := groupCmd("acl", "Grant, revoke and list permissions",
		`Grant, revoke and list what identities may do on tables over mTLS.
Callers on the Unix socket are the local administrator and are not checked.
Access is denied unless granted.

`+permHelp,
		`  cortex acl grant alice users write
  cortex acl list`)
	c.AddCommand(aclGrantCmd(a), aclRevokeCmd(a), aclListCmd(a))
	return c
}

// parsePerm reads a permission word; a bad one is bad usage.
func parsePerm(cmd *cobra.Command, s string) (string, error) {
	p, err := store.ParsePerm(s)
	if err != nil {
		return "", cli.Usagef(cmd, "bad permission %q: use read, write or admin", s)
	}
	return p.String(), nil
}

// onTable names a table or, for '*', every table.
func onTable(table string) string {
	if table == "*" {
		return "every table (*)"
	}
	return table
}

func aclGrantCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "grant IDENTITY TABLE PERM",
		Short: "Give an identity a permission on a table",
		Long: `Give a registered identity a permission on TABLE, or on every table with
'*' (quote it for the shell), replacing the permission it had there. Exits 3
if the identity or the table does not exist.

` + permHelp + `

Prints "granted PERM on TABLE to IDENTITY"; with --json
{"identity","table","perm"}.`,
		Example: `  cortex acl grant alice users write
  cortex acl grant ops '*' admin`,
		Args: named(cobra.ExactArgs(3), identityArg, tableOrAll),
		RunE: func(cmd *cobra.Command, args []string) error {
			perm, err := parsePerm(cmd, args[2])
			if err != nil {
				return err
			}
			g, err := call(a, func(ctx context.Context, c *api.Client) (store.Grant, error) {
				return c.Grant(ctx, args[0], args[1], perm)
			})
			if err != nil {
				return err
			}
			if a.json {
				return cli.WriteJSON(a.stdout, g)
			}
			_, err = fmt.Fprintf(a.stdout, "granted %s on %s to %s\n", g.Perm, onTable(g.Table), g.Identity)
			return err
		},
	}
}

func aclRevokeCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke IDENTITY TABLE [PERM]",
		Short: "Remove an identity's permission on a table",
		Long: `Remove the grant IDENTITY holds on TABLE ('*': the grant on every table).
If PERM is given it must be the permission held, else nothing changes and
cortex exits 1. Revoking a grant that does not exist is not an error.

Prints "revoked the grant of IDENTITY on TABLE" or "IDENTITY has no grant on
TABLE: nothing revoked"; with --json {"identity","table","perm","removed":bool}
("perm" is "" when not given).`,
		Example: `  cortex acl revoke alice users
  cortex acl revoke alice users write
  cortex acl revoke ops '*'`,
		Args: named(cobra.RangeArgs(2, 3), identityArg, tableOrAll),
		RunE: func(cmd *cobra.Command, args []string) error {
			identity, table, perm := args[0], args[1], ""
			if len(args) == 3 {
				var err error
				if perm, err = parsePerm(cmd, args[2]); err != nil {
					return err
				}
			}
			res, err := call(a, func(ctx context.Context, c *api.Client) (api.RevokeResult, error) {
				return c.Revoke(ctx, identity, table, perm)
			})
			if err != nil {
				return err
			}
			if a.json {
				return cli.WriteJSON(a.stdout, map[string]any{"identity": identity, "table": table, "perm": perm, "removed": res.Removed})
			}
			if res.Removed {
				_, err = fmt.Fprintf(a.stdout, "revoked the grant of %s on %s\n", identity, onTable(table))
			} else {
				_, err = fmt.Fprintf(a.stdout, "%s has no grant on %s: nothing revoked\n", identity, onTable(table))
			}
			return err
		},
	}
}

func aclListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List every grant",
		Long: `List every ACL grant, by identity then table.

With --json prints one array: [{"identity","table","perm"}].`,
		Example: `  cortex acl list
  cortex acl list --json | jq -r '.[] | select(.identity == "alice") | .table'`,
		Args: cli.Positional(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			grants, err := call(a, func(ctx context.Context, c *api.Client) ([]store.Grant, error) {
				return c.Grants(ctx)
			})
			if err != nil {
				return err
			}
			if a.json {
				return writeJSONList(a.stdout, grants)
			}
			cols := cli.NewColumns(a.stdout, "IDENTITY", "TABLE", "PERM")
			for _, g := range grants {
				cols.Row(g.Identity, g.Table, g.Perm)
			}
			return cols.Flush()
		},
	}
}
