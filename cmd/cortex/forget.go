package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cortex-mesh/cortex/api"
	"github.com/cortex-mesh/cortex/cmd/internal/cli"
	"github.com/cortex-mesh/cortex/store"
)

func nodeForgetCmd(a *app) *cobra.Command {
	var yes bool
	c := &cobra.Command{
		Use:   "forget NAME",
		Short: "Remove a node that is gone for good from the mesh, so that the purge goes on without it",
		Long: `Forget a node that will not come back (its disk died, the machine is gone):
every node stops counting it as a member. It is no longer dialed, expected
by readiness or mesh peers, or waited for by the tombstone purge of the
tables it held (sync status stops naming it as a missing holder or as what
blocks the purge). It needs an admin node, and refuses the node it runs on,
a node connected to it right now (stop it first; to shut out a node that
runs, use cortex node revoke) and a name that is not a member (exit 3; a
standalone node has no other members, so it forgets nothing).

It writes the record forgot/NAME/INCARNATION in cortex_meta (the node's
incarnation: the id of its data directory, made when the directory was
created) and deletes the node's membership record (node/NAME). If the node
comes back with that data directory it is refused by every node, on both
sides, with "node NAME was forgotten by the mesh at T: wipe its data
directory and start it again to rejoin"; nothing it holds is taken by
anyone. Started again with an empty data directory (a new incarnation), it
joins as a new node and gets its copies by snapshot. A list scope that names
it keeps the name, so that such a node gets its copies again; change the
scope (cortex table scope) to drop the name for good.

First it shows what it does: the node, its incarnation and last-seen time,
the tables whose purge waits for it, those whose scope names it and those it
is the home of (only a table's home moves its purge horizon: those tables
purge no more). Then it asks for confirmation on a terminal; --yes goes on
without asking (and is needed without a terminal: exit 2).

Prints "forgot NAME"; with --json {"node","incarnation","last_seen_ms",
"blocks":[tables],"named":[tables],"home":[tables],"by","at"}.`,
		Example: `  cortex node forget laptop
  cortex node forget laptop --yes --json`,
		Args: cli.Positional(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			plan, err := call(a, func(ctx context.Context, c *api.Client) (store.ForgetPlan, error) {
				return c.ForgetNode(ctx, args[0], true)
			})
			if err != nil {
				return err
			}
			if !a.json {
				describeForget(a.stdout, plan)
			}
			if err := a.confirm(cmd, yes, fmt.Sprintf("forget node %s for good?", plan.Node)); err != nil {
				return err
			}
			done, err := call(a, func(ctx context.Context, c *api.Client) (store.ForgetPlan, error) {
				return c.ForgetNode(ctx, args[0], false)
			})
			if err != nil {
				return err
			}
			if a.json {
				return cli.WriteJSON(a.stdout, done)
			}
			_, err = fmt.Fprintf(a.stdout, "forgot %s: it is out of the mesh; if it comes back with its old data it is refused (wipe its data directory to rejoin it)\n", done.Node)
			return err
		},
	}
	c.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	return c
}

// describeForget says what forgetting a node does.
func describeForget(w io.Writer, p store.ForgetPlan) {
	inc := p.Incarnation
	if inc == "" {
		inc = "unknown (its record is from an earlier version)"
	}
	seen := "never"
	if p.LastSeenMS > 0 {
		seen = formatTime(time.UnixMilli(p.LastSeenMS))
	}
	list := func(l []string) string {
		if len(l) == 0 {
			return "none"
		}
		return strings.Join(l, ", ")
	}
	fmt.Fprintf(w, "forget node %s (incarnation %s, last seen %s)\n", p.Node, inc, seen)
	fmt.Fprintf(w, "  tables whose purge waits for it, and goes on without it: %s\n", list(p.Blocks))
	fmt.Fprintf(w, "  tables whose scope names it (the name stays; a wiped %s that rejoins gets its copies again): %s\n", p.Node, list(p.Named))
	fmt.Fprintf(w, "  tables it is the home of (they purge no more): %s\n", list(p.Home))
}

func nodeForgottenCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "forgotten",
		Short: "List the nodes the mesh forgot",
		Long: `List the forgot records (cortex node forget): NODE, INCARNATION (of the data
directory that is refused; "unknown" for a record of an earlier version,
which refuses a node that presents none), BY (the admin node), AT and LAST
SEEN (the node's last-seen time then). With --json one array of
{"node","incarnation","by","at","last_seen_ms"}.`,
		Example: `  cortex node forgotten
  cortex node forgotten --json | jq -r '.[].node'`,
		Args: cli.Positional(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := call(a, func(ctx context.Context, c *api.Client) ([]store.Forgot, error) {
				return c.Forgotten(ctx)
			})
			if err != nil {
				return err
			}
			if a.json {
				return writeJSONList(a.stdout, list)
			}
			cols := cli.NewColumns(a.stdout, "NODE", "INCARNATION", "BY", "AT", "LAST SEEN")
			for _, f := range list {
				inc, seen := f.Incarnation, ""
				if inc == "" {
					inc = store.UnknownIncarnation
				}
				if f.LastSeen > 0 {
					seen = formatTime(time.UnixMilli(f.LastSeen))
				}
				cols.Row(f.Node, inc, f.By, formatTime(f.At), seen)
			}
			return cols.Flush()
		},
	}
}
