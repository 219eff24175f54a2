// Package pki owns the mesh's certificates: the mesh CA, the node and client
// certificates it signs (with a node's role), loading them, verifying a
// peer's chain and kind, fingerprints, and the signatures nodes put on the
// system-table changes they make. It imports nothing of the project.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Kind is what a mesh certificate is for: a node of the mesh or a client
// identity. It is carried in the subject's organizational unit.
type Kind string

// The certificate kinds.
const (
	KindNode   Kind = "node"
	KindClient Kind = "client"
)

// Role is what a node may do in the mesh beyond its own tables. It is in the
// node certificate (the subject's role attribute, X.520 id-at-role), so only
// the CA holder grants it.
type Role string

// The node roles. A certificate without a role is a member's.
const (
	// RoleMember reads and writes the tables it holds, creates tables (it is
	// their home), changes the scope of and drops the tables whose home it
	// is, and announces itself.
	RoleMember Role = "member"
	// RoleAdmin may also administer the mesh: identities, ACLs, any node's
	// tables, revoking and forgetting nodes.
	RoleAdmin Role = "admin"
)

// oidRole is X.520's id-at-role attribute type.
var oidRole = asn1.ObjectIdentifier{2, 5, 4, 72}

// ParseRole reads admin or member.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleAdmin, RoleMember:
		return r, nil
	}
	return "", fmt.Errorf("role %q: use admin or member", s)
}

// RoleOf returns the role a node certificate carries (member if none).
func RoleOf(c *x509.Certificate) (Role, error) {
	role := RoleMember
	seen := false
	for _, n := range c.Subject.Names {
		if !n.Type.Equal(oidRole) {
			continue
		}
		v, ok := n.Value.(string)
		if seen || !ok {
			return "", fmt.Errorf("certificate %q: malformed role", c.Subject.CommonName)
		}
		r, err := ParseRole(v)
		if err != nil {
			return "", fmt.Errorf("certificate %q: %w", c.Subject.CommonName, err)
		}
		role, seen = r, true
	}
	return role, nil
}

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

// CreateNodeCert makes the certificate of node name with a role, signed by
// the CA in dir. hosts (DNS names or IP addresses) are added as SANs for the
// RPC listener; the node name itself is always a DNS SAN.
func CreateNodeCert(dir, name string, role Role, hosts []string, overwrite bool, now time.Time) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	if _, err := ParseRole(string(role)); err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		Subject: pkix.Name{CommonName: name, Organization: []string{"cortex"}, OrganizationalUnit: []string{string(KindNode)},
			ExtraNames: []pkix.AttributeTypeAndValue{{Type: oidRole, Value: string(role)}}},
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
	if err := ValidateName(identity); err != nil {
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

// issue signs tmpl with the CA in dir and writes the pair. A CA key file its
// group or others may read or write is refused (ErrKeyTooOpen).
func issue(dir string, tmpl *x509.Certificate, certPath, keyPath string, overwrite bool, now time.Time) error {
	if err := checkFree(overwrite, certPath, keyPath); err != nil {
		return err
	}
	ca, err := LoadKeyPair(caCertPath(dir), caKeyPath(dir))
	if errors.Is(err, ErrKeyTooOpen) {
		return err
	}
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
