package mesh

import (
	"crypto/x509"
	"sync"
	"time"

	"github.com/cortex-mesh/cortex/pki"
)

// Certificates that end within pki.ExpiryWarning are logged as warnings:
// this node's own and the mesh CA's at start, a peer's when it connects,
// and every one of them daily while the node runs. A certificate is warned
// about at most once per expiryRepeat (by fingerprint), however often its
// peer reconnects.

// expiryRepeat is how often the same certificate is warned about again.
const expiryRepeat = 24 * time.Hour

// watchedCert is a certificate the node depends on.
type watchedCert struct {
	whose string // "this node", "the mesh CA", "peer"
	cert  *x509.Certificate
}

// expiryLog remembers when each certificate was last warned about.
type expiryLog struct {
	mu     sync.Mutex
	warned map[string]time.Time // by fingerprint
}

// dueExpiry decides which of certs to warn about at now: those that end
// within pki.ExpiryWarning (or have ended) and were not warned about in the
// last repeat. It updates warned and forgets what is older than repeat, so
// the map holds at most the certificates of a day.
func dueExpiry(certs []watchedCert, warned map[string]time.Time, now time.Time, repeat time.Duration) []watchedCert {
	for fp, at := range warned {
		if now.Sub(at) >= repeat {
			delete(warned, fp)
		}
	}
	var due []watchedCert
	for _, w := range certs {
		if w.cert == nil || !pki.ExpiresSoon(w.cert.NotAfter, now) {
			continue
		}
		fp := pki.Fingerprint(w.cert)
		if _, ok := warned[fp]; ok {
			continue
		}
		warned[fp] = now
		due = append(due, w)
	}
	return due
}

// Certificates returns this node's certificate now and the mesh CA's.
func (n *Node) Certificates() (self, ca *x509.Certificate) { return n.cur.Get().Leaf, n.caCert }

// CheckCertificates logs a warning for each certificate this node depends
// on (its own, the CA's, its connected peers') that ends within
// pki.ExpiryWarning and was not warned about within the last day.
func (n *Node) CheckCertificates() {
	certs := []watchedCert{{"this node", n.cur.Get().Leaf}, {"the mesh CA", n.caCert}}
	for _, id := range n.host.Network().Peers() {
		if c, ok := n.sec.PeerCert(id); ok {
			certs = append(certs, watchedCert{"peer", c})
		}
	}
	now := n.cfg.Now()
	n.expiry.mu.Lock()
	due := dueExpiry(certs, n.expiry.warned, now, expiryRepeat)
	n.expiry.mu.Unlock()
	for _, w := range due {
		msg, fix := "mesh: a certificate expires soon", ""
		if !now.Before(w.cert.NotAfter) {
			msg = "mesh: a certificate has expired"
		}
		switch w.whose {
		case "this node":
			fix = "renew it (cortex cert renew FILE --dir CA_DIR) and send cortexd SIGHUP"
		case "the mesh CA":
			fix = "no certificate it signs is valid past its end: plan a new mesh CA"
		default:
			fix = "renew it on that node (cortex cert renew, then SIGHUP there)"
		}
		n.log.Warn(msg, "whose", w.whose, "name", w.cert.Subject.CommonName, "not_after", w.cert.NotAfter.UTC().Format(time.RFC3339),
			"days_left", pki.DaysLeft(w.cert.NotAfter, now), "fingerprint", pki.Fingerprint(w.cert), "fix", fix)
	}
}

// watchExpiry checks the certificates every cfg.ExpiryCheckEvery.
func (n *Node) watchExpiry() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.ExpiryCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
			n.CheckCertificates()
		}
	}
}
