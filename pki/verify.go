package pki

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"
)

// Identity is a loaded mesh certificate with its key.
type Identity struct {
	TLS  tls.Certificate   // certificate and private key
	Leaf *x509.Certificate // the parsed certificate
	Name string            // the subject's common name
	Kind Kind
	Role Role // a node's role (member for a client)
}

// LoadIdentity loads a certificate and its key, checks that they belong
// together and that the certificate is a mesh certificate of kind want. A
// key file its group or others may read or write is refused (ErrKeyTooOpen).
func LoadIdentity(certPath, keyPath string, want Kind) (*Identity, error) {
	pair, err := LoadKeyPair(certPath, keyPath)
	if errors.Is(err, ErrKeyTooOpen) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("load %s and %s: %w", certPath, keyPath, err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", certPath, err)
	}
	pair.Leaf = leaf
	kind, err := KindOf(leaf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certPath, err)
	}
	if kind != want {
		return nil, fmt.Errorf("%s is a %s certificate, not a %s certificate", certPath, kind, want)
	}
	role, err := RoleOf(leaf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certPath, err)
	}
	return &Identity{TLS: pair, Leaf: leaf, Name: leaf.Subject.CommonName, Kind: kind, Role: role}, nil
}

// LoadCA reads the mesh CA certificate as a pool of one.
func LoadCA(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load mesh CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("load mesh CA: %s holds no PEM certificate", path)
	}
	return pool, nil
}

// KindOf returns the kind a certificate is marked with.
func KindOf(c *x509.Certificate) (Kind, error) {
	if len(c.Subject.OrganizationalUnit) == 1 {
		switch k := Kind(c.Subject.OrganizationalUnit[0]); k {
		case KindNode, KindClient:
			return k, nil
		}
	}
	return "", fmt.Errorf("certificate %q is not marked as a cortex node or client certificate", c.Subject.CommonName)
}

// Verify checks a peer's certificate chain against the mesh CA at time now
// and that the leaf is of kind want with a valid name. The error says which
// check failed: another CA, expired, wrong kind, bad name.
func Verify(rawCerts [][]byte, roots *x509.CertPool, want Kind, now time.Time) (*x509.Certificate, error) {
	leaf, _, err := verifyChain(rawCerts, roots, want, now)
	return leaf, err
}

// verifyChain is Verify, also returning the verified chain (leaf first).
func verifyChain(rawCerts [][]byte, roots *x509.CertPool, want Kind, now time.Time) (*x509.Certificate, []*x509.Certificate, error) {
	if len(rawCerts) == 0 {
		return nil, nil, errors.New("no certificate presented")
	}
	certs := make([]*x509.Certificate, len(rawCerts))
	for i, raw := range rawCerts {
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			return nil, nil, fmt.Errorf("malformed certificate: %w", err)
		}
		certs[i] = c
	}
	leaf := certs[0]
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	usage := x509.ExtKeyUsageClientAuth
	if want == KindNode {
		usage = x509.ExtKeyUsageServerAuth
	}
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}})
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknown):
		return nil, nil, reasonf(ErrForeignCA, "certificate of %q is not signed by this mesh's CA", leaf.Subject.CommonName)
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return nil, nil, reasonf(ErrExpired, "certificate of %q is expired or not yet valid (valid %s to %s)", leaf.Subject.CommonName,
			leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	case errors.As(err, &invalid) && invalid.Reason == x509.IncompatibleUsage:
		if kind, kerr := KindOf(leaf); kerr == nil && kind != want {
			return nil, nil, reasonf(ErrWrongKind, "certificate of %q is a %s certificate, not a %s certificate", leaf.Subject.CommonName, kind, want)
		}
		return nil, nil, fmt.Errorf("certificate of %q cannot serve as a %s certificate: it lacks the key usage one needs (make it again with cortex cert)", leaf.Subject.CommonName, want)
	case err != nil:
		return nil, nil, fmt.Errorf("certificate of %q: %w", leaf.Subject.CommonName, err)
	}
	kind, err := KindOf(leaf)
	if err != nil {
		return nil, nil, err
	}
	if kind != want {
		return nil, nil, reasonf(ErrWrongKind, "certificate of %q is a %s certificate, not a %s certificate", leaf.Subject.CommonName, kind, want)
	}
	if err := ValidateName(leaf.Subject.CommonName); err != nil {
		return nil, nil, fmt.Errorf("certificate name: %w", err)
	}
	if _, err := RoleOf(leaf); err != nil {
		return nil, nil, err
	}
	return leaf, chains[0], nil
}

// The reasons Verify refuses a certificate for, as errors.Is tells them
// apart (the error's text says more).
var (
	ErrForeignCA = errors.New("not signed by this mesh's CA")
	ErrExpired   = errors.New("expired or not yet valid")
	ErrWrongKind = errors.New("not of the kind needed")
)

// reasonError is an error whose text is msg and that errors.Is takes for
// reason.
type reasonError struct {
	reason error
	msg    string
}

func (e *reasonError) Error() string        { return e.msg }
func (e *reasonError) Is(target error) bool { return target == e.reason }

func reasonf(reason error, format string, args ...any) error {
	return &reasonError{reason, fmt.Sprintf(format, args...)}
}

// Fingerprint is the SHA-256 of a certificate's DER bytes, as "sha256:<hex>".
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// LoadCACert reads the mesh CA certificate itself (the first in the file),
// for its name and validity.
func LoadCACert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load mesh CA: %w", err)
	}
	c, err := ParseCertPEM(data)
	if err != nil {
		return nil, fmt.Errorf("load mesh CA: %s %w", path, err)
	}
	return c, nil
}
