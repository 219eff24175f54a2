package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cortex-mesh/cortex/cmd/internal/cli"

	"github.com/cortex-mesh/cortex/api"
	"github.com/cortex-mesh/cortex/health"
	"github.com/spf13/cobra"
)

func nodeCmd(a *app) *cobra.Command {
	c := groupCmd("node", "Show the node cortex talks to; revoke nodes' certificates; forget nodes gone for good",
		"Show the node cortex talks to, keep the mesh's revocation list, and forget nodes that are gone for good.",
		"  cortex node status\n  cortex node revoke laptop\n  cortex node forget laptop")
	c.AddCommand(nodeStatusCmd(a), nodeRevokeCmd(a), nodeRevocationsCmd(a), nodeForgetCmd(a), nodeForgottenCmd(a))
	return c
}

func nodeStatusCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the node's name, version, uptime, tables, health and readiness",
		Long: `Show the node's name, the cortexd version, how long it has been up, whether
it runs in mesh mode and how many table copies it holds (system tables
included).

With --json prints {"node","version","uptime_s","mesh":bool,"tables":N}, plus
in mesh mode "mesh_addrs" (the HOST:PORT addresses the mesh listens on) and
"replication": per table, since the start, {"subscribed": subscriptions this
node opened to peers, "refused": subscribers it refused, "snapshots_sent",
"snapshots_received"}; "ready" and "healthy", each {"ok":bool,"reason"}:
what cortexd's /readyz and /healthz answer (ready: every table this node
holds caught up with every reachable holder since it started; healthy: every
table it holds is open); and "cert" (the node's certificate in use: the one
the last SIGHUP reload put in place) and "ca" (the mesh CA's), each
{"name","mesh","serial","fingerprint","not_after","days_left"}; the text
shows their end and days left, and the mesh's name. When a peer refused
this node because the mesh forgot it (cortex node forget), "forgotten" holds
the peer's message (FORGOTTEN in the text): wipe the data directory and
start the node again to rejoin.`,
		Example: `  cortex node status
  cortex node status --json | jq -r .node`,
		Args: cli.Positional(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := call(a, func(ctx context.Context, c *api.Client) (api.NodeStatus, error) {
				return c.NodeStatus(ctx)
			})
			if err != nil {
				return err
			}
			if a.json {
				return cli.WriteJSON(a.stdout, st)
			}
			cols := cli.NewColumns(a.stdout, "NODE", st.Node)
			cols.Row("VERSION", st.Version)
			cols.Row("UPTIME", (time.Duration(st.UptimeS) * time.Second).String())
			cols.Row("MESH", yesNo(st.Mesh))
			cols.Row("TABLES", fmt.Sprint(st.Tables))
			if st.Mesh {
				cols.Row("MESH ADDRS", strings.Join(st.MeshAddrs, " "))
			}
			if st.CA != nil && st.CA.Mesh != "" {
				cols.Row("MESH NAME", st.CA.Mesh)
			}
			if st.Cert != nil {
				cols.Row("CERT", certDays(st.Cert))
			}
			if st.CA != nil {
				cols.Row("CA", certDays(st.CA))
			}
			if st.Healthy != nil {
				cols.Row("HEALTHY", verdict(*st.Healthy))
			}
			if st.Ready != nil {
				cols.Row("READY", verdict(*st.Ready))
			}
			if st.Forgotten != "" {
				cols.Row("FORGOTTEN", "refused: "+st.Forgotten)
			}
			return cols.Flush()
		},
	}
}

// certDays is a certificate's end and days left, as node status shows it.
func certDays(c *api.CertStatus) string {
	s := fmt.Sprintf("%d days left (until %s, serial %s)", c.DaysLeft, c.NotAfter.Format(time.RFC3339), c.Serial)
	if c.DaysLeft < 30 {
		s += ": expires soon, renew it"
	}
	return s
}

// verdict shows a health or readiness verdict: yes or no, and why.
func verdict(s health.Status) string { return yesNo(s.OK) + " (" + s.Reason + ")" }
