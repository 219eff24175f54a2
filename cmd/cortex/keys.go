package main

import (
	"bufio"
	"context"
	"fmt"
	"io"

	"github.com/cortex-mesh/cortex/cmd/internal/cli"

	"github.com/cortex-mesh/cortex/api"
	"github.com/cortex-mesh/cortex/wal"
	"github.com/spf13/cobra"
)

// checkKey rejects an empty key before it is sent.
func checkKey(cmd *cobra.Command, key string) error {
	if key == "" {
		return cli.Usagef(cmd, "KEY is empty: give a key of at least one byte")
	}
	return nil
}

func putCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "put TABLE KEY VALUE",
		Short: "Set a key (VALUE '-' reads stdin)",
		Long: `Set KEY in TABLE to VALUE and wait until the write is durable on this node.

VALUE '-' reads the value from stdin until end of file, as raw bytes: nothing
is added or stripped (echo adds a newline; use printf or echo -n). To store
the one-byte value "-", pipe it in: printf - | cortex put TABLE KEY -.
A KEY or VALUE starting with '-' must follow "--" so it is not read as a flag.

Prints nothing on success (for scripts); with --json prints the version the
write was given: {"table","key","hlc","hlc_time","origin"}. Exits 3 if there is no
such table.`,
		Example: `  cortex put users alice '{"plan":"pro"}'
  cortex put blobs logo.png - < logo.png
  cortex put counters -- -total -5`,
		Args: named(cobra.ExactArgs(3), tableArg),
		RunE: func(cmd *cobra.Command, args []string) error {
			table, key, value := args[0], []byte(args[1]), []byte(args[2])
			if err := checkKey(cmd, args[1]); err != nil {
				return err
			}
			if args[2] == "-" {
				var err error
				if value, err = readValue(a.stdin); err != nil {
					return err
				}
			}
			res, err := call(a, func(ctx context.Context, c *api.Client) (api.WriteResult, error) {
				return c.Put(ctx, table, key, value)
			})
			if err != nil {
				return err
			}
			if a.json {
				return cli.WriteJSON(a.stdout, newWriteResultJSON(table, key, res.HLC, res.Origin))
			}
			return nil
		},
	}
}

// readValue reads a value from stdin, refusing more than any node accepts.
func readValue(r io.Reader) ([]byte, error) {
	if r == nil {
		return []byte{}, nil
	}
	b, err := io.ReadAll(io.LimitReader(r, wal.MaxValueSize+1))
	if err != nil {
		return nil, fmt.Errorf("read the value from stdin: %w", err)
	}
	if len(b) > wal.MaxValueSize {
		return nil, fmt.Errorf("the value on stdin is over %d bytes, more than any node accepts", wal.MaxValueSize)
	}
	return b, nil
}

func getCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "get TABLE KEY",
		Short: "Print a key's value",
		Long: `Print the value of KEY in TABLE to stdout as raw bytes. A newline is added
only when stdout is a terminal and the value does not already end with one,
so "cortex get t k > file" writes exactly the stored bytes. Exits 3 if the
key or the table does not exist.

With --json prints {"table","key","value","hlc","hlc_time","origin"}: key and
value are strings, hlc is the version's hybrid logical clock timestamp
(milliseconds since the Unix epoch << 16 | a counter) as a decimal string
(a JSON number that large would be rounded by jq or JavaScript), hlc_time
the UTC wall time it encodes ("2026-12-02T15:04:05.123Z") and origin the
node that wrote it.
A value (or key) that is not valid UTF-8 is null, and its bytes are in
"value_base64" (or "key_base64"), standard base64 with padding.`,
		Example: `  cortex get users alice
  cortex get blobs logo.png > logo.png
  cortex get users alice --json | jq -r .value`,
		Args: named(cobra.ExactArgs(2), tableArg),
		RunE: func(cmd *cobra.Command, args []string) error {
			table, key := args[0], []byte(args[1])
			if err := checkKey(cmd, args[1]); err != nil {
				return err
			}
			rec, err := call(a, func(ctx context.Context, c *api.Client) (api.Record, error) {
				return c.Get(ctx, table, key)
			})
			if err != nil {
				return err
			}
			if a.json {
				return cli.WriteJSON(a.stdout, newRecordJSON(table, key, rec.Value, rec.HLC, rec.Origin))
			}
			out := rec.Value
			if a.tty && (len(out) == 0 || out[len(out)-1] != '\n') {
				out = append(out, '\n')
			}
			_, err = a.stdout.Write(out)
			return err
		},
	}
}

func delCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "del TABLE KEY",
		Short: "Delete a key",
		Long: `Delete KEY from TABLE and wait until the delete is durable on this node.
Exits 3 if the key or the table does not exist.

Prints nothing on success (for scripts); with --json prints the version the
delete was given: {"table","key","hlc","hlc_time","origin"}.`,
		Example: `  cortex del users alice
  cortex del users bob || echo "bob was not there"`,
		Args: named(cobra.ExactArgs(2), tableArg),
		RunE: func(cmd *cobra.Command, args []string) error {
			table, key := args[0], []byte(args[1])
			if err := checkKey(cmd, args[1]); err != nil {
				return err
			}
			res, err := call(a, func(ctx context.Context, c *api.Client) (api.WriteResult, error) {
				return c.Delete(ctx, table, key)
			})
			if err != nil {
				return err
			}
			if a.json {
				return cli.WriteJSON(a.stdout, newWriteResultJSON(table, key, res.HLC, res.Origin))
			}
			return nil
		},
	}
}

func scanCmd(a *app) *cobra.Command {
	var prefix string
	var limit int
	c := &cobra.Command{
		Use:   "scan TABLE",
		Short: "List keys and values in key order",
		Long: `Print the keys of TABLE in byte order, one "key<TAB>value" line each: those
starting with --prefix, at most --limit of them (0: all). cortex asks the
daemon page by page, so any number of keys can be scanned.

In the lines, a backslash, tab, newline, carriage return, other control
characters and bytes that are not valid UTF-8 are written as \\, \t, \n, \r
and \xHH, so every record is exactly one line; use --json for exact bytes.

With --json prints one array, one record a line:
  [{"key","value","hlc","hlc_time","origin"}, ...]
with the same fields as "get --json" (a key or value that is not valid UTF-8
is null and its bytes are in "key_base64" or "value_base64").
If an error stops the scan, the output ends where it stopped and the exit
code is not 0.`,
		Example: `  cortex scan users
  cortex scan users --prefix al --limit 10
  cortex scan users --json | jq -r '.[].key'`,
		Args: named(cobra.ExactArgs(1), tableArg),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 0 {
				return cli.Usagef(cmd, "--limit %d is negative: give a count, or 0 for all", limit)
			}
			out := bufio.NewWriterSize(a.stdout, 64<<10)
			var emit func(api.Record) error
			var list *cli.JSONList
			if a.json {
				list = cli.NewJSONList(out)
				emit = func(r api.Record) error {
					return list.Add(newRecordJSON("", r.Key, r.Value, r.HLC, r.Origin))
				}
			} else {
				emit = func(r api.Record) error {
					_, err := fmt.Fprintf(out, "%s\t%s\n", escape(r.Key), escape(r.Value))
					return err
				}
			}
			err := scanAll(a, api.ScanRequest{Table: args[0], Prefix: []byte(prefix)}, limit, emit)
			if err == nil && list != nil {
				err = list.Close()
			}
			if ferr := out.Flush(); err == nil {
				err = ferr
			}
			return err
		},
	}
	c.Flags().StringVar(&prefix, "prefix", "", "only keys starting with this")
	c.Flags().IntVar(&limit, "limit", 0, "at most this many records (0: all)")
	return c
}

// scanAll pages through a scan: each page continues after the last key of
// the one before, until the daemon says there is no more or limit records
// (0: no limit) have been emitted.
func scanAll(a *app, req api.ScanRequest, limit int, emit func(api.Record) error) error {
	got := 0
	for {
		if limit > 0 {
			req.Limit = limit - got
		}
		page, err := call(a, func(ctx context.Context, c *api.Client) (api.ScanResult, error) {
			return c.Scan(ctx, req)
		})
		if err != nil {
			return err
		}
		recs := page.Records
		if limit > 0 && len(recs) > limit-got {
			recs = recs[:limit-got]
		}
		for _, r := range recs {
			if err := emit(r); err != nil {
				return err
			}
		}
		got += len(recs)
		if !page.More || limit > 0 && got >= limit {
			return nil
		}
		if len(recs) == 0 {
			return fmt.Errorf("scan %s: cortexd said more records follow but sent none; please report this bug", req.Table)
		}
		req.After = recs[len(recs)-1].Key
	}
}
