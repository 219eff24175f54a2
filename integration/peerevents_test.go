package integration

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/mesh"
)

// meshPeers runs `cortex mesh peers --json` on n.
func (n *node) meshPeers() []mesh.PeerStatus {
	n.t.Helper()
	var peers []mesh.PeerStatus
	if err := json.Unmarshal([]byte(n.must("mesh", "peers", "--json")), &peers); err != nil {
		n.t.Fatal(err)
	}
	return peers
}

// A peer connecting and disconnecting is logged at INFO on both sides,
// with the reason and how long it was connected.
func TestPeerEventsAreLogged(t *testing.T) {
	certs := meshCerts(t, "a", "b")
	a := newMeshNode(t, certs, "a")
	a.start()
	b := newMeshNode(t, certs, "b", a.meshAddr)
	b.start()
	a.waitPeers("b")
	a.waitLog(`level=INFO msg="mesh: peer connected" peer=b `)
	b.waitLog(`level=INFO msg="mesh: peer connected" peer=a `)
	for _, p := range a.meshPeers() {
		if p.Node == "b" && (!p.Connected || p.SinceMS <= 0 || p.SinceMS > time.Now().UnixMilli()) {
			t.Fatalf("b in a's mesh peers: %+v", p)
		}
	}
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	a.waitLog(`level=INFO msg="mesh: peer disconnected" peer=b reason="the peer closed it or the network lost it" connected_for=\d`)
	if !regexp.MustCompile(`level=INFO msg="mesh: peer disconnected" peer=a reason="this node is stopping" connected_for=\d`).MatchString(b.logs.String()) {
		t.Errorf("b's log does not say it disconnected from a as it stopped:\n%s", b.logs)
	}
	if r := a.cli("mesh", "peers"); r.code != 0 || !regexp.MustCompile(`b .* no for \d+s`).MatchString(r.stdout) {
		t.Errorf("a's mesh peers with b stopped: %+v", r)
	}
}

// Seeds that do not connect are listed with their last error: one where
// nothing listens, one of another mesh.
func TestMeshPeersShowsFailingSeeds(t *testing.T) {
	foreign := newMeshNode(t, meshCerts(t, "stranger"), "stranger")
	foreign.start()
	nobody := "127.0.0.1:" + strconv.Itoa(freePort(t))
	a := newMeshNode(t, meshCerts(t, "a"), "a", nobody, foreign.meshAddr)
	a.start()
	deadline := time.Now().Add(30 * time.Second)
	for {
		seeds := map[string]mesh.PeerStatus{}
		for _, p := range a.meshPeers() {
			if p.Connected {
				t.Fatalf("a connected to %+v", p)
			}
			if p.Seed {
				seeds[p.Addr] = p
			}
		}
		s1, s2 := seeds[nobody], seeds[foreign.meshAddr]
		if strings.Contains(s1.LastError, "connection refused") && strings.Contains(s2.LastError, "not signed by this mesh's CA") {
			if s1.SinceMS <= 0 || s2.SinceMS <= 0 {
				t.Fatalf("failing seeds without since when: %+v", seeds)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a's mesh peers do not show both seeds failing with their reason: %+v", seeds)
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
	r := a.cli("mesh", "peers")
	if r.code != 0 || !strings.Contains(r.stdout, "seed "+nobody+": not connected for ") || !strings.Contains(r.stdout, "connection refused") ||
		!strings.Contains(r.stdout, "seed "+foreign.meshAddr+": not connected for ") {
		t.Fatalf("mesh peers: %+v", r)
	}
}

// A node of another mesh that keeps dialing for a minute leaves a few
// lines in each log, not one per attempt: the first refusal, then one a
// minute with the count.
func TestForeignKnockingIsLoggedOnceAMinute(t *testing.T) {
	if testing.Short() {
		t.Skip("knocks for a minute")
	}
	home := newMeshNode(t, meshCerts(t, "home"), "home")
	home.start()
	evil := newMeshNode(t, meshCerts(t, "evil"), "evil", home.meshAddr)
	evil.start()
	start := time.Now()
	// The line after a minute says how many refusals it stands for. evil
	// refuses home's certificate before it sends its own: home hears that.
	inbound := regexp.MustCompile(`level=WARN msg="mesh: refused an inbound connection \(repeats logged at most once a minute\)" remote=127\.0\.0\.1 err=".*remote error: tls: bad certificate" refused=(\d+)`)
	outbound := regexp.MustCompile(`level=WARN msg="mesh: could not connect \(repeats logged at most once a minute\)" remote=` + regexp.QuoteMeta(home.meshAddr) + ` err=".*not signed by this mesh's CA" refused=(\d+)`)
	for {
		hi, eo := inbound.FindAllStringSubmatch(home.logs.String(), -1), outbound.FindAllStringSubmatch(evil.logs.String(), -1)
		if len(hi) >= 2 && len(eo) >= 2 {
			for _, m := range [][]string{hi[0], eo[0]} {
				if m[1] != "1" {
					t.Fatalf("the first line counts %s refusals, want 1", m[1])
				}
			}
			for _, m := range [][]string{hi[1], eo[1]} {
				if n, _ := strconv.Atoi(m[1]); n < 5 {
					t.Fatalf("a minute of knocking counted %d refusals: did evil stop dialing?", n)
				}
			}
			break
		}
		if time.Since(start) > 100*time.Second {
			t.Fatalf("no second line within 100 s:\nhome:\n%s\nevil:\n%s", home.logs, evil.logs)
		}
		time.Sleep(500 * time.Millisecond) // poll interval
	}
	took := time.Since(start)
	for _, n := range []*node{home, evil} {
		var lines []string
		for _, l := range strings.Split(n.logs.String(), "\n") {
			if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
				lines = append(lines, l)
			}
		}
		if len(lines) > 3 {
			t.Errorf("%s logged %d warnings in %s of knocking, want at most 3:\n%s", n.name, len(lines), took.Round(time.Second), strings.Join(lines, "\n"))
		}
	}
}
