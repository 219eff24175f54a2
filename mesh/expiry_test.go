package mesh

import (
	"context"
	"crypto/x509"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/pki"
	"github.com/libp2p/go-libp2p/core/network"
)

func TestDueExpiry(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	cert := func(serial int64, left time.Duration) *x509.Certificate {
		return &x509.Certificate{SerialNumber: big.NewInt(serial), Raw: []byte{byte(serial)}, NotAfter: now.Add(left)}
	}
	soon, later, gone := cert(1, 10*time.Minute), cert(2, 31*24*time.Hour), cert(3, -time.Hour)
	edge := cert(4, pki.ExpiryWarning-time.Second)
	fp := pki.Fingerprint
	for _, c := range []struct {
		name   string
		certs  []watchedCert
		warned map[string]time.Time
		want   []*x509.Certificate
		after  map[string]time.Time // warned afterwards
	}{
		{"nothing near its end", []watchedCert{{"this node", later}, {"the mesh CA", nil}}, map[string]time.Time{}, nil, map[string]time.Time{}},
		{"ends within 30 days, expired, at the edge", []watchedCert{{"this node", soon}, {"peer", gone}, {"peer", edge}, {"peer", later}},
			map[string]time.Time{}, []*x509.Certificate{soon, gone, edge}, map[string]time.Time{fp(soon): now, fp(gone): now, fp(edge): now}},
		{"warned an hour ago: not again", []watchedCert{{"peer", soon}}, map[string]time.Time{fp(soon): now.Add(-time.Hour)},
			nil, map[string]time.Time{fp(soon): now.Add(-time.Hour)}},
		{"warned a day ago: again", []watchedCert{{"peer", soon}}, map[string]time.Time{fp(soon): now.Add(-expiryRepeat)},
			[]*x509.Certificate{soon}, map[string]time.Time{fp(soon): now}},
		{"the same certificate twice (a peer on two connections): once", []watchedCert{{"peer", soon}, {"peer", soon}},
			map[string]time.Time{}, []*x509.Certificate{soon}, map[string]time.Time{fp(soon): now}},
		{"old entries forgotten", nil, map[string]time.Time{"sha256:x": now.Add(-25 * time.Hour)}, nil, map[string]time.Time{}},
	} {
		got := dueExpiry(c.certs, c.warned, now, expiryRepeat)
		ok := len(got) == len(c.want)
		for i := range got {
			ok = ok && got[i].cert == c.want[i]
		}
		if !ok {
			t.Errorf("%s: due %v, want %v", c.name, got, c.want)
		}
		if len(c.warned) != len(c.after) {
			t.Errorf("%s: warned %v, want %v", c.name, c.warned, c.after)
		}
		for k, v := range c.after {
			if !c.warned[k].Equal(v) {
				t.Errorf("%s: warned[%s] = %v, want %v", c.name, k, c.warned[k], v)
			}
		}
	}
}

// A node whose certificate ends in 10 minutes warns about it at start; the
// peer it connects to warns about it on connect, once, though the short
// node's certificate is checked again.
func TestExpiryWarnings(t *testing.T) {
	m := newTestMesh(t)
	if _, err := pki.NewNodeCert(m.dir, "short", pki.RoleMember, []string{"127.0.0.1"}, pki.Options{Lifetime: 10 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	long := m.start("long", nil)
	short := m.start("short", nil, long.addr())
	if !strings.Contains(short.logs.String(), `msg="mesh: a certificate expires soon" whose="this node" name=short`) ||
		!strings.Contains(short.logs.String(), "days_left=0") {
		t.Errorf("short did not warn about its own certificate at start:\n%s", short.logs)
	}
	waitFor(t, "long to warn about short's certificate", func() bool {
		return strings.Contains(long.logs.String(), `msg="mesh: a certificate expires soon" whose=peer name=short`)
	})
	long.CheckCertificates()
	if n := strings.Count(long.logs.String(), "a certificate expires soon"); n != 1 {
		t.Errorf("long warned %d times about short, want once:\n%s", n, long.logs)
	}
	if strings.Contains(long.logs.String(), `whose="this node"`) {
		t.Errorf("long warned about its own 5-year certificate:\n%s", long.logs)
	}
}

// A renewed certificate put in Current is what new connections see; the
// connection up stays up.
func TestRenewedCertificateOnNewConnections(t *testing.T) {
	m := newTestMesh(t)
	a := m.start("a", nil)
	b := m.start("b", nil, a.addr())
	waitFor(t, "b connected to a", func() bool { return len(b.connectedTo()) == 1 })
	aID := a.host.ID()
	before := b.host.Network().ConnsToPeer(aID)
	oldCert, _ := b.sec.PeerCert(aID)

	crt, key := pki.NodeCertFiles(m.dir, "a")
	if _, err := pki.Renew(m.dir, crt, pki.Options{Lifetime: 90 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	renewed, err := pki.LoadIdentity(crt, key, pki.KindNode)
	if err != nil {
		t.Fatal(err)
	}
	a.cur.Set(renewed)
	if self, _ := a.Certificates(); !self.Equal(renewed.Leaf) {
		t.Error("Certificates does not return the renewed certificate")
	}
	// A new connection (b's probe handshake) is shown the renewed certificate.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, err := b.probe(ctx, a.addr())
	if err != nil || id != aID {
		t.Fatalf("probe: %v %v", id, err)
	}
	got, _ := b.sec.PeerCert(aID)
	if got.SerialNumber.Cmp(renewed.Leaf.SerialNumber) != 0 || got.SerialNumber.Cmp(oldCert.SerialNumber) == 0 {
		t.Errorf("a new connection presented serial %s, want the renewed %s (old %s)", got.SerialNumber, renewed.Leaf.SerialNumber, oldCert.SerialNumber)
	}
	// The connection up is the same one, still open.
	after := b.host.Network().ConnsToPeer(aID)
	if len(before) == 0 || len(after) == 0 || before[0] != after[0] || after[0].IsClosed() || b.host.Network().Connectedness(aID) != network.Connected {
		t.Errorf("the connection changed: before %v, after %v", before, after)
	}
	// And it still carries streams: a hello over it succeeds.
	if err := b.sayHello(aID); err != nil {
		t.Errorf("hello over the old connection: %v", err)
	}
}
