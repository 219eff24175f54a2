package api

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"testing"

	"github.com/cortex-mesh/cortex/backup"
	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
)

// BenchmarkBackupRestore: a backup of one table of CORTEX_BENCH_KEYS keys
// (default 100,000; 100-byte values) streamed over the Unix socket, and a
// restore of that file into a new table (--as), through a real store and
// server. Reports MB/s of file, bytes per key and keys per second.
func BenchmarkBackupRestore(b *testing.B) {
	keys := 100_000
	if s := os.Getenv("CORTEX_BENCH_KEYS"); s != "" {
		var err error
		if keys, err = strconv.Atoi(s); err != nil || keys < 1 {
			b.Fatalf("CORTEX_BENCH_KEYS=%q", s)
		}
	}
	ctx := context.Background()
	st, c := newTestServer(b, tables.Options{NoSync: true})
	if _, err := c.CreateTable(ctx, "t", scope.Scope{Local: true}, Overrides{}); err != nil {
		b.Fatal(err)
	}
	t, err := st.Table("t")
	if err != nil {
		b.Fatal(err)
	}
	value := bytes.Repeat([]byte("v"), 100)
	for i := 0; i < keys; i += 1024 {
		var batch []wal.Entry
		for j := i; j < min(i+1024, keys); j++ {
			batch = append(batch, wal.Entry{Op: wal.OpPut, Key: fmt.Appendf(nil, "key%09d", j), Value: value,
				Version: wal.Version{HLC: st.Clock().Now(), Origin: "home"}})
		}
		if _, err := t.Apply(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	var file bytes.Buffer
	if err := c.Backup(ctx, BackupRequest{Tables: []string{"t"}}, &file); err != nil {
		b.Fatal(err)
	}
	m, err := backup.Verify(bytes.NewReader(file.Bytes()))
	if err != nil {
		b.Fatal(err)
	}
	size := int64(file.Len())

	b.Run(fmt.Sprintf("backup/keys=%d", keys), func(b *testing.B) {
		b.SetBytes(size)
		for range b.N {
			if err := c.Backup(ctx, BackupRequest{Tables: []string{"t"}}, io.Discard); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(size)/float64(keys), "bytes/key")
		b.ReportMetric(float64(keys)*float64(b.N)/b.Elapsed().Seconds(), "keys/s")
	})
	b.Run(fmt.Sprintf("restore/keys=%d", keys), func(b *testing.B) {
		b.SetBytes(size)
		for i := range b.N {
			req := RestoreRequest{Sections: m.Tables, As: fmt.Sprintf("r%d", i), Size: size}
			if _, err := c.Restore(ctx, req, bytes.NewReader(file.Bytes())); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := c.DropTable(ctx, req.As, ""); err != nil { // one copy at a time in memory
				b.Fatal(err)
			}
			b.StartTimer()
		}
		b.ReportMetric(float64(keys)*float64(b.N)/b.Elapsed().Seconds(), "keys/s")
	})
}
