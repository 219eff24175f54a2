package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/pki"
	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/tables"
)

// After SetIdentity the node signs its changes with the renewed
// certificate: a peer verifying the proof finds the new fingerprint; a
// certificate of another node or role is refused and changes nothing.
func TestSetIdentitySignsWithTheRenewedCertificate(t *testing.T) {
	ca := newTestCA(t)
	home := ca.open("home", pki.RoleAdmin)
	old := ca.identity("home", pki.RoleAdmin)
	crt, key := pki.NodeCertFiles(ca.dir, "home")
	if _, err := pki.Renew(ca.dir, crt, pki.Options{Lifetime: 90 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	renewed, err := pki.LoadIdentity(crt, key, pki.KindNode)
	if err != nil {
		t.Fatal(err)
	}
	if err := home.SetIdentity(ca.identity("office", pki.RoleAdmin)); err == nil || !strings.Contains(err.Error(), "cannot replace") {
		t.Errorf("another node's certificate: %v", err)
	}
	if s, _ := home.Signer(); s.Fingerprint != pki.Fingerprint(old.Leaf) {
		t.Errorf("after a refused SetIdentity the signer is %s", s.Fingerprint)
	}
	if err := home.SetIdentity(renewed); err != nil {
		t.Fatal(err)
	}
	if s, _ := home.Signer(); s.Fingerprint != pki.Fingerprint(renewed.Leaf) || s.Name != "home" || s.Role != pki.RoleAdmin {
		t.Errorf("signer %+v", s)
	}
	if err := home.AddIdentity(context.Background(), Identity{Name: "bob", Kind: "client"}); err != nil {
		t.Fatal(err)
	}
	idents, _ := home.Table(scope.IdentitiesTable)
	recs, err := idents.ScanAll(nil, nil, 0)
	if err != nil || len(recs) != 1 {
		t.Fatalf("identities: %v %v", recs, err)
	}
	e := recs[0].Entry()
	at, _ := tables.HLCTime(e.Version.HLC)
	signer, err := pki.NewVerifier(ca.ca).Verify(e.Proof, changeMessage(scope.IdentitiesTable, &e), at)
	if err != nil || signer.Fingerprint != pki.Fingerprint(renewed.Leaf) {
		t.Errorf("proof signed by %+v (%v), want the renewed certificate %s", signer, err, pki.Fingerprint(renewed.Leaf))
	}
	// The renewed certificate is this node's own: it cannot revoke it.
	if _, err := home.Revoke(context.Background(), pki.Fingerprint(renewed.Leaf)); err == nil {
		t.Error("revoked its own renewed certificate")
	}
}
