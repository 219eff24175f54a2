package main

import (
	"errors"
	"net"
	"testing"
)

func TestConnLimiter(t *testing.T) {
	small := connLimits{handshakes: 3, handshakesPerIP: 2, conns: 5, connsPerIP: 3}
	over := func(n int, what string) error { return limitError{n, what} }
	// A step admits a connection from ip (slots are numbered in the order
	// admitted, refused ones included), or ends the handshake of slot
	// ("done") or closes it ("release").
	type step struct {
		op   string // "admit", "done", "release"
		ip   string
		slot int
		want error // of admit
	}
	admit := func(ip string) step { return step{op: "admit", ip: ip} }
	refuse := func(ip string, err error) step { return step{op: "admit", ip: ip, want: err} }
	done := func(i int) step { return step{op: "done", slot: i} }
	release := func(i int) step { return step{op: "release", slot: i} }
	for _, c := range []struct {
		name  string
		steps []step
		total connCounts
		perIP map[string]connCounts
	}{
		{"handshakes per address", []step{
			admit("10.0.0.1"), admit("10.0.0.1"),
			refuse("10.0.0.1", over(2, "TLS handshakes at once from one address")),
			admit("10.0.0.2"),
		}, connCounts{handshakes: 3, conns: 3}, map[string]connCounts{"10.0.0.1": {2, 2}, "10.0.0.2": {1, 1}}},
		{"handshakes in total", []step{
			admit("10.0.0.1"), admit("10.0.0.2"), admit("10.0.0.3"),
			refuse("10.0.0.4", over(3, "TLS handshakes at once")),
		}, connCounts{handshakes: 3, conns: 3}, nil},
		{"a finished handshake keeps its connection's place", []step{
			admit("10.0.0.1"), admit("10.0.0.1"), done(0), done(1), admit("10.0.0.1"),
			refuse("10.0.0.1", over(3, "connections from one address")),
		}, connCounts{handshakes: 1, conns: 3}, map[string]connCounts{"10.0.0.1": {1, 3}}},
		{"connections in total", []step{
			admit("10.0.0.1"), admit("10.0.0.2"), admit("10.0.0.3"), done(0), done(1), done(2),
			admit("10.0.0.4"), admit("10.0.0.5"),
			refuse("10.0.0.6", over(5, "connections")),
		}, connCounts{handshakes: 2, conns: 5}, nil},
		{"release gives back the places", []step{
			admit("10.0.0.1"), admit("10.0.0.1"), done(0), release(0), release(1),
			admit("10.0.0.1"), admit("10.0.0.1"),
		}, connCounts{handshakes: 2, conns: 2}, map[string]connCounts{"10.0.0.1": {2, 2}}},
		{"second release and late done do nothing", []step{
			admit("10.0.0.1"), admit("10.0.0.1"), admit("10.0.0.2"),
			release(0), release(0), done(0), done(1), done(1),
		}, connCounts{handshakes: 1, conns: 2}, map[string]connCounts{"10.0.0.1": {0, 1}, "10.0.0.2": {1, 1}}},
		{"all released: nothing left", []step{
			admit("10.0.0.1"), admit("10.0.0.2"), done(1), release(0), release(1), release(1),
		}, connCounts{}, map[string]connCounts{}},
		{"IPv6 counts per /64", []step{
			admit("[2001:db8::1]"), admit("[2001:db8::2]"),
			refuse("[2001:db8::3]", over(2, "TLS handshakes at once from one address")),
			admit("[2001:db8:0:1::1]"),
		}, connCounts{handshakes: 3, conns: 3}, map[string]connCounts{"[2001:db8::ffff]": {2, 2}, "[2001:db8:0:1::]": {1, 1}}},
		{"IPv4-mapped addresses count as IPv4", []step{
			admit("[::ffff:10.0.0.1]"), admit("10.0.0.1"),
			refuse("10.0.0.1", over(2, "TLS handshakes at once from one address")),
		}, connCounts{handshakes: 2, conns: 2}, map[string]connCounts{"10.0.0.1": {2, 2}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := newConnLimiter(small)
			var slots []*connSlot
			var admitted, refused uint64
			for i, s := range c.steps {
				switch s.op {
				case "admit":
					slot, err := l.admit(remoteKey(tcpAddr(t, s.ip)))
					if !errors.Is(err, s.want) {
						t.Fatalf("step %d: admit %s: %v, want %v", i, s.ip, err, s.want)
					}
					if err == nil {
						admitted++
					} else {
						refused++
					}
					slots = append(slots, slot)
				case "done":
					slots[s.slot].handshakeDone()
				case "release":
					slots[s.slot].release()
				}
			}
			total, remotes, a, r := l.stats()
			if total != c.total || a != admitted || r != refused {
				t.Errorf("total %+v, admitted %d, refused %d; want %+v, %d, %d", total, a, r, c.total, admitted, refused)
			}
			if c.perIP != nil {
				if remotes != len(c.perIP) {
					t.Errorf("%d remotes counted, want %d", remotes, len(c.perIP))
				}
				for ip, want := range c.perIP {
					if got := l.counts(remoteKey(tcpAddr(t, ip))); got != want {
						t.Errorf("%s: %+v, want %+v", ip, got, want)
					}
				}
			}
		})
	}
}

func tcpAddr(t *testing.T, ip string) *net.TCPAddr {
	t.Helper()
	a, err := net.ResolveTCPAddr("tcp", ip+":7947")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestLimitedConnClosesOnce(t *testing.T) {
	l := newConnLimiter(connLimits{handshakes: 1, handshakesPerIP: 1, conns: 1, connsPerIP: 1})
	remote := remoteKey(tcpAddr(t, "10.0.0.1"))
	slot, err := l.admit(remote)
	if err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	defer b.Close()
	c := &limitedConn{Conn: a, slot: slot}
	slot.handshakeDone()
	if _, err := l.admit(remote); err == nil {
		t.Fatal("a second connection was admitted over the limit of 1")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c.Close() // a second close gives back nothing more
	if total, remotes, _, _ := l.stats(); total != (connCounts{}) || remotes != 0 {
		t.Fatalf("after two closes: %+v, %d remotes", total, remotes)
	}
	// The place is free for exactly one connection again.
	if _, err := l.admit(remote); err != nil {
		t.Fatalf("after close: %v", err)
	}
	if _, err := l.admit(remote); err == nil {
		t.Fatal("after close, two connections were admitted under a limit of 1")
	}
}
