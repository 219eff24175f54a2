package integration

// The nemesis cluster: N real cortexd processes in a mesh, on 127.0.0.1
// (process faults only, no root needed) or each in a network namespace of
// its own behind a bridge namespace (netTopo; root; every fault), and the
// faults themselves. Every fault method is called from the test goroutine
// only; the workload reaches the nodes through their api clients, which it
// never closes or replaces, so it shares no state with the faults.
//
// Network faults in netns mode:
//
//	cut      the node's eth0 set down (netTopo.setLink): it can reach nobody,
//	         and nobody it; the peers get no RST.
//	isolate  blackhole routes, both ways, between the node and every other
//	         node (ip -n NS route add blackhole ADDR/32): the link stays up,
//	         only that node's traffic is dropped.
//	bridge   blackhole routes both ways between two nodes a and c only: a-b
//	         and b-c (and every other pair) stay up, a-c is down.
//	flap     the node's link down and up several times, quickly.
//
// Per-pair filtering uses routes rather than nftables or iptables because
// neither is installed here while iproute2 is (and CI installs iproute2 for
// the partition tests already). A blackhole route drops, silently, what the
// namespace it is in sends to that address: a local connect gets EINVAL, a
// packet arriving from the other side is answered into the hole, so the
// route is set on both sides to make a pair's cut symmetric and to let a
// probe from either side see it at once. Each shape is checked with TCP
// probes from inside the namespaces (bash's /dev/tcp to a closed port: a
// refusal means reachable) right after it is made and after it is healed.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/api"
	"github.com/cortex-mesh/cortex/repair"
	"github.com/cortex-mesh/cortex/scope"
)

const (
	nemLoopback = "loopback"
	nemNetns    = "netns"
	nemTable    = "nem"
)

// nemNode is one cortexd of the cluster.
type nemNode struct {
	*node
	c           *api.Client  // the workload's client, for the whole test
	incarnation atomic.Int32 // starts after the first
	// The fault state, test goroutine only.
	down, paused, linkDown bool
	// pastLogs holds the output of the node's earlier processes (start
	// gives each process a buffer of its own).
	pastLogs strings.Builder
}

// allLogs is the output of every process the node has run.
func (nn *nemNode) allLogs() string {
	return nn.pastLogs.String() + fmt.Sprintf("--- process %d ---\n", nn.incarnation.Load()) + nn.logs.String()
}

type nemCluster struct {
	t      *testing.T
	mode   string
	nt     *netTopo // netns mode only
	nodes  []*nemNode
	byName map[string]*nemNode
	base   time.Time // the history's clock starts here
	// blackholes holds the routes in place: [namespace of node, address of node].
	blackholes map[[2]string]bool
	// restarts measures how long each (re)start took to answer.
	restarts []time.Duration
	logMu    sync.Mutex
	schedule []string // the fault log, also printed as it goes
	final    nemFinal // the last round's final scans
	baseline [3]int   // logCounts once the cluster is set up
}

// logCounts counts, in every node's logs, the mesh connections made, the
// replication streams interrupted and the snapshots received.
func (cl *nemCluster) logCounts() (connects, interrupted, snapshots int) {
	for _, nn := range cl.nodes {
		all := nn.allLogs()
		connects += strings.Count(all, `msg="mesh: peer connected"`)
		interrupted += strings.Count(all, `msg="repl: subscription interrupted"`)
		snapshots += strings.Count(all, `msg="repl: receiving a snapshot"`)
	}
	return connects, interrupted, snapshots
}

// newNemCluster starts n nodes (n1 is an admin, the others members; every
// node joins through n1), waits for the full mesh, and creates the table of
// the workload (scope all) on n1, held by every node before it returns.
func newNemCluster(t *testing.T, mode string, n int) *nemCluster {
	t.Helper()
	names := make([]string, n)
	certNames := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("n%d", i+1)
		certNames[i] = names[i]
	}
	certNames[0] += "+admin"
	cl := &nemCluster{t: t, mode: mode, byName: map[string]*nemNode{}, blackholes: map[[2]string]bool{}}
	if mode == nemNetns {
		if os.Geteuid() != 0 {
			t.Skip("nemesis netns mode needs root (network namespaces, a bridge, routes); TestNemesisLoopback runs the process faults without it")
		}
		cl.nt = newNetTopo(t, names...) // skips if namespaces cannot be made; its cleanup runs after the nodes'
	}
	certs := meshCerts(t, certNames...)
	for i, name := range names {
		var peers []string
		if i > 0 {
			peers = []string{cl.nodes[0].meshAddr}
		}
		var nd *node
		if mode == nemNetns {
			nd = cl.nt.meshNode(certs, name, peers...)
		} else {
			nd = newMeshNode(t, certs, name, peers...)
		}
		nn := &nemNode{node: nd, c: nd.client()}
		cl.nodes = append(cl.nodes, nn)
		cl.byName[name] = nn
		cl.startNode(nn)
	}
	t.Cleanup(func() {
		for _, nn := range cl.nodes {
			nn.c.Close()
		}
	})
	plWaitFullMesh(cl.plain()...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cl.nodes[0].c.CreateTable(ctx, nemTable, scope.Scope{All: true}, api.Overrides{}); err != nil {
		t.Fatal(err)
	}
	for _, nn := range cl.nodes {
		nn.replWaitHeld(nemTable)
	}
	c, i, sn := cl.logCounts()
	cl.baseline = [3]int{c, i, sn}
	cl.base = time.Now()
	return cl
}

func (cl *nemCluster) plain() []*node {
	out := make([]*node, len(cl.nodes))
	for i, nn := range cl.nodes {
		out[i] = nn.node
	}
	return out
}

// now is the history's clock.
func (cl *nemCluster) now() time.Duration { return time.Since(cl.base) }

// logf records a line of the schedule, with the history's time.
func (cl *nemCluster) logf(format string, args ...any) {
	cl.t.Helper()
	line := fmt.Sprintf("[%7.2fs] ", cl.now().Seconds()) + fmt.Sprintf(format, args...)
	cl.logMu.Lock()
	cl.schedule = append(cl.schedule, line)
	cl.logMu.Unlock()
	cl.t.Log(line)
}

// startNode starts (or restarts) a node and waits until its socket answers;
// a node that does not come back fails the test (with its log).
func (cl *nemCluster) startNode(nn *nemNode) {
	cl.t.Helper()
	t0 := time.Now()
	nn.start()
	cl.restarts = append(cl.restarts, time.Since(t0))
	nn.down = false
}

// kill9 kills a node with SIGKILL; restart brings it back.
func (cl *nemCluster) kill9(nn *nemNode) {
	nn.kill()
	nn.down = true
}

// restartNode starts a killed node again.
func (cl *nemCluster) restartNode(nn *nemNode) {
	cl.t.Helper()
	cl.checkLog(nn, nn.logs.String())
	fmt.Fprintf(&nn.pastLogs, "--- process %d ---\n%s", nn.incarnation.Load(), nn.logs)
	nn.incarnation.Add(1)
	cl.startNode(nn)
}

// term stops a node with SIGTERM, which must exit 0.
func (cl *nemCluster) term(nn *nemNode) {
	cl.t.Helper()
	if err := nn.stop(); err != nil {
		cl.t.Errorf("%s: exit after SIGTERM: %v\n%s", nn.name, err, nn.logs)
	}
	nn.down = true
}

// checkLog fails the test if a node's output shows a data race (the daemon
// is built with -race when the tests are) or a panic: a process killed with
// SIGKILL cannot report either through its exit code.
func (cl *nemCluster) checkLog(nn *nemNode, out string) {
	cl.t.Helper()
	for _, bad := range []string{"WARNING: DATA RACE", "panic:", "fatal error:"} {
		if i := strings.Index(out, bad); i >= 0 {
			cl.t.Errorf("%s (process %d) printed %q:\n%s", nn.name, nn.incarnation.Load(), bad, out[i:min(len(out), i+4000)])
		}
	}
}

// pause and resume send SIGSTOP and SIGCONT.
func (cl *nemCluster) pause(nn *nemNode) {
	cl.t.Helper()
	if err := nn.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		cl.t.Fatalf("%s: SIGSTOP: %v", nn.name, err)
	}
	nn.paused = true
}

func (cl *nemCluster) resume(nn *nemNode) {
	cl.t.Helper()
	if err := nn.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		cl.t.Fatalf("%s: SIGCONT: %v", nn.name, err)
	}
	nn.paused = false
}

// setLink cuts (up=false) or heals a node's link.
func (cl *nemCluster) setLink(nn *nemNode, up bool) {
	cl.t.Helper()
	cl.nt.setLink(nn.name, up)
	nn.linkDown = !up
}

// blackhole adds (on) or removes the route dropping what a sends to b.
func (cl *nemCluster) blackhole(a, b *nemNode, on bool) {
	cl.t.Helper()
	k := [2]string{a.name, b.name}
	if cl.blackholes[k] == on {
		return
	}
	verb := "add"
	if !on {
		verb = "del"
	}
	if err := ip("-n", cl.nt.ns[a.name], "route", verb, "blackhole", cl.nt.addr[b.name]+"/32"); err != nil {
		cl.t.Fatal(err)
	}
	if on {
		cl.blackholes[k] = true
	} else {
		delete(cl.blackholes, k)
	}
}

// cutPair makes (on) or heals the a-c cut, both ways.
func (cl *nemCluster) cutPair(a, c *nemNode, on bool) {
	cl.t.Helper()
	cl.blackhole(a, c, on)
	cl.blackhole(c, a, on)
}

// isolate cuts a node from every other by routes, both ways.
func (cl *nemCluster) isolate(nn *nemNode, on bool) {
	cl.t.Helper()
	for _, o := range cl.nodes {
		if o != nn {
			cl.cutPair(nn, o, on)
		}
	}
}

// healAll undoes every fault still in place: the last heal of a round.
// It reports whether there was anything to undo.
func (cl *nemCluster) healAll() bool {
	cl.t.Helper()
	did := false
	for _, nn := range cl.nodes {
		if nn.paused {
			cl.resume(nn)
			did = true
		}
		if nn.down {
			cl.restartNode(nn)
			did = true
		}
		if cl.nt != nil && nn.linkDown {
			cl.setLink(nn, true)
			did = true
		}
	}
	for k := range cl.blackholes {
		cl.blackhole(cl.byName[k[0]], cl.byName[k[1]], false)
		did = true
	}
	return did
}

// reachable is what the fault state says of a -> b.
func (cl *nemCluster) reachable(a, b *nemNode) bool {
	return !a.linkDown && !b.linkDown && !cl.blackholes[[2]string{a.name, b.name}] && !cl.blackholes[[2]string{b.name, a.name}]
}

// probe tries a TCP connection from a's namespace to a closed port of b's
// address: refused (or accepted) means b is reachable, an error from the
// local stack or no answer within a second means it is not.
func (cl *nemCluster) probe(a, b *nemNode) (bool, string) {
	cmd := exec.Command("ip", "netns", "exec", cl.nt.ns[a.name], "timeout", "1", "bash", "-c",
		fmt.Sprintf("exec 3<>/dev/tcp/%s/9", cl.nt.addr[b.name]))
	out, err := cmd.CombinedOutput()
	msg := strings.TrimSpace(string(out))
	if err == nil || strings.Contains(msg, "Connection refused") {
		return true, "reachable"
	}
	if msg == "" {
		msg = err.Error()
	}
	return false, msg
}

// checkShape probes every ordered pair whose answer comes at once (every
// reachable pair, and every blocked one whose block is on the sender's side)
// and fails the test if the network is not what the fault state says.
func (cl *nemCluster) checkShape() {
	cl.t.Helper()
	for _, a := range cl.nodes {
		for _, b := range cl.nodes {
			if a == b {
				continue
			}
			want := cl.reachable(a, b)
			if !want && !a.linkDown && !cl.blackholes[[2]string{a.name, b.name}] {
				continue // blocked on b's side: a probe would only time out
			}
			// A link just brought up may take a moment to pass traffic.
			deadline := time.Now().Add(5 * time.Second)
			for {
				got, msg := cl.probe(a, b)
				if got == want {
					break
				}
				if time.Now().After(deadline) {
					cl.t.Fatalf("network shape: %s -> %s reachable=%v, want %v (%s); blackholes %v", a.name, b.name, got, want, msg, cl.blackholes)
				}
				time.Sleep(50 * time.Millisecond) // poll interval
			}
		}
	}
}

// scanAll reads node nn's whole table, page by page.
func (nn *nemNode) scanAll(ctx context.Context) (map[string]nemRecord, error) {
	out := map[string]nemRecord{}
	var after []byte
	for range 1000 {
		res, err := nn.c.Scan(ctx, api.ScanRequest{Table: nemTable, After: after})
		if err != nil {
			return nil, err
		}
		for _, r := range res.Records {
			out[string(r.Key)] = nemRecord{string(r.Value), nemVersion{uint64(r.HLC), r.Origin}}
		}
		if !res.More || len(res.Records) == 0 {
			return out, nil
		}
		after = res.Records[len(res.Records)-1].Key
	}
	return nil, errors.New("scan: more than 1000 pages")
}

// scans reads every node's table.
func (cl *nemCluster) scans() (nemFinal, error) {
	final := nemFinal{}
	for _, nn := range cl.nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		recs, err := nn.scanAll(ctx)
		cancel()
		if err != nil {
			return final, fmt.Errorf("%s: %w", nn.name, err)
		}
		final[nn.name] = recs
	}
	return final, nil
}

// waitConverged polls until every node's scan is the same and n1's sync
// status says the table is in sync, up to limit. It returns the last scans
// (which the checker then describes if they still differ) and whether they
// converged.
func (cl *nemCluster) waitConverged(limit time.Duration) (nemFinal, bool, string) {
	deadline := time.Now().Add(limit)
	for {
		final, err := cl.scans()
		why := ""
		switch {
		case err != nil:
			why = err.Error()
		default:
			ref := final[cl.nodes[0].name]
			for _, nn := range cl.nodes[1:] {
				if d := nemDiff(final[nn.name], ref); d != "" {
					why = nn.name + " differs from " + cl.nodes[0].name + ": " + d
					break
				}
			}
		}
		if why == "" {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			st, err := cl.nodes[0].c.SyncStatus(ctx, nemTable)
			cancel()
			switch {
			case err != nil:
				why = "sync status: " + err.Error()
			case len(st.Tables) != 1 || st.Tables[0].State != repair.InSync:
				why = fmt.Sprintf("sync status: %+v", st.Tables)
			default:
				return final, true, ""
			}
		}
		if time.Now().After(deadline) {
			return final, false, why
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
}

// keepEvidence copies what a failed run leaves (data directories, logs,
// the schedule and the history) to a directory that outlives the test.
func (cl *nemCluster) keepEvidence(seed int64, extra map[string][]byte) {
	dir, err := os.MkdirTemp("", fmt.Sprintf("nemesis-fail-%d-", seed))
	if err != nil {
		cl.t.Logf("keeping the evidence: %v", err)
		return
	}
	files := map[string][]byte{
		"seed.txt":     fmt.Appendf(nil, "%d\nreplay: go test -race -count=1 -run '%s$' ./integration -nemesis.seed=%d\n", seed, cl.t.Name(), seed),
		"schedule.txt": []byte(strings.Join(cl.schedule, "\n") + "\n"),
	}
	for k, v := range extra {
		files[k] = v
	}
	for _, nn := range cl.nodes {
		files[nn.name+".log"] = []byte(nn.allLogs())
		if out, err := exec.Command("cp", "-a", nn.dir, filepath.Join(dir, nn.name+"-data")).CombinedOutput(); err != nil {
			cl.t.Logf("copying %s: %v %s", nn.dir, err, out)
		}
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			cl.t.Logf("keeping the evidence: %v", err)
		}
	}
	cl.t.Logf("evidence kept in %s (data directories, node logs, schedule, history)", dir)
}
