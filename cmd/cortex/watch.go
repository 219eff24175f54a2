package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cortex-mesh/cortex/api"
	"github.com/cortex-mesh/cortex/cmd/internal/cli"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/spf13/cobra"
)

const watchLong = `Print every change to TABLE as this node applies it, one line per change,
in the order the node applies them, until interrupted: Ctrl-C (SIGINT) or
SIGTERM ends it with exit 0. The changes are this node's local writes and
the writes of other nodes it adopts by replication (a remote write that loses
last-write-wins against a newer version already here is not applied, so it
is not shown). It shows the changes applied from the moment it starts;
--prefix keeps only the keys starting with it.

Each line is (fields separated by tabs):
  TIME/COUNTER  ORIGIN  OP  KEY  VALUE
TIME/COUNTER is the change's version (hybrid logical clock: UTC wall time to
the millisecond and a logical counter), ORIGIN the node that made the write,
OP "put" or "del" (a del has no VALUE field). KEY and VALUE are escaped as by
scan: a backslash, tab, newline, carriage return, other control characters
and bytes that are not valid UTF-8 are written as \\, \t, \n, \r and \xHH.

With --json prints one JSON object per line (a stream, not one array):
  {"op","key","value","hlc","hlc_time","origin","offset"}
with key and value as in "get --json" (one that is not valid UTF-8 is null
and its bytes are in "key_base64" or "value_base64"); the value of a del is
null; hlc is the version's timestamp as a decimal string ("hlc_time" the
UTC wall time it encodes), offset the change's offset in this node's log of
the table.

On start it says on stderr from which offset of the node's log it watches;
--from OFFSET starts there instead (say, the offset after the last one
printed, to go on where a watch stopped), if the log still holds it.

A watch reads the node's log of the table, so it never slows writes down: a
watcher that cannot keep up only falls behind. If it falls so far behind
that the log no longer holds its next change (the log keeps --wal-retention
entries behind its newest checkpoint), it ends with an error saying so (exit
1): start it again. A watcher that takes no output for 30 s (a stalled
pipe) is dropped by the node: its connection is closed, and once it reads
again it ends with exit 5.

Over --addr the identity needs read permission on TABLE; the permission is
checked again before every batch of changes, so revoking it ends the watch
(exit 4). Exits 3 if there is no such table, 4 if not allowed, 5 if cortexd
cannot be reached or the connection breaks; the watch also ends (exit 1)
when the table is dropped here or cortexd stops. --timeout bounds only the
start of the watch.`

func watchCmd(a *app) *cobra.Command {
	var prefix string
	var from uint64
	c := &cobra.Command{
		Use:   "watch TABLE",
		Short: "Print every change to a table as this node applies it",
		Long:  watchLong,
		Example: `  cortex watch users
  cortex watch users --prefix al
  cortex watch users --json | jq -r 'select(.op == "del") | .key'
  cortex --addr node1.example.com:7947 --ca certs/ca.crt \
    --cert certs/client-alice.crt --key certs/client-alice.key watch users`,
		Args: named(cobra.ExactArgs(1), tableArg),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.watch(api.WatchRequest{Table: args[0], Prefix: []byte(prefix), From: from})
		},
	}
	c.Flags().StringVar(&prefix, "prefix", "", "only keys starting with this")
	c.Flags().Uint64Var(&from, "from", 0, "start at this `OFFSET` of the node's log of the table (0: the changes from now on)")
	return c
}

// watch prints a table's changes until it is interrupted (nil: exit 0) or
// the stream ends.
func (a *app) watch(req api.WatchRequest) error {
	c, err := a.dial()
	if err != nil {
		return err
	}
	interrupted := a.interrupt
	if interrupted == nil {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		interrupted = ctx
	}
	ctx, cancel := context.WithCancelCause(interrupted)
	defer cancel(nil)
	// --timeout bounds getting the stream started, not the stream.
	var timer *time.Timer
	if a.timeout > 0 {
		timer = time.AfterFunc(a.timeout, func() { cancel(context.DeadlineExceeded) })
		defer timer.Stop()
	}
	started := func(s api.WatchStart) error {
		if timer != nil && !timer.Stop() {
			return context.DeadlineExceeded
		}
		_, err := fmt.Fprintf(a.stderr, "watching %s on %s from offset %d (log %s); stop with Ctrl-C\n", s.Watching, s.Node, s.From, s.LogID)
		return err
	}
	var line []byte
	emit := func(ch api.Change) error {
		line = line[:0]
		if a.json {
			b, err := cli.Marshal(newChangeJSON(ch))
			if err != nil {
				return err
			}
			line = append(line, b...)
		} else {
			line = fmt.Appendf(line, "%s\t%s\t%s\t%s", cli.HLC(uint64(ch.HLC)), escape([]byte(ch.Origin)), ch.Op, escape(ch.Key))
			if ch.Op != "del" {
				line = append(append(line, '\t'), escape(ch.Value)...)
			}
		}
		// One write per change: each line is out as soon as it arrives.
		_, err := a.stdout.Write(append(line, '\n'))
		return err
	}
	err = c.WatchStream(ctx, req, started, emit)
	var ae *api.Error
	switch {
	case interrupted.Err() != nil:
		return nil // Ctrl-C or SIGTERM: the end a watch is made for
	case errors.Is(context.Cause(ctx), context.DeadlineExceeded):
		return context.DeadlineExceeded
	case errors.As(err, &ae) && ae.Code == api.CodeUnavailable:
		return errors.New(ae.Message) // it says why: cortexd stops, or the copy closed
	}
	return err
}

// changeJSON is one change as watch --json prints it: the fields of get
// --json with the operation and the offset in the node's log.
type changeJSON struct {
	Op          string           `json:"op"`
	Key         *string          `json:"key"`
	KeyBase64   string           `json:"key_base64,omitempty"`
	Value       *string          `json:"value"`
	ValueBase64 string           `json:"value_base64,omitempty"`
	HLC         tables.Timestamp `json:"hlc"`
	HLCTime     string           `json:"hlc_time"`
	Origin      string           `json:"origin"`
	Offset      uint64           `json:"offset"`
}

func newChangeJSON(ch api.Change) changeJSON {
	j := changeJSON{Op: ch.Op, HLC: ch.HLC, HLCTime: ch.HLC.Time(), Origin: ch.Origin, Offset: ch.Offset}
	j.Key, j.KeyBase64 = cli.Text(ch.Key)
	if ch.Op != "del" {
		j.Value, j.ValueBase64 = cli.Text(ch.Value)
	}
	return j
}
