package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cortex-mesh/cortex/cmd/internal/cli"

	"github.com/cortex-mesh/cortex/api"
	"github.com/cortex-mesh/cortex/repair"
	"github.com/spf13/cobra"
)

func syncCmd(a *app) *cobra.Command {
	c := groupCmd("sync", "Show and fix replication", "Show the replication state of tables across the mesh.",
		"  cortex sync status\n  cortex sync status fruit --json")
	c.AddCommand(syncStatusCmd(a), syncRepairCmd(a))
	return c
}

var stateWords = map[string]string{
	repair.InSync: "in sync", repair.Degraded: "degraded", repair.CatchingUp: "catching up",
	repair.Diverged: "diverged (run cortex sync repair)", repair.Unknown: "unknown",
}

// notInSync is sync status's verdict as an exit code: 0 only when every
// table shown is in sync, exitDiverged when one diverged, else exitNotInSync.
func notInSync(st repair.Status) error {
	var diverged, other []string
	for _, ts := range st.Tables {
		switch ts.State {
		case repair.InSync:
		case repair.Diverged:
			diverged = append(diverged, ts.Table)
		default:
			other = append(other, ts.Table+" "+stateWords[ts.State])
		}
	}
	switch {
	case len(diverged) > 0:
		return &cli.ExitError{Code: exitDiverged, Msg: "diverged: " + strings.Join(diverged, ", ") + " (run cortex sync repair TABLE)"}
	case len(other) > 0:
		return &cli.ExitError{Code: exitNotInSync, Msg: "not in sync: " + strings.Join(other, ", ")}
	}
	return nil
}

func syncStatusCmd(a *app) *cobra.Command {
	var wait time.Duration
	c := &cobra.Command{
		Use:   "status [TABLE]",
		Short: "Show each table's copies, their lag and whether they are in sync",
		Long: `Ask every node of the mesh (each for at most 3 s: a node that does not answer
is shown as unreachable) for its copies of each table (or of TABLE), and show
per table: its scope, the nodes that should hold it, and per node whether it
holds a copy, its log offset, key count, lag (entries of the other copies'
logs it has not applied yet, and for how long) and digest; then a verdict:

  in sync      every node that should hold the table was reached and holds
               an equal copy, with no lag
  degraded     the reachable holders agree, but a node that should hold a
               copy is unreachable (shown with when a holder last heard from
               it), has none yet, or its copy failed
  catching up  a reachable holder is behind
  diverged     no lag but the digests differ: run cortex sync repair TABLE
  unknown      no holder could be reached (or this node does not hold TABLE:
               nodes answer only for the tables the asking node holds)

Without TABLE it shows the tables this node holds. Local tables are listed
as not replicated. A node the mesh forgot (cortex node forget) is neither
expected nor waited for: a list scope that still names it shows it under
"forgotten".

Exit status: 0 only when every table shown is in sync; 6 when one is
degraded, catching up or unknown; 7 when one diverged (so that
"cortex sync status && deploy" works). --wait DURATION asks again until
every table is in sync or the time is up, and shows the last answer.

With --json prints {"tables":[{"table","scope","replicated","desired":[...],
"replicas":[{"node","desired","has_copy","reachable","log_id","offset","keys",
"digest","lag","lag_s","last_contact_ms","failed","damage","tombstones",
"floor"}],"state":"in_sync|degraded|catching_up|diverged|unknown",
"in_sync":bool,"note","forgotten":[nodes],"purge":{"grace_s","horizon",
"horizon_at","next","limited_by","blocked":[...]}}]}: tombstones is the copy's
count of deleted keys not yet purged, floor the version below which it purged
them; forgotten the nodes of the scope forgotten by cortex node forget; purge
(replicated tables) is the table's purge horizon and what holds it back.`,
		Example: `  cortex sync status
  cortex sync status fruit --json | jq '.tables[0].state'
  cortex sync status --wait 30s && echo every copy agrees`,
		Args: named(cobra.MaximumNArgs(1), tableArg),
		RunE: func(cmd *cobra.Command, args []string) error {
			table := ""
			if len(args) == 1 {
				table = args[0]
			}
			st, err := call(a, func(ctx context.Context, c *api.Client) (repair.Status, error) {
				return c.SyncStatus(ctx, table)
			})
			for deadline := time.Now().Add(wait); err == nil && notInSync(st) != nil && time.Now().Before(deadline); {
				time.Sleep(min(250*time.Millisecond, time.Until(deadline))) // poll interval of --wait
				st, err = call(a, func(ctx context.Context, c *api.Client) (repair.Status, error) {
					return c.SyncStatus(ctx, table)
				})
			}
			if err != nil {
				return err
			}
			if a.json {
				if err := cli.WriteJSON(a.stdout, st); err != nil {
					return err
				}
				return notInSync(st)
			}
			for i, ts := range st.Tables {
				if i > 0 {
					fmt.Fprintln(a.stdout)
				}
				state := stateWords[ts.State]
				if !ts.Replicated {
					state = "not replicated (scope local)"
				}
				fmt.Fprintf(a.stdout, "%s  scope %s  should hold: %s  %s\n", ts.Table, ts.Scope, strings.Join(ts.Desired, ","), state)
				if ts.Note != "" {
					fmt.Fprintf(a.stdout, "  %s\n", ts.Note)
					continue
				}
				cols := cli.NewColumns(a.stdout, "  NODE", "COPY", "OFFSET", "KEYS", "TOMBSTONES", "LAG", "DIGEST")
				for _, r := range ts.Replicas {
					copyWord, offset, keys, tombs, lag := "no", "-", "-", "-", "-"
					switch {
					case !r.Reachable && r.LastContactMS > 0:
						copyWord = "unreachable (last heard " + time.Since(time.UnixMilli(r.LastContactMS)).Round(time.Second).String() + " ago)"
					case !r.Reachable:
						copyWord = "unreachable"
					case r.Draining:
						copyWord = "handing off"
					case r.HasCopy:
						copyWord = "yes"
					}
					if r.HasCopy {
						offset, keys, tombs, lag = fmt.Sprint(r.Offset), fmt.Sprint(r.Keys), fmt.Sprint(r.Tombstones), fmt.Sprint(r.Lag)
						if r.Rebuilding {
							copyWord = "rebuilding"
						}
						if r.Lag > 0 {
							lag += fmt.Sprintf(" (%.1fs)", r.LagS)
						}
					}
					cols.Row("  "+r.Node, copyWord, offset, keys, tombs, lag, r.Digest)
				}
				if err := cols.Flush(); err != nil {
					return err
				}
				for _, r := range ts.Replicas {
					if r.Failed != "" {
						fmt.Fprintf(a.stdout, "  %s: %s\n", r.Node, r.Failed)
					}
					if r.Damage != "" {
						fmt.Fprintf(a.stdout, "  %s: log damage: %s\n", r.Node, r.Damage)
					}
				}
				if len(ts.Forgotten) > 0 {
					fmt.Fprintf(a.stdout, "  forgotten (named in the scope, not expected): %s\n", strings.Join(ts.Forgotten, ", "))
				}
				if p := ts.Purge; p != nil {
					h := "none yet"
					if p.Horizon != 0 {
						h = p.HorizonAt
					}
					fmt.Fprintf(a.stdout, "  purge horizon: %s (tombstone grace %s)\n", h, time.Duration(p.GraceS*float64(time.Second)))
					for _, b := range p.Blocked {
						fmt.Fprintf(a.stdout, "  purge blocked: %s\n", b)
					}
					if len(p.Blocked) == 0 && p.LimitedBy != "" {
						fmt.Fprintf(a.stdout, "  purge held by: %s\n", p.LimitedBy)
					}
				}
			}
			return notInSync(st)
		},
	}
	c.Flags().DurationVar(&wait, "wait", 0, "ask again until every table is in sync or this much time has passed")
	return c
}

func syncRepairCmd(a *app) *cobra.Command {
	var dryRun bool
	c := &cobra.Command{
		Use:   "repair TABLE",
		Short: "Make every reachable copy of a table equal, losing no write",
		Long: `Repair TABLE from the node cortex talks to (it must hold TABLE). The holder
with the highest log offset is the source; the bucket digests of every other
reachable holder are compared with it (the key space is split into 256
buckets), and only differing buckets move: the source's records go to the
holder and the holder's records back to the source, each merged by
last-write-wins, so no write anywhere is lost and no copy is replaced
wholesale. It repeats until every reachable holder's digest is equal (at most
3 rounds while writes go on), then prints per node what moved.

A holder whose copy was lost (its table directory deleted while it was
stopped) gets a new copy on its own when it starts; repair fills it too.

--dry-run shows the differing buckets and how much would move, changing
nothing. With --json prints {"table","dry_run","source","holders",
"unreachable","rounds","moved":[{"node","buckets","keys","bytes","seconds"}],
"in_sync"}. Exits 1 if the copies are not in sync at the end.`,
		Example: `  cortex sync repair fruit --dry-run
  cortex sync repair fruit`,
		Args: named(cobra.ExactArgs(1), tableArg),
		RunE: func(cmd *cobra.Command, args []string) error {
			stop := a.spinner("repairing " + args[0])
			rep, err := call(a, func(ctx context.Context, c *api.Client) (repair.Report, error) {
				return c.SyncRepair(ctx, args[0], dryRun)
			})
			stop()
			if err != nil {
				return err
			}
			if a.json {
				if err := cli.WriteJSON(a.stdout, rep); err != nil {
					return err
				}
			} else {
				verb := "moved"
				if rep.DryRun {
					verb = "would move"
				}
				fmt.Fprintf(a.stdout, "%s: source %s, holders %s", rep.Table, rep.Source, strings.Join(rep.Holders, ","))
				if len(rep.Unreachable) > 0 {
					fmt.Fprintf(a.stdout, ", unreachable %s", strings.Join(rep.Unreachable, ","))
				}
				fmt.Fprintf(a.stdout, ", %d round(s)\n", rep.Rounds)
				cols := cli.NewColumns(a.stdout, "  NODE", "BUCKETS", "KEYS "+strings.ToUpper(verb), "BYTES", "SECONDS")
				for _, m := range rep.Moved {
					cols.Row("  "+m.Node, fmt.Sprint(m.Buckets), fmt.Sprint(m.Keys), fmt.Sprint(m.Bytes), fmt.Sprintf("%.3f", m.Seconds))
				}
				if err := cols.Flush(); err != nil {
					return err
				}
				if rep.InSync {
					fmt.Fprintln(a.stdout, "in sync")
				}
			}
			if !rep.InSync && !rep.DryRun {
				return fmt.Errorf("%s is not in sync after %d rounds: writes may be going on; run the repair again", rep.Table, rep.Rounds)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&dryRun, "dry-run", false, "show what differs and would move; change nothing")
	return c
}
