package main

import (
	"context"
	"fmt"
	"strings"
	"time"

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
peer ID, the address it listens at, whether it is connected now and since
when (or since when it is not), and the clock skew measured when it
connected (the peer's clock minus ours, in ms). Then the seeds (--peer) this
node is not connected to, with why the last dial failed: a seed that never
answers, or answers with a certificate of another mesh, shows here rather
than as an empty list. A standalone node has no peers.

A peer whose last hello was refused, by either side, says why ("refused:
forgotten" when the mesh forgot the node: cortex node forget), and a node the
mesh forgot is marked so: it is not dialed or expected.

With --json prints [{"node","peer_id","addr","connected":bool,"clock_skew_ms":N,
"since_ms":N,"seed":bool,"last_error","refused","forgotten":bool}] (seeds
last, with "seed":true).`,
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
			var seeds, refused []mesh.PeerStatus
			for _, p := range peers {
				if p.Seed {
					seeds = append(seeds, p)
					continue
				}
				conn := yesNo(p.Connected) + since(p.SinceMS)
				switch {
				case p.Refused != "":
					reason, _, _ := strings.Cut(p.Refused, ":")
					conn += " (refused: " + reason + ")"
					refused = append(refused, p)
				case p.Forgotten:
					conn += " (forgotten)"
				}
				cols.Row(p.Node, p.PeerID, p.Addr, conn, fmt.Sprintf("%dms", p.ClockSkewMS))
			}
			if err := cols.Flush(); err != nil {
				return err
			}
			for _, p := range refused {
				fmt.Fprintf(a.stdout, "%s refused: %s\n", p.Node, p.Refused)
			}
			for _, s := range seeds {
				fmt.Fprintf(a.stdout, "seed %s: not connected%s: %s\n", s.Addr, since(s.SinceMS), s.LastError)
			}
			return nil
		},
	}
}

// since is " for DURATION" from a time in Unix ms, "" if there is none.
func since(ms int64) string {
	if ms <= 0 {
		return ""
	}
	return " for " + time.Since(time.UnixMilli(ms)).Round(time.Second).String()
}
