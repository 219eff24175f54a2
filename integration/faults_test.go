package integration

// Faults that used to stop a node or a table for good, with real processes:
// a corrupt older log segment, a full disk, a copy that does not open.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/repair"
)

// segments lists the segment files of a stopped node's log of a table.
func (n *node) segments(table string) []string {
	n.t.Helper()
	des, err := os.ReadDir(filepath.Join(n.copyDir(table), "wal"))
	if err != nil {
		n.t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		if len(de.Name()) == 20 && !strings.Contains(de.Name(), ".") {
			out = append(out, filepath.Join(n.copyDir(table), "wal", de.Name()))
		}
	}
	sort.Strings(out)
	return out
}

// flip4 flips 4 bytes in the middle of a file.
func flip4(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		b[len(b)/2+i] ^= 0xff
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func putBig(t *testing.T, n *node, table string, from, count int) map[string]string {
	t.Helper()
	c := n.client()
	defer c.Close()
	want := map[string]string{}
	for i := from; i < from+count; i++ {
		k, v := fmt.Sprintf("k%04d", i), strings.Repeat(string(rune('a'+i%26)), 32<<10)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err := c.Put(ctx, table, []byte(k), []byte(v))
		cancel()
		if err != nil {
			t.Fatalf("put %s on %s: %v", k, n.name, err)
		}
		want[k] = v
	}
	return want
}

// A corrupt older segment of a stopped node (4 bytes flipped, covered by its
// checkpoint): the node starts, names the file and the offset at ERROR, cuts
// the damage from its log; a peer that needed those entries gets a snapshot
// instead, both converge, and sync status and repair agree.
func TestCorruptOlderSegmentIsContained(t *testing.T) {
	a, b := replMesh2(t)
	a.must("table", "create", "t", "--scope", "all")
	b.waitTableHeld("t", true)
	want := putBig(t, a, "t", 0, 10)
	b.waitValue("t", "k0009", want["k0009"])
	// b is away while a writes more than a segment (4 MiB).
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	for k, v := range putBig(t, a, "t", 10, 150) {
		want[k] = v
	}
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	segs := a.segments("t")
	if len(segs) < 2 {
		t.Fatalf("a's log has %d segments, want 2 or more", len(segs))
	}
	flip4(t, segs[0])
	a.start()
	a.waitLog(`log damage contained.*` + regexpQuote(segs[0]))
	b.start()
	replWaitContents(t, "t", want, a, b)
	ts := a.waitState("t", repair.InSync)
	var damaged bool
	for _, r := range ts.Replicas {
		damaged = damaged || r.Node == "a" && strings.Contains(r.Damage, segs[0])
	}
	if !damaged {
		t.Errorf("a's sync status does not show the damage: %+v", ts.Replicas)
	}
	var rep repair.Report
	if err := json.Unmarshal([]byte(a.must("sync", "repair", "t", "--json")), &rep); err != nil || !rep.InSync {
		t.Fatalf("repair after convergence: %+v %v", rep, err)
	}
	if st := a.syncStatus("t"); st.Tables[0].State != repair.InSync {
		t.Fatalf("sync status after the repair: %+v", st.Tables[0])
	}
}

func regexpQuote(s string) string {
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`\.+*?()|[]{}^$`, c) {
			b.WriteRune('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// A copy that does not open (its log id file is garbage) does not stop the
// node: the other tables serve; calls on that one say why; sync status too.
func TestOneBrokenCopyDoesNotStopTheNode(t *testing.T) {
	n := newNode(t, "home")
	n.start()
	n.must("table", "create", "good")
	n.must("table", "create", "bad")
	n.must("put", "good", "k", "v")
	n.must("put", "bad", "k", "v")
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(n.copyDir("bad"), "wal", "LOG_ID"), []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n.start()
	if got := n.must("get", "good", "k"); strings.TrimSpace(got) != "v" {
		t.Fatalf("good: %q", got)
	}
	r := n.cli("get", "bad", "k")
	if r.code == 0 || !strings.Contains(r.stderr, "failed to open") || !strings.Contains(r.stderr, "malformed log id") {
		t.Fatalf("get on the broken copy: %+v", r)
	}
	n.waitLog(`a table copy failed to open.*table=bad`)
	if st := n.syncStatus("bad"); st.Tables[0].State != repair.Degraded || !strings.Contains(st.Tables[0].Replicas[0].Failed, "malformed log id") {
		t.Fatalf("sync status of the broken copy: %+v", st.Tables[0])
	}
	if st := n.syncStatus("good"); st.Tables[0].State != repair.InSync {
		t.Fatalf("sync status of the good copy: %+v", st.Tables[0])
	}
}

// A full disk: the write that fails says so, reads go on, and once there is
// room again writes resume without a restart and reach the peer; every
// acknowledged write is on both nodes. Needs root (a small tmpfs).
func TestDiskFullResumesWithoutRestart(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the disk-full test mounts a small tmpfs: run as root to include it")
	}
	mnt, err := os.MkdirTemp("", "cx-full-")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (%v: %s)", err, out)
	}
	t.Cleanup(func() {
		exec.Command("umount", "-l", mnt).Run()
		os.Remove(mnt)
	})
	certs := meshCerts(t, "a", "b")
	a := newMeshNode(t, certs, "a")
	for i, arg := range a.args {
		if arg == "--data-dir" {
			a.args[i+1] = filepath.Join(mnt, "data")
			a.dir = a.args[i+1]
		}
	}
	a.start()
	b := newMeshNode(t, certs, "b", a.meshAddr)
	b.start()
	a.waitPeers("b")
	a.must("table", "create", "t", "--scope", "all")
	b.waitTableHeld("t", true)
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, 6<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	c := a.client()
	defer c.Close()
	want := map[string]string{}
	var failed error
	for i := 0; i < 2000 && failed == nil; i++ {
		k, v := fmt.Sprintf("k%04d", i), strings.Repeat("x", 32<<10)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err := c.Put(ctx, "t", []byte(k), []byte(v))
		cancel()
		if err != nil {
			failed = err
		} else {
			want[k] = v
		}
	}
	if failed == nil || !strings.Contains(failed.Error(), "no space left") {
		t.Fatalf("writes until the disk is full: %v", failed)
	}
	if got := a.must("get", "t", "k0000"); !strings.HasPrefix(got, "xxx") {
		t.Fatal("reads stopped with the disk full")
	}
	os.Remove(filler)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := c.Put(ctx, "t", []byte("after"), []byte("room again"))
		cancel()
		if err == nil {
			want["after"] = "room again"
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writes did not resume after the disk had room again: %v\n%s", err, a.logs)
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
	replWaitContents(t, "t", want, a, b)
	if !bytes.Contains([]byte(a.logs.String()), []byte("table writes resume")) {
		t.Errorf("a's log does not say writes resumed:\n%s", a.logs)
	}
}
