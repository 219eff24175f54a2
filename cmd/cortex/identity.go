package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/cortex-mesh/cortex/cmd/internal/cli"
	"github.com/cortex-mesh/cortex/store"

	"github.com/cortex-mesh/cortex/api"
	"github.com/spf13/cobra"
)

func identityCmd(a *app) *cobra.Command {
	c := groupCmd("identity", "Register, list and remove identities",
		`Register, list and remove identities. An identity is the name (the
certificate's common name) of a client or a node that may call cortexd over
mTLS; what it may do is set with "cortex acl".`,
		`  cortex identity add alice --cert alice.crt
  cortex identity list`)
	c.AddCommand(identityAddCmd(a), identityListCmd(a), identityRemoveCmd(a))
	return c
}

// identityJSON is one identity as printed with --json; fingerprint is ""
// when the identity is not pinned to a certificate.
type identityJSON struct {
	Name        string    `json:"name"`
	Kind        string    `json:"kind"`
	Fingerprint string    `json:"fingerprint"`
	Added       time.Time `json:"added"`
}

func newIdentityJSON(id store.Identity) identityJSON {
	return identityJSON{Name: id.Name, Kind: id.Kind, Fingerprint: id.Fingerprint, Added: id.Added}
}

func identityAddCmd(a *app) *cobra.Command {
	var certFile, kind string
	c := &cobra.Command{
		Use:   "add NAME",
		Short: "Register an identity",
		Long: `Register an identity (or replace its record). NAME matches
[a-z0-9][a-z0-9_-]{0,62} and is the common name of the certificates it uses.
--kind says whether it is a client (the default) or a node of the mesh.
--cert FILE pins the identity to that one PEM certificate (its common name
must be NAME): only that certificate is accepted for it.

A remote client (cortex --addr) is served only if its identity is registered
here as a client (and, if pinned, shows the pinned certificate); what it may
do is what "cortex acl grant" gives it. To run this command remotely, set the
remote flags with $CORTEX_ADDR, $CORTEX_CA, $CORTEX_CERT and $CORTEX_KEY:
here --cert is the certificate to pin.

Prints "added identity NAME (KIND)"; with --json the identity as
"identity list --json" prints it.`,
		Example: `  cortex identity add alice
  cortex identity add node2 --kind node --cert certs/node-node2.crt`,
		Args: named(cobra.ExactArgs(1), identityArg),
		RunE: func(cmd *cobra.Command, args []string) error {
			if kind != "client" && kind != "node" {
				return cli.Usagef(cmd, "bad --kind %q: use client or node", kind)
			}
			req := api.AddIdentityRequest{Name: args[0], Kind: kind}
			if certFile != "" {
				pem, err := os.ReadFile(certFile)
				if err != nil {
					return fmt.Errorf("read the certificate (--cert): %w", err)
				}
				req.CertPEM = string(pem)
			}
			id, err := call(a, func(ctx context.Context, c *api.Client) (store.Identity, error) {
				return c.AddIdentity(ctx, req)
			})
			if err != nil {
				return err
			}
			if a.json {
				return cli.WriteJSON(a.stdout, newIdentityJSON(id))
			}
			msg := fmt.Sprintf("added identity %s (%s)", id.Name, id.Kind)
			if id.Fingerprint != "" {
				msg += ", pinned to certificate " + id.Fingerprint
			}
			_, err = fmt.Fprintln(a.stdout, msg)
			return err
		},
	}
	c.Flags().StringVar(&certFile, "cert", "", "PEM certificate the identity is pinned to")
	c.Flags().StringVar(&kind, "kind", "client", "client or node")
	return c
}

func identityListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the identities",
		Long: `List the registered identities by name: kind, the fingerprint of the
certificate it is pinned to (- if none) and when it was added.

With --json prints one array:
  [{"name","kind","fingerprint","added"}]
where "fingerprint" is "sha256:<hex>" or "" and "added" is RFC 3339.`,
		Example: `  cortex identity list
  cortex identity list --json | jq -r '.[] | select(.kind == "node") | .name'`,
		Args: cli.Positional(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := call(a, func(ctx context.Context, c *api.Client) ([]store.Identity, error) {
				return c.Identities(ctx)
			})
			if err != nil {
				return err
			}
			if a.json {
				out := make([]identityJSON, len(ids))
				for i, id := range ids {
					out[i] = newIdentityJSON(id)
				}
				return writeJSONList(a.stdout, out)
			}
			cols := cli.NewColumns(a.stdout, "NAME", "KIND", "FINGERPRINT", "ADDED")
			for _, id := range ids {
				cols.Row(id.Name, id.Kind, id.Fingerprint, formatTime(id.Added))
			}
			return cols.Flush()
		},
	}
}

func identityRemoveCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove an identity and its grants",
		Long: `Remove an identity and every ACL grant it holds. Exits 3 if there is no
such identity.

Prints "removed identity NAME and its N grant(s)"; with --json
{"name","grants_removed":N}.`,
		Example: `  cortex identity remove alice`,
		Args:    named(cobra.ExactArgs(1), identityArg),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := call(a, func(ctx context.Context, c *api.Client) (api.RemoveIdentityResult, error) {
				return c.RemoveIdentity(ctx, args[0])
			})
			if err != nil {
				return err
			}
			if a.json {
				return cli.WriteJSON(a.stdout, map[string]any{"name": args[0], "grants_removed": res.GrantsRemoved})
			}
			_, err = fmt.Fprintf(a.stdout, "removed identity %s and its %d grant(s)\n", args[0], res.GrantsRemoved)
			return err
		},
	}
}
