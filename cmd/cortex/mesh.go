package main

import (
	"context"
	"fmt"

	"github.com/cortex-mesh/cortex/cmd/internal/cli"

	"github.com/cortex-mesh/cortex/api"
	"github.com/cortex-mesh/cortex/mesh"
	"github.com/spf13/cobra"
)

func meshCmd(a *app) *cobra.Command {
	c := groupCmd("mesh", "Show the node's mesh peers", "Show the node's mesh peers.",
		"  cortex mesh peers")
	c.AddCommand(meshPeersCmd(a))
	return c
}

func meshPeersCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "peers",
		Short: "List the peers this node has met, connected or not",
		Long: `List the mesh peers this node has met since it started: node name, libp2p
peer ID, the address of the connection, whether it is connected now, and the
clock skew measured when it connected (the peer's clock minus ours, in ms).
A standalone node has no peers.

With --json prints [{"node","peer_id","addr","connected":bool,"clock_skew_ms":N}].`,
		Example: `  cortex mesh peers
  cortex mesh peers --json | jq -r '.[] | select(.connected) | .node'`,
		Args: cli.Positional(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			peers, err := call(a, func(ctx context.Context, c *api.Client) ([]mesh.PeerStatus, error) {
				return c.MeshPeers(ctx)
			})
			if err != nil {
				return err
			}
			if a.json {
				return cli.WriteJSON(a.stdout, peers)
			}
			cols := cli.NewColumns(a.stdout, "NODE", "PEER ID", "ADDR", "CONNECTED", "CLOCK SKEW")
			for _, p := range peers {
				cols.Row(p.Node, p.PeerID, p.Addr, yesNo(p.Connected), fmt.Sprintf("%dms", p.ClockSkewMS))
			}
			return cols.Flush()
		},
	}
}
