// Package pki owns the mesh's certificates: the mesh CA, the node and client
// certificates it signs (with a node's role), loading them, verifying a
// peer's chain and kind, fingerprints, and the signatures nodes put on the
// system-table changes they make. It imports nothing of the project.
package pki

import (
	"cmp"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
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
	"slices"
	"strings"
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

// Validity of the certificates the mesh CA signs, unless Options.Lifetime
// says otherwise.
const (
	CAValidity   = 10 * 365 * 24 * time.Hour
	CertValidity = 5 * 365 * 24 * time.Hour
)

// Bounds of Options.Lifetime. A certificate of minutes is for trying out
// expiry and rotation; a node or client certificate never outlives its CA.
const (
	MinLifetime     = time.Minute
	MaxCALifetime   = 30 * 365 * 24 * time.Hour
	MaxCertLifetime = 10 * 365 * 24 * time.Hour
)

// backdate is how long before it is made a certificate starts to be valid,
// so that a node whose clock is a little behind accepts it at once.
const backdate = time.Hour

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

// Options are the choices, beyond its subject, of a certificate to make.
type Options struct {
	Overwrite bool          // replace files that exist
	Now       time.Time     // when it is made (zero: time.Now())
	Lifetime  time.Duration // how long it is valid (0: CAValidity or CertValidity)
	Mesh      string        // the CA only: the mesh's name, kept in the CA's subject
}

func (o Options) now() time.Time {
	if o.Now.IsZero() {
		return time.Now()
	}
	return o.Now
}

// Issued is a certificate that was made (or renewed) and where it went.
type Issued struct {
	Cert              *x509.Certificate
	CertPath, KeyPath string // KeyPath is empty for a renewal (the key stays)
	// Clamped is set when the certificate would have outlived its CA: it
	// ends with the CA instead of after Asked.
	Clamped bool
	Asked   time.Duration
}

// CheckLifetime checks a lifetime asked for a CA (ca) or a certificate it
// signs against the bounds.
func CheckLifetime(d time.Duration, ca bool) error {
	max, what := MaxCertLifetime, "a node or client certificate"
	if ca {
		max, what = MaxCALifetime, "a CA"
	}
	if d < MinLifetime || d > max {
		return fmt.Errorf("lifetime %s of %s must be between %s and %s", FormatLifetime(d), what, FormatLifetime(MinLifetime), FormatLifetime(max))
	}
	return nil
}

// validity is when a certificate made at now for lifetime ends, signed by a
// CA valid until caNotAfter: never after the CA (clamped says it was cut
// short). A CA that has expired, or ends within MinLifetime, signs nothing.
func validity(now time.Time, lifetime time.Duration, caNotAfter time.Time) (notBefore, notAfter time.Time, clamped bool, err error) {
	if caNotAfter.Sub(now) < MinLifetime {
		return time.Time{}, time.Time{}, false, fmt.Errorf("the CA expires %s: it can sign nothing more; make a new mesh CA (cortex cert create-ca) and new certificates",
			caNotAfter.UTC().Format(time.RFC3339))
	}
	notBefore, notAfter = now.Add(-backdate), now.Add(lifetime)
	if notAfter.After(caNotAfter) {
		return notBefore, caNotAfter, true, nil
	}
	return notBefore, notAfter, false, nil
}

// CreateCA makes a new mesh CA in dir: ca.crt and ca.key (mode 0600).
func CreateCA(dir string, overwrite bool, now time.Time) error {
	_, err := NewCA(dir, Options{Overwrite: overwrite, Now: now})
	return err
}

// NewCA makes a new mesh CA in dir: ca.crt and ca.key (mode 0600), valid
// for o.Lifetime (default CAValidity), with the mesh's name o.Mesh (if
// given) in its subject.
func NewCA(dir string, o Options) (Issued, error) {
	lifetime := cmp.Or(o.Lifetime, CAValidity)
	if err := CheckLifetime(lifetime, true); err != nil {
		return Issued{}, err
	}
	subject := pkix.Name{CommonName: "cortex mesh CA", Organization: []string{"cortex"}}
	if o.Mesh != "" {
		if err := checkName("mesh name", o.Mesh); err != nil {
			return Issued{}, err
		}
		subject.OrganizationalUnit = []string{meshPrefix + o.Mesh}
	}
	if err := checkFree(o.Overwrite, caCertPath(dir), caKeyPath(dir)); err != nil {
		return Issued{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Issued{}, err
	}
	now := o.now()
	tmpl := &x509.Certificate{
		Subject:               subject,
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(lifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := sign(tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return Issued{}, err
	}
	if err := writePair(dir, caCertPath(dir), caKeyPath(dir), der, key); err != nil {
		return Issued{}, err
	}
	return issued(der, caCertPath(dir), caKeyPath(dir), false, lifetime)
}

// meshPrefix marks the mesh's name in the CA subject's organizational
// unit ("mesh:home"), which can never be mistaken for a certificate kind.
const meshPrefix = "mesh:"

// MeshName returns the mesh's name in a subject (a CA's, or a
// certificate's issuer), "" if it has none.
func MeshName(n pkix.Name) string {
	for _, ou := range n.OrganizationalUnit {
		if name, ok := strings.CutPrefix(ou, meshPrefix); ok {
			return name
		}
	}
	return ""
}

func issued(der []byte, certPath, keyPath string, clamped bool, asked time.Duration) (Issued, error) {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return Issued{}, err
	}
	return Issued{Cert: c, CertPath: certPath, KeyPath: keyPath, Clamped: clamped, Asked: asked}, nil
}

// CreateNodeCert makes the certificate of node name with a role, signed by
// the CA in dir. hosts (DNS names or IP addresses) are added as SANs for the
// RPC listener; the node name itself is always a DNS SAN.
func CreateNodeCert(dir, name string, role Role, hosts []string, overwrite bool, now time.Time) error {
	_, err := NewNodeCert(dir, name, role, hosts, Options{Overwrite: overwrite, Now: now})
	return err
}

// NewNodeCert is CreateNodeCert with Options: a lifetime (default
// CertValidity, never past the CA's end).
func NewNodeCert(dir, name string, role Role, hosts []string, o Options) (Issued, error) {
	if err := ValidateName(name); err != nil {
		return Issued{}, err
	}
	if _, err := ParseRole(string(role)); err != nil {
		return Issued{}, err
	}
	var dns []string
	var ips []net.IP
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else if h != "" && h != name {
			dns = append(dns, h)
		}
	}
	cert, key := NodeCertFiles(dir, name)
	return issueNew(dir, nodeTemplate(name, role, dns, ips), cert, key, o)
}

// nodeTemplate is the subject and usage of a node certificate.
func nodeTemplate(name string, role Role, dns []string, ips []net.IP) *x509.Certificate {
	return &x509.Certificate{
		Subject: pkix.Name{CommonName: name, Organization: []string{"cortex"}, OrganizationalUnit: []string{string(KindNode)},
			ExtraNames: []pkix.AttributeTypeAndValue{{Type: oidRole, Value: string(role)}}},
		DNSNames:    append([]string{name}, slices.DeleteFunc(slices.Clone(dns), func(h string) bool { return h == name })...),
		IPAddresses: ips,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
}

// clientTemplate is the subject and usage of a client certificate.
func clientTemplate(identity string) *x509.Certificate {
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: identity, Organization: []string{"cortex"}, OrganizationalUnit: []string{string(KindClient)}},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
}

// CreateClientCert makes the certificate of a client identity, signed by the
// CA in dir.
func CreateClientCert(dir, identity string, overwrite bool, now time.Time) error {
	_, err := NewClientCert(dir, identity, Options{Overwrite: overwrite, Now: now})
	return err
}

// NewClientCert is CreateClientCert with Options: a lifetime (default
// CertValidity, never past the CA's end).
func NewClientCert(dir, identity string, o Options) (Issued, error) {
	if err := ValidateName(identity); err != nil {
		return Issued{}, fmt.Errorf("identity: %w", err)
	}
	cert, key := ClientCertFiles(dir, identity)
	return issueNew(dir, clientTemplate(identity), cert, key, o)
}

// issueNew makes a key, has the CA in dir sign tmpl for it and writes the
// pair.
func issueNew(dir string, tmpl *x509.Certificate, certPath, keyPath string, o Options) (Issued, error) {
	lifetime := cmp.Or(o.Lifetime, CertValidity)
	if err := CheckLifetime(lifetime, false); err != nil {
		return Issued{}, err
	}
	if err := checkFree(o.Overwrite, certPath, keyPath); err != nil {
		return Issued{}, err
	}
	ca, caCert, err := loadSigningCA(dir)
	if err != nil {
		return Issued{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Issued{}, err
	}
	var clamped bool
	if tmpl.NotBefore, tmpl.NotAfter, clamped, err = validity(o.now(), lifetime, caCert.NotAfter); err != nil {
		return Issued{}, err
	}
	der, err := sign(tmpl, caCert, &key.PublicKey, ca.PrivateKey)
	if err != nil {
		return Issued{}, err
	}
	if err := writePair(dir, certPath, keyPath, der, key); err != nil {
		return Issued{}, err
	}
	return issued(der, certPath, keyPath, clamped, lifetime)
}

// loadSigningCA loads the CA in dir to sign with. A CA key file its group
// or others may read or write is refused (ErrKeyTooOpen).
func loadSigningCA(dir string) (tls.Certificate, *x509.Certificate, error) {
	ca, err := LoadKeyPair(caCertPath(dir), caKeyPath(dir))
	if errors.Is(err, ErrKeyTooOpen) {
		return ca, nil, err
	}
	if err != nil {
		return ca, nil, fmt.Errorf("load the mesh CA from %s (make one with: cortex cert create-ca --dir %s): %w", dir, dir, err)
	}
	caCert, err := x509.ParseCertificate(ca.Certificate[0])
	if err != nil {
		return ca, nil, fmt.Errorf("parse %s: %w", caCertPath(dir), err)
	}
	if !caCert.IsCA {
		return ca, nil, fmt.Errorf("%s is not a CA certificate", caCertPath(dir))
	}
	return ca, caCert, nil
}

// Renew signs again, with the CA in dir, the node or client certificate at
// certPath, for o.Lifetime (default CertValidity, never past the CA's end):
// same key, name, kind, role and SANs, a new serial and validity. It
// replaces the file (atomically); the key file is not touched, so a running
// cortexd takes the new certificate on SIGHUP. A certificate that the CA in
// dir did not sign, or a CA certificate, is refused.
func Renew(dir, certPath string, o Options) (Issued, error) {
	lifetime := cmp.Or(o.Lifetime, CertValidity)
	if err := CheckLifetime(lifetime, false); err != nil {
		return Issued{}, err
	}
	data, err := os.ReadFile(certPath)
	if err != nil {
		return Issued{}, err
	}
	old, err := ParseCertPEM(data)
	if err != nil {
		return Issued{}, fmt.Errorf("%s: %w", certPath, err)
	}
	if old.IsCA {
		return Issued{}, fmt.Errorf("%s is a CA certificate: a CA is not renewed (make a new one with cortex cert create-ca, then every certificate again)", certPath)
	}
	ca, caCert, err := loadSigningCA(dir)
	if err != nil {
		return Issued{}, err
	}
	if err := old.CheckSignatureFrom(caCert); err != nil {
		return Issued{}, fmt.Errorf("%s is not signed by the CA in %s: renew it with its own CA, or make a new one with create-node or create-client", certPath, dir)
	}
	pub, ok := old.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return Issued{}, fmt.Errorf("%s: want an ECDSA key, got %T", certPath, old.PublicKey)
	}
	kind, err := KindOf(old)
	if err != nil {
		return Issued{}, fmt.Errorf("%s: %w", certPath, err)
	}
	name := old.Subject.CommonName
	if err := ValidateName(name); err != nil {
		return Issued{}, fmt.Errorf("%s: %w", certPath, err)
	}
	var tmpl *x509.Certificate
	if kind == KindNode {
		role, err := RoleOf(old)
		if err != nil {
			return Issued{}, fmt.Errorf("%s: %w", certPath, err)
		}
		tmpl = nodeTemplate(name, role, old.DNSNames, old.IPAddresses)
	} else {
		tmpl = clientTemplate(name)
	}
	var clamped bool
	if tmpl.NotBefore, tmpl.NotAfter, clamped, err = validity(o.now(), lifetime, caCert.NotAfter); err != nil {
		return Issued{}, err
	}
	der, err := sign(tmpl, caCert, pub, ca.PrivateKey)
	if err != nil {
		return Issued{}, err
	}
	if err := writeFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return Issued{}, err
	}
	return issued(der, certPath, "", clamped, lifetime)
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
