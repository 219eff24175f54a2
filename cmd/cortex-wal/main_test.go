package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/store"
	"github.com/cortex-mesh/cortex/tables"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// node is a data directory built with the real storage code.
type node struct {
	dir   string
	users scope.TableInfo // the user table; its copy holds `writes` entries
}

const writes = 60

// weirdKeys are written (and dumped) among plain ones.
var weirdKeys = []string{"with space", "tab\there", "\x00\xffbin", `quo"te`}

// buildNode makes a data directory as cortexd would leave it after a clean
// stop: LOCK (with a pid, unlocked), NODE, the system tables and a table
// "users" with small segments (several segment files), writes puts and a
// few deletes, then closes everything.
func buildNode(t *testing.T) *node {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "LOCK"), []byte("4242\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "NODE"), []byte("home\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(store.Options{Dir: dir, Node: "home", Logger: quiet(),
		Table: tables.Options{SegmentSize: 1024, CheckpointEvery: -1, Logger: quiet()}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	info, err := s.CreateTable(ctx, "users", scope.Scope{Local: true})
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := s.Table("users")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < writes; i++ {
		key := []byte(fmt.Sprintf("user/%03d", i))
		if i < len(weirdKeys) {
			key = []byte(weirdKeys[i])
		}
		if i%10 == 9 {
			_, err = tbl.Delete(ctx, []byte(fmt.Sprintf("user/%03d", i-1)))
		} else {
			_, err = tbl.Put(ctx, key, []byte(fmt.Sprintf("value %d %s", i, strings.Repeat("x", i))))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return &node{dir: dir, users: info}
}

func (n *node) usersDir() string { return filepath.Join(n.dir, "tables", n.users.Dir()) }

func (n *node) segments(t *testing.T) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(n.usersDir(), "wal", strings.Repeat("[0-9]", 20)))
	if err != nil || len(paths) < 3 {
		t.Fatalf("want several segment files, got %v (%v)", paths, err)
	}
	return paths
}

// dirState describes every file and directory under dir: name, mode, size,
// modification time and the sha256 of its content.
func dirState(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		fmt.Fprintf(&b, "%s %v %d %d", rel, fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " %x", sha256.Sum256(data))
		}
		b.WriteByte('\n')
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// unchanged runs fn and fails if dir changed in any way.
func unchanged(t *testing.T, dir string, fn func()) {
	t.Helper()
	before := dirState(t, dir)
	fn()
	if after := dirState(t, dir); after != before {
		t.Fatalf("the data directory changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

type result struct {
	code           int
	stdout, stderr string
}

func runCmd(args ...string) result {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return result{code, out.String(), errb.String()}
}

// want runs a command and checks its exit code and that stderr is either
// empty or lines of warnings with at most one final "error: " line.
func want(t *testing.T, code int, args ...string) result {
	t.Helper()
	r := runCmd(args...)
	if r.code != code {
		t.Fatalf("cortex-wal %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, code, r.stdout, r.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	for i, l := range lines {
		switch {
		case r.stderr == "":
		case strings.HasPrefix(l, "warning: "):
		case strings.HasPrefix(l, "error: ") && i == len(lines)-1 && code != 0:
		default:
			t.Fatalf("cortex-wal %s: stderr line %q is neither a warning nor a final error line:\n%s", strings.Join(args, " "), l, r.stderr)
		}
	}
	if code != 0 && !strings.Contains(r.stderr, "error: ") {
		t.Fatalf("cortex-wal %s: exit %d without an error line: %q", strings.Join(args, " "), code, r.stderr)
	}
	return r
}

// norm collapses the padding of aligned columns to two spaces.
func norm(s string) string { return regexp.MustCompile(`  +`).ReplaceAllString(s, "  ") }

func contains(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Fatalf("%s does not contain %q:\n%s", what, sub, s)
		}
	}
}

func TestReadOnlyOnCleanNode(t *testing.T) {
	n := buildNode(t)
	segs := n.segments(t)
	unchanged(t, n.dir, func() {
		// ls
		r := want(t, 0, "ls", n.dir)
		if r.stderr != "" {
			t.Fatalf("ls warned on a clean node: %s", r.stderr)
		}
		contains(t, "ls", r.stdout, "TABLE", "LOG_ID", "CHECKPOINT", "cortex_meta", "cortex_acls", "cortex_identities")
		var usersRow []string
		for _, l := range strings.Split(r.stdout, "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[0] == "users" {
				usersRow = f
			}
		}
		// TABLE ID LOG_ID FIRST LAST ENTRIES SEGMENTS BYTES CHECKPOINT STATUS
		if len(usersRow) != 10 || usersRow[1] != n.users.ID || usersRow[3] != "1" || usersRow[4] != strconv.Itoa(writes) ||
			usersRow[5] != strconv.Itoa(writes) || usersRow[6] != strconv.Itoa(len(segs)) || usersRow[8] != strconv.Itoa(writes) || usersRow[9] != "ok" {
			t.Fatalf("ls row for users: %q\n%s", usersRow, r.stdout)
		}
		logID, err := os.ReadFile(filepath.Join(n.usersDir(), "wal", "LOG_ID"))
		if err != nil || usersRow[2] != strings.TrimSpace(string(logID)) {
			t.Fatalf("ls log id %s, LOG_ID %q", usersRow[2], logID)
		}

		r = want(t, 0, "ls", n.dir, "--segments")
		contains(t, "ls --segments", r.stdout, "SEGMENT", filepath.Join("tables", n.users.Dir(), "wal", filepath.Base(segs[1])))

		r = want(t, 0, "ls", "--json", n.dir)
		var ls lsJSON
		if err := json.Unmarshal([]byte(r.stdout), &ls); err != nil {
			t.Fatalf("ls --json: %v\n%s", err, r.stdout)
		}
		if len(ls.Tables) != 4 || ls.Tables[0].Table != "cortex_meta" || ls.Live {
			t.Fatalf("ls --json tables: %+v", ls.Tables)
		}
		u := ls.Tables[3]
		if u.Dir != n.users.Dir() || u.First != 1 || u.Last != writes || u.Entries != writes || u.Segments != len(segs) ||
			u.Checkpoint == nil || *u.Checkpoint != writes || u.Status != "ok" || len(u.SegmentFiles) != len(segs) {
			t.Fatalf("ls --json users: %+v", u)
		}
		total := 0
		for i, s := range u.SegmentFiles {
			if s.Path != segs[i] {
				t.Fatalf("segment file %d: %s, want %s", i, s.Path, segs[i])
			}
			total += s.Entries
		}
		if total != writes {
			t.Fatalf("segment files hold %d entries, want %d", total, writes)
		}

		// dump
		r = want(t, 0, "dump", n.dir, "users")
		lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
		if len(lines) != writes {
			t.Fatalf("dump printed %d lines, want %d:\n%s", len(lines), writes, r.stdout)
		}
		line := regexp.MustCompile(`^(\d+) \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/\d+ home (put|del) (.+) (\d+|-)$`)
		for i, l := range lines {
			m := line.FindStringSubmatch(l)
			if m == nil || m[1] != strconv.Itoa(i+1) {
				t.Fatalf("dump line %d: %q", i+1, l)
			}
		}
		if lines[0] != strings.Join(strings.Fields(lines[0])[:4], " ")+` "with space" 8` {
			t.Fatalf("dump of a key with a space: %q", lines[0])
		}
		contains(t, "dump", r.stdout, ` "tab\there" `, ` "\x00\xffbin" `, ` "quo\"te" `, " del user/008 -\n", " put user/010 ")

		r = want(t, 0, "dump", n.dir, "users", "--from", "10", "--limit", "3", "--values")
		lines = strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "10 ") || !strings.HasSuffix(lines[0], " del user/008 - -") ||
			!strings.HasPrefix(lines[2], "12 ") || !strings.HasSuffix(lines[2], ` put user/011 20 "value 11 xxxxxxxxxxx"`) {
			t.Fatalf("dump --from 10 --limit 3 --values:\n%s", r.stdout)
		}

		r = want(t, 0, "dump", n.dir, n.users.Dir(), "--json", "--values", "--limit", "4")
		var entries []map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &entries); err != nil || len(entries) != 4 {
			t.Fatalf("dump --json: %v\n%s", err, r.stdout)
		}
		if strings.Count(r.stdout, "\n") != 6 {
			t.Fatalf("dump --json is not one entry a line:\n%s", r.stdout)
		}
		e := entries[2]
		if e["offset"] != 3.0 || e["origin"] != "home" || e["op"] != "put" || e["key"] != nil || e["key_base64"] != "AP9iaW4=" ||
			e["value"] != "value 2 xx" || e["value_size"] != 10.0 || e["counter"] == nil || e["hlc"] == nil {
			t.Fatalf("dump --json entry 3: %v", e)
		}
		if tm, _ := e["time"].(string); !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`).MatchString(tm) {
			t.Fatalf("dump --json time %q", tm)
		}
		r = want(t, 0, "dump", n.dir, "users", "--json", "--from", strconv.Itoa(writes+1))
		if r.stdout != "[]\n" || !strings.Contains(r.stderr, "warning: ") {
			t.Fatalf("dump past the end: %q %q", r.stdout, r.stderr)
		}

		// verify
		r = want(t, 0, "verify", n.dir)
		if c := strings.Count(norm(r.stdout), "ok  "); !strings.HasPrefix(r.stdout, "ok  ") || c != 4 {
			t.Fatalf("verify:\n%s", r.stdout)
		}
		contains(t, "verify", norm(r.stdout), fmt.Sprintf("ok  %s  offsets 1-%d (%d entries, %d segments), checkpoint %d", n.users.Dir(), writes, writes, len(segs), writes))
		r = want(t, 0, "verify", n.dir, "users", "--json")
		var v verifyJSON
		if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || !v.OK || len(v.Tables) != 1 || !v.Tables[0].OK || v.Tables[0].Last != writes {
			t.Fatalf("verify --json: %v %s", err, r.stdout)
		}
	})
}

// flipInFrame flips a byte inside the k-th frame's entry of a segment file
// and returns the byte position of that frame.
func flipInFrame(t *testing.T, path string, k int) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pos := 0
	for i := 0; ; i++ {
		size, n := binary.Uvarint(b[pos:])
		if n <= 0 {
			t.Fatalf("%s has fewer than %d frames", path, k+1)
		}
		if i == k {
			b[pos+n+int(size)-6] ^= 0x40 // in the value, before the crc
			break
		}
		pos += n + int(size)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return int64(pos)
}

func segFirst(t *testing.T, path string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimLeft(filepath.Base(path), "0"))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCorruptMiddleEntry(t *testing.T) {
	n := buildNode(t)
	segs := n.segments(t)
	seg := segs[1]
	pos := flipInFrame(t, seg, 1)
	bad := segFirst(t, seg) + 1
	unchanged(t, n.dir, func() {
		r := want(t, 1, "verify", n.dir)
		wantMsg := fmt.Sprintf("bad entry at offset %d in %s (byte %d): bad wal entry: checksum mismatch", bad, seg, pos)
		contains(t, "verify stdout", norm(r.stdout), "FAIL  "+n.users.Dir()+"  "+wantMsg, "ok  cortex_meta-system  ")
		contains(t, "verify stderr", r.stderr, "error: verify failed for 1 of 4 table copies: "+n.users.Dir()+": "+wantMsg)
		if strings.Count(r.stderr, "\n") != 1 {
			t.Fatalf("verify stderr is not one line: %q", r.stderr)
		}
		r = want(t, 1, "verify", n.dir, "users", "--json")
		var v verifyJSON
		if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.OK || v.Tables[0].Problem == nil ||
			v.Tables[0].Problem.Offset != uint64(bad) || v.Tables[0].Problem.Segment != seg || v.Tables[0].Problem.Torn {
			t.Fatalf("verify --json: %v %s", err, r.stdout)
		}

		// ls lists it (exit 0) with a warning; dump prints up to it, then fails.
		r = want(t, 0, "ls", n.dir)
		contains(t, "ls", r.stdout, fmt.Sprintf("corrupt at %d", bad))
		contains(t, "ls stderr", r.stderr, "warning: "+n.users.Dir()+": "+wantMsg)
		r = want(t, 1, "dump", n.dir, "users")
		if got := strings.Count(r.stdout, "\n"); got != bad-1 {
			t.Fatalf("dump printed %d entries before the bad one at %d", got, bad)
		}
		contains(t, "dump stderr", r.stderr, "error: "+n.users.Dir()+": "+wantMsg)
		r = want(t, 1, "dump", n.dir, "users", "--json")
		var entries []map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &entries); err != nil || len(entries) != bad-1 {
			t.Fatalf("dump --json before a bad entry is not a complete array of %d: %v\n%s", bad-1, err, r.stdout)
		}
		// From a later segment on, nothing bad is read.
		want(t, 0, "dump", n.dir, "users", "--from", strconv.Itoa(segFirst(t, segs[2])))
	})
}

func TestTornTail(t *testing.T) {
	n := buildNode(t)
	last := tearTail(t, n)
	unchanged(t, n.dir, func() {
		r := want(t, 1, "verify", n.dir, "users")
		contains(t, "verify", norm(r.stdout), fmt.Sprintf("FAIL  %s  torn tail at offset %d (cortexd cuts it at its next start)", n.users.Dir(), writes+1), last)
		contains(t, "verify stderr", r.stderr, fmt.Sprintf("torn tail at offset %d (cortexd cuts it at its next start)", writes+1))
		r = want(t, 0, "ls", n.dir)
		contains(t, "ls", r.stdout, fmt.Sprintf("torn_tail at %d", writes+1))
		contains(t, "ls stderr", r.stderr, fmt.Sprintf("warning: %s: torn tail at offset %d in %s", n.users.Dir(), writes+1, last), "cortexd cuts it at its next start")
		r = want(t, 0, "dump", n.dir, "users")
		if got := strings.Count(r.stdout, "\n"); got != writes {
			t.Fatalf("dump printed %d entries, want %d", got, writes)
		}
		contains(t, "dump stderr", r.stderr, fmt.Sprintf("warning: %s: torn tail at offset %d", n.users.Dir(), writes+1))
	})

	// cortexd's recovery cuts exactly that entry; verify then passes.
	tbl, err := tables.Open(n.usersDir(), tables.Options{Name: "users", Node: "home", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	tbl.Close()
	r := want(t, 0, "verify", n.dir, "users")
	contains(t, "verify after repair", r.stdout, fmt.Sprintf("offsets 1-%d", writes))
}

// tearTail appends the first half of a copy of the last entry to the last
// segment of users, as a crash in the middle of a write leaves it, and
// returns the segment's path.
func tearTail(t *testing.T, n *node) string {
	t.Helper()
	segs := n.segments(t)
	last := segs[len(segs)-1]
	b, err := os.ReadFile(last)
	if err != nil {
		t.Fatal(err)
	}
	pos := 0
	var frame []byte
	for pos < len(b) {
		size, k := binary.Uvarint(b[pos:])
		frame = b[pos : pos+k+int(size)]
		pos += k + int(size)
	}
	b = append(b, frame[:len(frame)/2]...)
	if err := os.WriteFile(last, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return last
}

// holdLock takes the data directory's lock as cortexd does.
func holdLock(t *testing.T, dir string) (release func()) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	return func() { f.Close() }
}

func TestRunningDaemon(t *testing.T) {
	n := buildNode(t)
	tearTail(t, n) // an append in progress
	release := holdLock(t, n.dir)
	unchanged(t, n.dir, func() {
		for _, args := range [][]string{{"ls", n.dir}, {"dump", n.dir, "users"}, {"verify", n.dir}} {
			r := want(t, 1, args...)
			if r.stdout != "" {
				t.Fatalf("%v printed %q while refusing", args, r.stdout)
			}
			contains(t, fmt.Sprint(args), r.stderr, "error: data directory "+n.dir+" is in use by a running cortexd (pid 4242)", "--live")
		}
		r := want(t, 0, "--live", "verify", n.dir)
		contains(t, "verify --live", norm(r.stdout), fmt.Sprintf("ok  %s  offsets 1-%d", n.users.Dir(), writes), fmt.Sprintf("note  %s  torn tail (in progress) at offset %d", n.users.Dir(), writes+1))
		contains(t, "verify --live stderr", r.stderr, "warning: data directory", "reading a live log")
		r = want(t, 0, "ls", n.dir, "--live", "--json")
		var ls lsJSON
		if err := json.Unmarshal([]byte(r.stdout), &ls); err != nil || !ls.Live || ls.Tables[3].Status != statusInProgress {
			t.Fatalf("ls --live --json: %v %s", err, r.stdout)
		}
		contains(t, "ls --live stderr", r.stderr, "torn tail (in progress)")
		r = want(t, 0, "dump", n.dir, "users", "--live")
		contains(t, "dump --live stderr", r.stderr, "torn tail (in progress)")
	})
	release()
	// Once cortexd is gone the same tail is a torn tail.
	want(t, 1, "verify", n.dir)
	// The shared lock cortex-wal takes while it reads is released when the
	// command ends: cortexd can take its lock again.
	holdLock(t, n.dir)()
}

func TestTableNames(t *testing.T) {
	n := buildNode(t)
	// A leftover copy of an older table of the same name.
	old, err := tables.Open(filepath.Join(n.dir, "tables", "users-00000000deadbeef"), tables.Options{Name: "users", Node: "home", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	old.Put(context.Background(), []byte("k"), []byte("v"))
	old.Close()
	unchanged(t, n.dir, func() {
		r := want(t, 1, "dump", n.dir, "users")
		contains(t, "dump of an ambiguous name", r.stderr, `2 copies of table "users"`, "users-00000000deadbeef, "+n.users.Dir(), "name one by its directory")
		r = want(t, 0, "dump", n.dir, "users-00000000deadbeef")
		if !strings.HasPrefix(r.stdout, "1 ") || strings.Count(r.stdout, "\n") != 1 {
			t.Fatalf("dump of the old copy: %q", r.stdout)
		}
		want(t, 1, "verify", n.dir, "users")
		want(t, 0, "verify", n.dir, n.users.Dir())
		r = want(t, 1, "dump", n.dir, "nope")
		contains(t, "dump of an unknown table", r.stderr, `no copy of table "nope"`, "cortex-wal ls")
		want(t, 0, "dump", n.dir, "cortex_meta")
	})
}

// A log truncated behind a checkpoint; and a checkpoint of another log.
func TestCheckpoints(t *testing.T) {
	n := buildNode(t)
	dir := filepath.Join(n.dir, "tables", "logs-0123456789abcdef")
	tbl, err := tables.Open(dir, tables.Options{Name: "logs", Node: "home", Logger: quiet(), CheckpointEvery: 10, Retention: 5})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if _, err := tbl.Put(context.Background(), []byte(fmt.Sprint("k", i)), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if err := tbl.Close(); err != nil {
		t.Fatal(err)
	}
	unchanged(t, n.dir, func() {
		r := want(t, 0, "ls", n.dir, "--json")
		var ls lsJSON
		if err := json.Unmarshal([]byte(r.stdout), &ls); err != nil {
			t.Fatal(err)
		}
		var lt lsTableJSON
		for _, x := range ls.Tables {
			if x.Table == "logs" {
				lt = x
			}
		}
		if lt.First <= 1 || lt.Last != 50 || lt.Checkpoint == nil || *lt.Checkpoint != 50 {
			t.Fatalf("ls of a truncated log: %+v", lt)
		}
		r = want(t, 1, "dump", n.dir, "logs", "--from", "1")
		contains(t, "dump before the first offset", r.stderr, fmt.Sprintf("is before the first offset the log holds, %d", lt.First), "checkpoint-")
		r = want(t, 0, "dump", n.dir, "logs")
		if !strings.HasPrefix(r.stdout, fmt.Sprintf("%d ", lt.First)) {
			t.Fatalf("dump of a truncated log starts with %q", r.stdout[:20])
		}
		want(t, 0, "verify", n.dir, "logs")
	})

	// The log id changed under the checkpoint (another copy's log moved in).
	if err := os.WriteFile(filepath.Join(dir, "wal", "LOG_ID"), []byte(strings.Repeat("ab", 16)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := want(t, 1, "verify", n.dir, "logs")
	contains(t, "verify of a foreign checkpoint", r.stdout, "belongs to log", "not to this copy's log "+strings.Repeat("ab", 16))
	// A damaged checkpoint.
	ckpt, _, _ := tables.NewestCheckpoint(dir)
	b, _ := os.ReadFile(ckpt)
	b[len(b)/2] ^= 1
	os.WriteFile(ckpt, b, 0o600)
	r = want(t, 1, "verify", n.dir, "logs")
	contains(t, "verify of a damaged checkpoint", r.stdout, "checkpoint "+ckpt, "checksum mismatch")
	// No checkpoint at all while the log starts after 1.
	os.Remove(ckpt)
	r = want(t, 1, "verify", n.dir, "logs")
	contains(t, "verify without a checkpoint", r.stdout, "there is no checkpoint: entries 1-")
}

func TestUsageAndHelp(t *testing.T) {
	n := buildNode(t)
	for _, args := range [][]string{
		{},
		{"nope"},
		{"lss", n.dir},
		{"ls"},
		{"ls", n.dir, "extra"},
		{"ls", n.dir, "--bogus"},
		{"dump", n.dir},
		{"dump", n.dir, "users", "--limit", "-1"},
		{"dump", n.dir, "users", "--from", "x"},
		{"verify"},
		{"verify", n.dir, "users", "extra"},
		{"help", "nope"},
	} {
		r := want(t, exitUsage, args...)
		if strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "error: ") {
			t.Fatalf("%v: stderr %q", args, r.stderr)
		}
	}
	contains(t, "lss", runCmd("lss", n.dir).stderr, `did you mean "ls"?`)
	// The arguments come from cobra's check and the Use line, flags left out.
	if r := runCmd("dump", n.dir); r.stderr != "error: missing TABLE: usage: cortex-wal dump DATA_DIR TABLE [--from N] [--limit N] [--json] [--values] (see: cortex-wal dump --help)\n" {
		t.Errorf("dump DATA_DIR: %q", r.stderr)
	}
	contains(t, "verify", runCmd("verify").stderr, "error: missing DATA_DIR: usage: cortex-wal verify DATA_DIR [TABLE] [--json]")
	contains(t, "verify extra", runCmd("verify", n.dir, "users", "extra").stderr, `error: unexpected argument "extra"`)
	contains(t, "vers", runCmd("vers").stderr, `did you mean "version"?`)
	if r := want(t, 0, "dump", "--help"); strings.Contains(r.stdout, "true|false") || !strings.Contains(r.stdout, "      --json ") {
		t.Errorf("dump --help shows bool flags with a value:\n%s", r.stdout)
	}
	// --version and version: the same line on stdout.
	v := want(t, 0, "--version")
	if !regexp.MustCompile(`^cortex-wal \S+ \(commit \S+, go[0-9.]+\S*\)\n$`).MatchString(v.stdout) || v.stderr != "" {
		t.Errorf("--version: %q, %q", v.stdout, v.stderr)
	}
	if r := want(t, 0, "version"); r.stdout != v.stdout {
		t.Errorf("version %q, --version %q", r.stdout, v.stdout)
	}
	for _, args := range [][]string{{"--help"}, {"ls", "--help"}, {"dump", "--help"}, {"verify", "--help"}, {"help", "dump"}} {
		r := want(t, 0, args...)
		contains(t, fmt.Sprint(args), r.stdout, "Examples:", "cortex-wal")
	}
	contains(t, "verify --help", runCmd("verify", "--help").stdout, "torn tail at offset N (cortexd cuts it at its", "--live")
	// Not a data directory, or none at all: errors, not usage.
	want(t, exitError, "ls", filepath.Join(n.dir, "missing"))
	want(t, exitError, "ls", filepath.Join(n.dir, "tables"))
	contains(t, "ls of a file", want(t, exitError, "verify", filepath.Join(n.dir, "NODE")).stderr, "not a directory")
}

// The built binary: exit codes and streams as seen by a script.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "cortex-wal")
	// As the Makefile sets them.
	ldflags := "-X github.com/cortex-mesh/cortex/cmd/internal/cli.version=v9.8.7-1-gabc1234 -X github.com/cortex-mesh/cortex/cmd/internal/cli.commit=abc1234"
	if out, err := exec.Command("go", "build", "-ldflags", ldflags, "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	n := buildNode(t)
	exitCode := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), out.String(), errb.String()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, out.String(), errb.String()
	}
	unchanged(t, n.dir, func() {
		if code, out, _ := exitCode("ls", n.dir); code != 0 || !strings.Contains(out, "users") {
			t.Fatalf("ls: exit %d\n%s", code, out)
		}
		if code, out, _ := exitCode("verify", n.dir); code != 0 || strings.Count(norm(out), "ok  ") != 4 {
			t.Fatalf("verify: exit %d\n%s", code, out)
		}
		if code, _, errs := exitCode("ls"); code != 2 || !strings.HasPrefix(errs, "error: ") {
			t.Fatalf("ls without DATA_DIR: exit %d, %q", code, errs)
		}
		if code, _, errs := exitCode("dump", n.dir); code != 2 || !strings.HasPrefix(errs, "error: missing TABLE: ") {
			t.Fatalf("dump without TABLE: exit %d, %q", code, errs)
		}
		if code, out, _ := exitCode("--version"); code != 0 || out != "cortex-wal 9.8.7-1-gabc1234 (commit abc1234, "+runtime.Version()+")\n" {
			t.Fatalf("--version: exit %d, %q; want the version and commit the build set", code, out)
		}
	})
	flipInFrame(t, n.segments(t)[0], 2)
	if code, _, errs := exitCode("verify", n.dir, "users"); code != 1 || !strings.Contains(errs, "bad entry at offset 3") {
		t.Fatalf("verify of a corrupt log: exit %d, %q", code, errs)
	}
}
