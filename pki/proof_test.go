package pki

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func loadNode(t testing.TB, dir, name string, role Role, now time.Time) *Identity {
	t.Helper()
	if err := CreateNodeCert(dir, name, role, nil, false, now); err != nil {
		t.Fatal(err)
	}
	crt, key := NodeCertFiles(dir, name)
	id, err := LoadIdentity(crt, key, KindNode)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestProof(t *testing.T) {
	dir := newCA(t, t0)
	home := loadNode(t, dir, "home", RoleAdmin, t0)
	office := loadNode(t, dir, "office", RoleMember, t0)
	v := NewVerifier(caPool(t, dir))
	msg := []byte("change")
	proof, err := Sign(home, msg)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second time from the cache
		s, err := v.Verify(proof, msg, t0)
		if err != nil || s.Name != "home" || s.Role != RoleAdmin || s.Fingerprint != Fingerprint(home.Leaf) {
			t.Fatalf("Verify = %+v, %v", s, err)
		}
	}
	if s, err := v.Verify(mustSign(t, office, msg), msg, t0); err != nil || s.Name != "office" || s.Role != RoleMember {
		t.Fatalf("member: %+v, %v", s, err)
	}

	// Another mesh's node, a client certificate, a changed message, a changed
	// signature, a time outside the certificate: refused, and cached
	// certificates are still checked against the time.
	other := newCA(t, t0)
	stranger := loadNode(t, other, "home", RoleAdmin, t0)
	if err := CreateClientCert(dir, "alice", false, t0); err != nil {
		t.Fatal(err)
	}
	crt, key := ClientCertFiles(dir, "alice")
	alice, err := LoadIdentity(crt, key, KindClient)
	if err != nil {
		t.Fatal(err)
	}
	flipped := append([]byte(nil), proof...)
	flipped[len(flipped)-5] ^= 1
	for _, c := range []struct {
		name  string
		proof []byte
		msg   []byte
		at    time.Time
		want  string
	}{
		{"none", nil, msg, t0, "none"},
		{"other CA", mustSign(t, stranger, msg), msg, t0, "not signed by this mesh's CA"},
		{"client certificate", mustSign(t, alice, msg), msg, t0, "client certificate"},
		{"other message", proof, []byte("changes"), t0, "does not match"},
		{"flipped signature", flipped, msg, t0, "does not match"},
		{"before the certificate", proof, msg, t0.Add(-2 * time.Hour), "outside the validity"},
		{"after the certificate", proof, msg, t0.Add(6 * 365 * 24 * time.Hour), "outside the validity"},
		{"version 2", append([]byte{2}, proof[1:]...), msg, t0, "version 2"},
		{"truncated", proof[:40], msg, t0, "malformed certificate length"},
		{"certificate only", proof[:len(proof)-70], msg, t0, ""},
	} {
		s, err := v.Verify(c.proof, c.msg, c.at)
		if err == nil || !errors.Is(err, ErrBadProof) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %+v, %v; want an error with %q", c.name, s, err, c.want)
		}
	}
	// A fresh verifier refuses a proof made outside the validity too.
	if _, err := NewVerifier(caPool(t, dir)).Verify(proof, msg, t0.Add(-2*time.Hour)); err == nil {
		t.Error("a fresh verifier accepted a proof from before the certificate")
	}
}

func mustSign(t testing.TB, id *Identity, msg []byte) []byte {
	t.Helper()
	p, err := Sign(id, msg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// FuzzVerifyProof: arbitrary proof bytes never panic and are accepted only
// when they are a real signature of the message by a node of the mesh CA.
// The seeds include a real proof (made at start with a fresh CA, so that it
// verifies) and damaged forms of it.
func FuzzVerifyProof(f *testing.F) {
	dir := newCA(f, t0)
	home := loadNode(f, dir, "home", RoleMember, t0)
	v := NewVerifier(caPool(f, dir))
	msg := []byte("cortex fuzz seed")
	proof := mustSign(f, home, msg)
	f.Add(proof, msg)
	f.Add(proof[:len(proof)-1], msg)
	f.Add(proof, msg[1:])
	f.Add([]byte{}, []byte("m"))
	f.Add([]byte{1, 0}, []byte("m"))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f}, []byte("m"))
	f.Fuzz(func(t *testing.T, p, m []byte) {
		s, err := v.Verify(p, m, t0)
		if err != nil {
			if !errors.Is(err, ErrBadProof) || s != (Signer{}) {
				t.Fatalf("refusal %v with signer %+v", err, s)
			}
			return
		}
		if s.Name != "home" || s.Role != RoleMember {
			t.Fatalf("accepted a signer %+v", s)
		}
		if bytes.Equal(p, proof) && !bytes.Equal(m, msg) {
			t.Fatalf("the seed proof verified for another message %q", m)
		}
	})
}

func BenchmarkVerifyProof(b *testing.B) {
	dir := newCA(b, t0)
	home := loadNode(b, dir, "home", RoleAdmin, t0)
	v := NewVerifier(caPool(b, dir))
	msg := bytes.Repeat([]byte("x"), 200)
	proof := mustSign(b, home, msg)
	b.ResetTimer()
	for b.Loop() {
		if _, err := v.Verify(proof, msg, t0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSign(b *testing.B) {
	dir := newCA(b, t0)
	home := loadNode(b, dir, "home", RoleAdmin, t0)
	msg := bytes.Repeat([]byte("x"), 200)
	for b.Loop() {
		mustSign(b, home, msg)
	}
}
