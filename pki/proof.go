package pki

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"
)

// A proof says who made a change: the node's certificate and its signature
// over the change. It is self-contained, so that any node can check it from
// the change alone and the mesh CA, whoever relayed it and whatever it
// already holds:
//
//	version(1) = 1, uvarint len + certificate (DER), signature (ASN.1 ECDSA, SHA-256)
const proofVersion = 1

// maxProofCert bounds the certificate in a proof.
const maxProofCert = 8 << 10

// Sign returns the proof that ident made the change msg.
func Sign(ident *Identity, msg []byte) ([]byte, error) {
	key, ok := ident.TLS.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("sign: want an ECDSA key, got %T", ident.TLS.PrivateKey)
	}
	sum := sha256.Sum256(msg)
	sig, err := ecdsa.SignASN1(rand.Reader, key, sum[:])
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	cert := ident.Leaf.Raw
	out := make([]byte, 0, 1+binary.MaxVarintLen64+len(cert)+len(sig))
	out = append(out, proofVersion)
	out = binary.AppendUvarint(out, uint64(len(cert)))
	out = append(out, cert...)
	return append(out, sig...), nil
}

// Signer is who made a change, as its proof's certificate says.
type Signer struct {
	Name        string
	Role        Role
	Fingerprint string
}

// Verifier checks proofs against the mesh CA. It remembers the certificates
// it verified, so that a change costs one signature check. Safe for
// concurrent use.
type Verifier struct {
	roots *x509.CertPool

	mu    sync.Mutex
	certs map[[32]byte]verified
}

type verified struct {
	signer              Signer
	key                 *ecdsa.PublicKey
	notBefore, notAfter time.Time // of the certificate and its CA together
}

// maxVerified bounds the certificates a Verifier remembers.
const maxVerified = 4096

// NewVerifier returns a verifier for the mesh CA roots.
func NewVerifier(roots *x509.CertPool) *Verifier {
	return &Verifier{roots: roots, certs: map[[32]byte]verified{}}
}

// ErrBadProof is wrapped by every reason a proof is refused.
var ErrBadProof = errors.New("bad proof")

// Verify checks that proof proves msg was made at time at by a node
// certificate of the mesh CA valid at that time, and returns its signer.
// It never panics on malformed input.
func (v *Verifier) Verify(proof, msg []byte, at time.Time) (Signer, error) {
	if len(proof) == 0 {
		return Signer{}, fmt.Errorf("%w: none (written without a node certificate)", ErrBadProof)
	}
	if proof[0] != proofVersion {
		return Signer{}, fmt.Errorf("%w: version %d", ErrBadProof, proof[0])
	}
	n, k := binary.Uvarint(proof[1:])
	if k <= 0 || n == 0 || n > maxProofCert || n > uint64(len(proof)-1-k) {
		return Signer{}, fmt.Errorf("%w: malformed certificate length", ErrBadProof)
	}
	raw := proof[1+k : 1+k+int(n)]
	sig := proof[1+k+int(n):]
	c, err := v.cert(raw, at)
	if err != nil {
		return Signer{}, err
	}
	if at.Before(c.notBefore) || at.After(c.notAfter) {
		return Signer{}, fmt.Errorf("%w: made at %s, outside the validity of %s's certificate (%s to %s)", ErrBadProof,
			at.UTC().Format(time.RFC3339), c.signer.Name, c.notBefore.UTC().Format(time.RFC3339), c.notAfter.UTC().Format(time.RFC3339))
	}
	sum := sha256.Sum256(msg)
	if !ecdsa.VerifyASN1(c.key, sum[:], sig) {
		return Signer{}, fmt.Errorf("%w: the signature of %s does not match the change", ErrBadProof, c.signer.Name)
	}
	return c.signer, nil
}

// cert returns a verified certificate, checking it against the CA at time
// at the first time it is seen.
func (v *Verifier) cert(raw []byte, at time.Time) (verified, error) {
	id := sha256.Sum256(raw)
	v.mu.Lock()
	c, ok := v.certs[id]
	v.mu.Unlock()
	if ok {
		return c, nil
	}
	leaf, chain, err := verifyChain([][]byte{raw}, v.roots, KindNode, at)
	if err != nil {
		return verified{}, fmt.Errorf("%w: %v", ErrBadProof, err)
	}
	key, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return verified{}, fmt.Errorf("%w: certificate of %q has no ECDSA key", ErrBadProof, leaf.Subject.CommonName)
	}
	role, _ := RoleOf(leaf) // Verify checked it
	c = verified{signer: Signer{Name: leaf.Subject.CommonName, Role: role, Fingerprint: Fingerprint(leaf)},
		key: key, notBefore: leaf.NotBefore, notAfter: leaf.NotAfter}
	for _, cc := range chain[1:] { // the CA's validity too
		c.notBefore, c.notAfter = maxTime(c.notBefore, cc.NotBefore), minTime(c.notAfter, cc.NotAfter)
	}
	v.mu.Lock()
	if len(v.certs) >= maxVerified {
		clear(v.certs)
	}
	v.certs[id] = c
	v.mu.Unlock()
	return c, nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
