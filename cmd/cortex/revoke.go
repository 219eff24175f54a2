package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cortex-mesh/cortex/api"
	"github.com/cortex-mesh/cortex/cmd/internal/cli"
	"github.com/cortex-mesh/cortex/store"
)

func nodeRevokeCmd(a *app) *cobra.Command {
	var yes bool
	c := &cobra.Command{
		Use:   "revoke NAME|FINGERPRINT",
		Short: "Shut a node's certificate (or every certificate of a node name) out of the mesh",
		Long: `Add a node name or a certificate fingerprint (sha256:<64 hex digits>, as
cortex cert commands print with --json) to the mesh's revocation list. It
needs an admin node. The list is a system table: every node learns of it
within seconds, closes its connections to the revoked certificate, refuses it
from then on (as a mesh peer and as an RPC client), and refuses any change to
the system tables it signs with a timestamp at or after the revocation.

A name shuts out every certificate made for that name; a fingerprint, one
certificate (to replace a node's key, make it a new certificate, start it,
then revoke the old fingerprint). A node cannot revoke its own certificate.
Asks for confirmation on a terminal; --yes goes on without asking.

Prints "revoked TARGET"; with --json {"target","by","at"}.`,
		Example: `  cortex node revoke laptop
  cortex node revoke sha256:0f3c... --yes`,
		Args: named(cobra.ExactArgs(1), revokeTarget),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.confirm(cmd, yes, fmt.Sprintf("revoke %s everywhere in the mesh?", args[0])); err != nil {
				return err
			}
			r, err := call(a, func(ctx context.Context, c *api.Client) (store.Revocation, error) {
				return c.RevokeCert(ctx, args[0])
			})
			if err != nil {
				return err
			}
			if a.json {
				return cli.WriteJSON(a.stdout, r)
			}
			_, err = fmt.Fprintf(a.stdout, "revoked %s\n", r.Target)
			return err
		},
	}
	c.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	return c
}

func nodeRevocationsCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "revocations",
		Short: "List the mesh's revoked node names and certificates",
		Long: `List the revocation list: TARGET (a node name or a certificate fingerprint),
BY (the admin node that revoked it) and AT. With --json one array of
{"target","by","at"}.`,
		Example: `  cortex node revocations
  cortex node revocations --json | jq -r '.[].target'`,
		Args: cli.Positional(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := call(a, func(ctx context.Context, c *api.Client) ([]store.Revocation, error) {
				return c.Revocations(ctx)
			})
			if err != nil {
				return err
			}
			if a.json {
				return writeJSONList(a.stdout, list)
			}
			cols := cli.NewColumns(a.stdout, "TARGET", "BY", "AT")
			for _, r := range list {
				cols.Row(r.Target, r.By, formatTime(r.At))
			}
			return cols.Flush()
		},
	}
}
