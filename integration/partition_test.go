package integration

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/pki"
	"github.com/cortex-mesh/cortex/wal"
)

// netTopo is a small network of its own: one namespace holding a bridge and
// one namespace per node, joined to the bridge by a veth pair, with
// addresses in 198.18.0.0/24 (the benchmarking range). The root namespace's
// interfaces are never touched: the veth pairs are made inside the bridge
// namespace with their other end moved straight into the node's namespace.
type netTopo struct {
	t      *testing.T
	bridge string            // namespace holding br0
	ns     map[string]string // node name -> its namespace
	addr   map[string]string // node name -> its address (no prefix length)
}

// nodeIf is the name of each node's end of its veth pair, in its namespace.
const nodeIf = "eth0"

// ip runs iproute2 and returns its combined output on failure.
func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// newNetTopo builds the network for names (at most 9 nodes), or skips the
// test when this machine does not let us: not root, no iproute2, or no
// permission to make network namespaces. Everything made is deleted in
// t.Cleanup, even on failure; register it before starting any node in it
// so that the nodes (killed by their own cleanups, which run first) are gone
// before their namespaces are.
func newNetTopo(t *testing.T, names ...string) *netTopo {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("partition tests need root to make network namespaces (run as root to include them)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("partition tests need iproute2 (the ip command): " + err.Error())
	}
	b := make([]byte, 3)
	rand.Read(b)
	suffix := hex.EncodeToString(b)
	nt := &netTopo{t: t, bridge: "cxnet-" + suffix, ns: map[string]string{}, addr: map[string]string{}}
	var made []string
	t.Cleanup(func() {
		for i := len(made) - 1; i >= 0; i-- {
			nt.killLeftovers(made[i])
			if err := ip("netns", "del", made[i]); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	if err := ip("netns", "add", nt.bridge); err != nil {
		t.Skipf("cannot make network namespaces here (no permission in a container?): %v", err)
	}
	made = append(made, nt.bridge)
	must := func(args ...string) {
		t.Helper()
		if err := ip(args...); err != nil {
			t.Fatal(err)
		}
	}
	must("-n", nt.bridge, "link", "set", "lo", "up")
	if err := ip("-n", nt.bridge, "link", "add", "br0", "type", "bridge"); err != nil {
		t.Skipf("cannot make a bridge here (no bridge support in this kernel?): %v", err)
	}
	must("-n", nt.bridge, "link", "set", "br0", "up")
	for i, name := range names {
		ns := "cx" + name + "-" + suffix
		must("netns", "add", ns)
		made = append(made, ns)
		nt.ns[name], nt.addr[name] = ns, fmt.Sprintf("198.18.0.%d", 11+i)
		// The pair is made in the bridge namespace; its other end goes
		// straight into the node's namespace, named eth0 there.
		veth := "v" + name
		if err := ip("-n", nt.bridge, "link", "add", veth, "type", "veth", "peer", "name", nodeIf, "netns", ns); err != nil {
			t.Skipf("cannot make veth pairs here: %v", err)
		}
		must("-n", nt.bridge, "link", "set", veth, "master", "br0")
		must("-n", nt.bridge, "link", "set", veth, "up")
		must("-n", ns, "link", "set", "lo", "up")
		must("-n", ns, "addr", "add", nt.addr[name]+"/24", "dev", nodeIf)
		must("-n", ns, "link", "set", nodeIf, "up")
	}
	return nt
}

// killLeftovers kills what still runs in a namespace this test made (only
// nodes it started can be there), logging it: the nodes' own cleanups
// should have stopped them already.
func (nt *netTopo) killLeftovers(ns string) {
	out, err := exec.Command("ip", "netns", "pids", ns).Output()
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(out)) {
		var pid int
		if _, err := fmt.Sscan(f, &pid); err != nil || pid <= 1 {
			continue
		}
		nt.t.Logf("cleanup: process %d still in namespace %s: killing it", pid, ns)
		if p, err := os.FindProcess(pid); err == nil {
			p.Kill()
		}
	}
}

// setLink sets a node's interface down (cut off) or up (healed).
func (nt *netTopo) setLink(name string, up bool) {
	nt.t.Helper()
	state := "down"
	if up {
		state = "up"
	}
	if err := ip("-n", nt.ns[name], "link", "set", nodeIf, state); err != nil {
		nt.t.Fatal(err)
	}
}

// meshNode prepares a mesh node that runs in its namespace and listens on
// its address there.
func (nt *netTopo) meshNode(certs, name string, peers ...string) *node {
	cert, key := pki.NodeCertFiles(certs, name)
	n := newNode(nt.t, name, "--mesh-ca", filepath.Join(certs, "ca.crt"), "--mesh-cert", cert, "--mesh-key", key)
	n.netns = nt.ns[name]
	n.meshAddr = nt.addr[name] + ":7946"
	n.args = append(n.args, "--mesh-listen", n.meshAddr)
	for _, p := range peers {
		n.args = append(n.args, "--peer", p)
	}
	return n
}

// version is a write's version as `cortex put/del --json` prints it.
type version struct {
	HLC    uint64 `json:"hlc,string"`
	Origin string `json:"origin"`
}

func (v version) newer(w version) bool {
	return wal.Version{HLC: v.HLC, Origin: v.Origin}.Compare(wal.Version{HLC: w.HLC, Origin: w.Origin}) > 0
}

// rec is a key's value and version as `cortex scan --json` prints it.
type rec struct {
	Value string
	version
}

func (n *node) putJSON(table, key, value string) version {
	n.t.Helper()
	var v version
	if err := json.Unmarshal([]byte(n.must("--json", "put", table, key, value)), &v); err != nil {
		n.t.Fatal(err)
	}
	if v.Origin != n.name || v.HLC == 0 {
		n.t.Fatalf("%s: put %s: version %+v", n.name, key, v)
	}
	return v
}

func (n *node) delJSON(table, key string) version {
	n.t.Helper()
	var v version
	if err := json.Unmarshal([]byte(n.must("--json", "del", table, key)), &v); err != nil {
		n.t.Fatal(err)
	}
	return v
}

// scanJSON returns a table's full `scan --json` output and its records.
func (n *node) scanJSON(table string) (string, map[string]rec) {
	n.t.Helper()
	out := n.must("--json", "scan", table)
	var list []struct {
		Key    *string `json:"key"`
		Value  *string `json:"value"`
		HLC    uint64  `json:"hlc,string"`
		Origin string  `json:"origin"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		n.t.Fatalf("%s: scan --json: %v\n%s", n.name, err, out)
	}
	m := make(map[string]rec, len(list))
	for _, r := range list {
		if r.Key == nil || r.Value == nil {
			n.t.Fatalf("%s: scan --json: a key or value that is not UTF-8: %s", n.name, out)
		}
		m[*r.Key] = rec{*r.Value, version{r.HLC, r.Origin}}
	}
	return out, m
}

// diffRecs describes how got differs from want, at most a few keys.
func diffRecs(got, want map[string]rec) string {
	var d []string
	for k, w := range want {
		if g, ok := got[k]; !ok {
			d = append(d, fmt.Sprintf("%s missing (want %q %+v)", k, w.Value, w.version))
		} else if g != w {
			d = append(d, fmt.Sprintf("%s = %q %+v, want %q %+v", k, g.Value, g.version, w.Value, w.version))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			d = append(d, fmt.Sprintf("%s = %q %+v, want absent", k, g.Value, g.version))
		}
	}
	sort.Strings(d)
	if len(d) > 5 {
		d = append(d[:5], fmt.Sprintf("... %d more", len(d)-5))
	}
	return strings.Join(d, "; ")
}

// TestPartitionRealNetwork cuts node c off with a link down in its network
// namespace, writes on both sides (conflicting keys, distinct keys, deletes
// with and without a conflicting put), heals the link and checks that the
// three copies converge to the same content, every conflict resolved by the
// greatest (hlc, origin).
func TestPartitionRealNetwork(t *testing.T) {
	nt := newNetTopo(t, "a", "b", "c") // before the nodes: its cleanup runs after theirs
	certs := meshCerts(t, "a", "b", "c")
	a := nt.meshNode(certs, "a")
	a.start()
	b := nt.meshNode(certs, "b", a.meshAddr)
	b.start()
	c := nt.meshNode(certs, "c", a.meshAddr)
	c.start()
	a.waitPeers("b", "c")
	b.waitPeers("a", "c")
	c.waitPeers("a", "b")

	// What every node must hold in the end.
	want := map[string]rec{}
	a.must("table", "create", "t", "--scope", "all")
	for i := range 5 {
		k := fmt.Sprintf("base-%d", i)
		want[k] = rec{"base", a.putJSON("t", k, "base")}
	}
	for _, n := range []*node{b, c} {
		for i := range 5 {
			n.waitValue("t", fmt.Sprintf("base-%d", i), "base")
		}
	}

	// Cut c off, and wait until both sides see it.
	cut := time.Now()
	nt.setLink("c", false)
	c.waitPeers()
	a.waitPeers("b")
	b.waitPeers("a")
	t.Logf("partition seen by every node %s after the link went down", time.Since(cut).Round(time.Millisecond))

	// Both sides keep reading and writing locally. Keys k00..k99 are
	// written on a and on c; c writes second for the even keys and first
	// for the odd ones.
	for _, n := range []*node{a, c} {
		if got := n.must("get", "t", "base-0"); got != "base" {
			t.Fatalf("%s: local read during the partition: %q", n.name, got)
		}
	}
	laterWon := 0
	for i := range 100 {
		k := fmt.Sprintf("k%02d", i)
		first, second := a, c
		if i%2 == 1 {
			first, second = c, a
		}
		v1 := first.putJSON("t", k, first.name+"-"+k)
		v2 := second.putJSON("t", k, second.name+"-"+k)
		if v2.newer(v1) {
			want[k] = rec{second.name + "-" + k, v2}
			laterWon++
		} else {
			want[k] = rec{first.name + "-" + k, v1}
		}
	}
	t.Logf("conflicts: the later write has the greater version for %d of 100 keys", laterWon)
	for i := range 10 {
		for _, n := range []*node{a, b, c} {
			k := fmt.Sprintf("%s-only-%d", n.name, i)
			want[k] = rec{k, n.putJSON("t", k, k)}
		}
	}
	// Deletes on c's side of keys every node holds: base-3 alone, base-4
	// after a wrote it again on a's side, base-2 before a wrote it again.
	for _, k := range []string{"base-3", "base-4"} {
		if k == "base-4" {
			want[k] = rec{"a-again", a.putJSON("t", k, "a-again")}
		}
		if del := c.delJSON("t", k); del.newer(want[k].version) {
			delete(want, k)
		}
	}
	if del, put := c.delJSON("t", "base-2"), a.putJSON("t", "base-2", "a-again"); put.newer(del) {
		want["base-2"] = rec{"a-again", put}
	} else {
		delete(want, "base-2")
	}
	if _, ok := want["base-3"]; ok {
		t.Fatalf("c's delete of base-3 is not newer than a's put of it before the partition")
	}

	// The partition is real: a and b still replicate to each other, c
	// replicates with nobody.
	b.waitValue("t", "a-only-9", "a-only-9")
	a.waitValue("t", "b-only-9", "b-only-9")
	for _, n := range []*node{a, b} {
		if r := n.cli("get", "t", "c-only-0"); r.code != 3 {
			t.Fatalf("%s holds c's write during the partition: %+v", n.name, r)
		}
		if got := n.must("get", "t", "base-3"); got != "base" {
			t.Fatalf("%s: base-3 = %q during the partition, want the value c deleted", n.name, got)
		}
	}
	if r := c.cli("get", "t", "a-only-0"); r.code != 3 {
		t.Fatalf("c holds a's write during the partition: %+v", r)
	}
	if r := c.cli("get", "t", "base-2"); r.code != 3 {
		t.Fatalf("c holds a's base-2 during the partition: %+v", r)
	}

	// Heal and wait for the three copies to converge.
	nt.setLink("c", true)
	healed := time.Now()
	deadline := healed.Add(30 * time.Second)
	for {
		outs := make([]string, 3)
		var diffs []string
		for i, n := range []*node{a, b, c} {
			var got map[string]rec
			outs[i], got = n.scanJSON("t")
			if !reflect.DeepEqual(got, want) {
				diffs = append(diffs, n.name+": "+diffRecs(got, want))
			}
		}
		if len(diffs) == 0 && outs[0] == outs[1] && outs[1] == outs[2] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no convergence 30s after the link came back:\n%s\na:\n%s\nb:\n%s\nc:\n%s", strings.Join(diffs, "\n"), a.logs, b.logs, c.logs)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
	took := time.Since(healed)
	t.Logf("converged %s after the link came back (%d keys on each node; target 5s)", took.Round(time.Millisecond), len(want))
	if took > 5*time.Second {
		t.Logf("convergence took over the 5s target")
	}
	a.waitPeers("b", "c")
	b.waitPeers("a", "c")
	c.waitPeers("a", "b")
}
