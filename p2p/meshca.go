package p2p

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/cortex-mesh/cortex/tables"
)

// Kind is what a mesh certificate is for: a node of the mesh or a client
// identity. It is carried in the subject's organizational unit.
type Kind string

// The certificate kinds.
const (
	KindNode   Kind = "node"
	KindClient Kind = "client"
)

// Validity of the certificates the mesh CA signs.
const (
	CAValidity   = 10 * 365 * 24 * time.Hour
	CertValidity = 5 * 365 * 24 * time.Hour
)

// File names in a certificate directory.
func caCertPath(dir string) string { return filepath.Join(dir, "ca.crt") }
func caKeyPath(dir string) string  { return filepath.Join(dir, "ca.key") }

// CAFiles returns the mesh CA's certificate and key paths in dir.
func CAFiles(dir string) (cert, key string) { return caCertPath(dir), caKeyPath(dir) }

// NodeCertFiles returns the certificate and key paths of a node in dir.
func NodeCertFiles(dir, name string) (cert, key string) {
	return filepath.Join(dir, "node-"+name+".crt"), filepath.Join(dir, "node-"+name+".key")
}

// ClientCertFiles returns the certificate and key paths of a client in dir.
func ClientCertFiles(dir, identity string) (cert, key string) {
	return filepath.Join(dir, "client-"+identity+".crt"), filepath.Join(dir, "client-"+identity+".key")
}

// ErrExists is returned when a file would be overwritten without permission.
var ErrExists = errors.New("file exists")

// CreateCA makes a new mesh CA in dir: ca.crt and ca.key (mode 0600).
func CreateCA(dir string, overwrite bool, now time.Time) error {
	if err := checkFree(overwrite, caCertPath(dir), caKeyPath(dir)); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "cortex mesh CA", Organization: []string{"cortex"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CAValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := sign(tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	return writePair(dir, caCertPath(dir), caKeyPath(dir), der, key)
}

// CreateNodeCert makes the certificate of node name, signed by the CA in
// dir. hosts (DNS names or IP addresses) are added as SANs for the RPC
// listener; the node name itself is always a DNS SAN.
func CreateNodeCert(dir, name string, hosts []string, overwrite bool, now time.Time) error {
	if err := tables.ValidateNodeName(name); err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: name, Organization: []string{"cortex"}, OrganizationalUnit: []string{string(KindNode)}},
		DNSNames:    []string{name},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" && h != name {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	cert, key := NodeCertFiles(dir, name)
	return issue(dir, tmpl, cert, key, overwrite, now)
}

// CreateClientCert makes the certificate of a client identity, signed by the
// CA in dir.
func CreateClientCert(dir, identity string, overwrite bool, now time.Time) error {
	if err := tables.ValidateNodeName(identity); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: identity, Organization: []string{"cortex"}, OrganizationalUnit: []string{string(KindClient)}},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	cert, key := ClientCertFiles(dir, identity)
	return issue(dir, tmpl, cert, key, overwrite, now)
}

// issue signs tmpl with the CA in dir and writes the pair.
func issue(dir string, tmpl *x509.Certificate, certPath, keyPath string, overwrite bool, now time.Time) error {
	if err := checkFree(overwrite, certPath, keyPath); err != nil {
		return err
	}
	ca, err := tls.LoadX509KeyPair(caCertPath(dir), caKeyPath(dir))
	if err != nil {
		return fmt.Errorf("load the mesh CA from %s (make one with: cortex cert create-ca --dir %s): %w", dir, dir, err)
	}
	caCert, err := x509.ParseCertificate(ca.Certificate[0])
	if err != nil {
		return fmt.Errorf("parse %s: %w", caCertPath(dir), err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl.NotBefore = now.Add(-time.Hour)
	tmpl.NotAfter = now.Add(CertValidity)
	if tmpl.NotAfter.After(caCert.NotAfter) {
		tmpl.NotAfter = caCert.NotAfter
	}
	der, err := sign(tmpl, caCert, &key.PublicKey, ca.PrivateKey)
	if err != nil {
		return err
	}
	return writePair(dir, certPath, keyPath, der, key)
}

func sign(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, signer any) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	ski := sha256.Sum256(pubDER)
	tmpl.SubjectKeyId = ski[:20]
	return x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
}

func checkFree(overwrite bool, paths ...string) error {
	if overwrite {
		return nil
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("%w: %s (use --overwrite to replace it)", ErrExists, p)
		}
	}
	return nil
}

func writePair(dir, certPath, keyPath string, der []byte, key *ecdsa.PrivateKey) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return writeFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// writeFile replaces path with data, with the mode given whatever the umask.
func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Identity is a loaded mesh certificate with its key.
type Identity struct {
	TLS  tls.Certificate   // certificate and private key
	Leaf *x509.Certificate // the parsed certificate
	Name string            // the subject's common name
	Kind Kind
}

// LoadIdentity loads a certificate and its key, checks that they belong
// together and that the certificate is a mesh certificate of kind want.
func LoadIdentity(certPath, keyPath string, want Kind) (*Identity, error) {
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
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
	return &Identity{TLS: pair, Leaf: leaf, Name: leaf.Subject.CommonName, Kind: kind}, nil
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
	if len(rawCerts) == 0 {
		return nil, errors.New("no certificate presented")
	}
	certs := make([]*x509.Certificate, len(rawCerts))
	for i, raw := range rawCerts {
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			return nil, fmt.Errorf("malformed certificate: %w", err)
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
	_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}})
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknown):
		return nil, fmt.Errorf("certificate of %q is not signed by this mesh's CA", leaf.Subject.CommonName)
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return nil, fmt.Errorf("certificate of %q is expired or not yet valid (valid %s to %s)", leaf.Subject.CommonName,
			leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	case errors.As(err, &invalid) && invalid.Reason == x509.IncompatibleUsage:
		if kind, kerr := KindOf(leaf); kerr == nil && kind != want {
			return nil, fmt.Errorf("certificate of %q is a %s certificate, not a %s certificate", leaf.Subject.CommonName, kind, want)
		}
		return nil, fmt.Errorf("certificate of %q cannot serve as a %s certificate: it lacks the key usage one needs (make it again with cortex cert)", leaf.Subject.CommonName, want)
	case err != nil:
		return nil, fmt.Errorf("certificate of %q: %w", leaf.Subject.CommonName, err)
	}
	kind, err := KindOf(leaf)
	if err != nil {
		return nil, err
	}
	if kind != want {
		return nil, fmt.Errorf("certificate of %q is a %s certificate, not a %s certificate", leaf.Subject.CommonName, kind, want)
	}
	if err := tables.ValidateNodeName(leaf.Subject.CommonName); err != nil {
		return nil, fmt.Errorf("certificate name: %w", err)
	}
	return leaf, nil
}

// Fingerprint is the SHA-256 of a certificate's DER bytes, as "sha256:<hex>".
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}
