package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cortex-mesh/cortex/backup"
	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/tables"
)

// Backup over a real socket, restore into another node, a merge that keeps
// the newer version, a damaged file refused with nothing changed.
func TestBackupRestoreAPI(t *testing.T) {
	ctx := context.Background()
	_, src := newTestServer(t, tables.Options{})
	dstStore, dst := newTestServer(t, tables.Options{})
	if _, err := src.CreateTable(ctx, "fruit", scope.Scope{Local: true}, Overrides{}); err != nil {
		t.Fatal(err)
	}
	for i := range 3000 {
		if _, err := src.Put(ctx, "fruit", fmt.Appendf(nil, "k%04d", i), []byte{byte(i), 0, 0xff}); err != nil {
			t.Fatal(err)
		}
	}
	src.Delete(ctx, "fruit", []byte("k0001"))
	var file bytes.Buffer
	if err := src.Backup(ctx, BackupRequest{}, &file); err != nil {
		t.Fatal(err)
	}
	m, err := backup.Verify(bytes.NewReader(file.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Tables) != 1 || m.Tables[0].Name != "fruit" || m.Tables[0].Records != 3000 || m.Tables[0].AsOf != 3001 {
		t.Fatalf("manifest: %+v", m.Tables)
	}
	req := RestoreRequest{Sections: m.Tables, Size: int64(file.Len())}

	// Damaged: refused, and no table appears.
	bad := bytes.Clone(file.Bytes())
	bad[len(bad)/2] ^= 1
	_, err = dst.Restore(ctx, req, bytes.NewReader(bad))
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != CodeInvalid {
		t.Fatalf("a damaged file: %v", err)
	}
	if _, err := dstStore.Info("fruit"); err == nil {
		t.Fatal("a damaged file created the table")
	}

	// A newer version on the destination survives the merge.
	res, err := dst.Restore(ctx, req, bytes.NewReader(file.Bytes()))
	if err != nil || len(res.Tables) != 1 || res.Tables[0].Applied != 3000 || res.Tables[0].Action != "create" {
		t.Fatalf("restore: %+v, %v", res, err)
	}
	for _, k := range []string{"k0000", "k2999"} {
		a, _ := src.Get(ctx, "fruit", []byte(k))
		b, err := dst.Get(ctx, "fruit", []byte(k))
		if err != nil || !bytes.Equal(a.Value, b.Value) || a.HLC != b.HLC || a.Origin != b.Origin {
			t.Errorf("%s: %+v, want %+v (%v)", k, b, a, err)
		}
	}
	if _, err := dst.Get(ctx, "fruit", []byte("k0001")); err == nil {
		t.Error("the tombstone was not restored")
	}
	if _, err := dst.Put(ctx, "fruit", []byte("k0002"), []byte("newer")); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.Restore(ctx, req, bytes.NewReader(file.Bytes())); !errors.As(err, &ae) || ae.Code != CodeNeedsConfirm {
		t.Fatalf("a merge without confirmation: %v", err)
	}
	req.Confirmed = true
	res, err = dst.Restore(ctx, req, bytes.NewReader(file.Bytes()))
	if err != nil || res.Tables[0].Action != "merge" || res.Tables[0].Applied != 0 {
		t.Fatalf("merge: %+v, %v", res, err)
	}
	if r, _ := dst.Get(ctx, "fruit", []byte("k0002")); string(r.Value) != "newer" {
		t.Errorf("the merge replaced a newer version: %q", r.Value)
	}

	// --as: a new table with a new id.
	req.As = "fruit_old"
	res, err = dst.Restore(ctx, req, bytes.NewReader(file.Bytes()))
	if err != nil || res.Tables[0].To != "fruit_old" || res.Tables[0].ID == m.Tables[0].ID || res.Tables[0].Applied != 3000 {
		t.Fatalf("--as: %+v, %v", res, err)
	}

	// System tables are never backed up.
	if err := src.Backup(ctx, BackupRequest{Tables: []string{scope.ACLsTable}}, &bytes.Buffer{}); !errors.As(err, &ae) || ae.Code != CodeInvalid {
		t.Errorf("a backup of a system table: %v", err)
	}
}

// Spools left by interrupted restores are removed at start, each logged with
// its size; other files, and a "spool" that is not a regular file, stay.
func TestRemoveRestoreSpools(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, size int) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, bytes.Repeat([]byte{0xc7}, size), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	big := write("restore-1234.tmp", 3<<20)
	small := write("restore-.tmp", 0)
	keep := []string{write("restore-1234.tmp.bak", 10), write("NODE", 5), write("xrestore-1.tmp", 1)}
	if err := os.Mkdir(filepath.Join(dir, "restore-dir.tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(keep[1], filepath.Join(dir, "restore-link.tmp")); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	n, err := RemoveRestoreSpools(dir, slog.New(slog.NewTextHandler(&logs, nil)))
	if n != 2 {
		t.Errorf("removed %d spools, want 2", n)
	}
	if err == nil || !strings.Contains(err.Error(), "restore-dir.tmp is not a regular file") ||
		!strings.Contains(err.Error(), "restore-link.tmp is not a regular file") {
		t.Errorf("err = %v, want the directory and the link named", err)
	}
	for _, p := range []string{big, small} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: still there (%v)", p, err)
		}
	}
	for _, p := range append(keep, filepath.Join(dir, "restore-dir.tmp"), filepath.Join(dir, "restore-link.tmp")) {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
	if got := logs.String(); !strings.Contains(got, "file="+big+" bytes=3145728") || !strings.Contains(got, "bytes=0") {
		t.Errorf("log does not name each spool with its size:\n%s", got)
	}
	// Nothing left: nothing to do.
	if n, err := RemoveRestoreSpools(t.TempDir(), slog.New(slog.NewTextHandler(&logs, nil))); n != 0 || err != nil {
		t.Errorf("empty directory: %d, %v", n, err)
	}
}
