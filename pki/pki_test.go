package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// t0 is the "now" of the certificates made by these tests, to the second
// (certificates keep no finer time).
var t0 = time.Now().UTC().Truncate(time.Second)

// readCert parses the PEM certificate at path.
func readCert(t testing.TB, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" || len(strings.TrimSpace(string(rest))) != 0 {
		t.Fatalf("%s is not exactly one PEM certificate", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newCA makes a CA in a new directory at time now.
func newCA(t testing.TB, now time.Time) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "certs")
	if err := CreateCA(dir, false, now); err != nil {
		t.Fatal(err)
	}
	return dir
}

func caPool(t testing.TB, dir string) *x509.CertPool {
	t.Helper()
	pool, err := LoadCA(caCertPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	return pool
}

func nodeCert(t testing.TB, dir, name string, hosts ...string) *x509.Certificate {
	t.Helper()
	if err := CreateNodeCert(dir, name, RoleMember, hosts, false, t0); err != nil {
		t.Fatal(err)
	}
	crt, _ := NodeCertFiles(dir, name)
	return readCert(t, crt)
}

func clientCert(t testing.TB, dir, name string) *x509.Certificate {
	t.Helper()
	if err := CreateClientCert(dir, name, false, t0); err != nil {
		t.Fatal(err)
	}
	crt, _ := ClientCertFiles(dir, name)
	return readCert(t, crt)
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestCreateCAFilesAndModes(t *testing.T) {
	dir := newCA(t, t0)
	if m := mode(t, dir); m != 0o700 {
		t.Errorf("new directory mode %o, want 700", m)
	}
	for path, want := range map[string]os.FileMode{caCertPath(dir): 0o644, caKeyPath(dir): 0o600} {
		if m := mode(t, path); m != want {
			t.Errorf("%s: mode %o, want %o", filepath.Base(path), m, want)
		}
	}
	key, _ := os.ReadFile(caKeyPath(dir))
	if block, _ := pem.Decode(key); block == nil || block.Type != "PRIVATE KEY" {
		t.Errorf("ca.key is not a PEM PKCS#8 private key")
	}
	ca := readCert(t, caCertPath(dir))
	if !ca.IsCA || !ca.BasicConstraintsValid || ca.MaxPathLen != 0 || !ca.MaxPathLenZero {
		t.Errorf("CA constraints: IsCA %v, MaxPathLen %d, zero %v", ca.IsCA, ca.MaxPathLen, ca.MaxPathLenZero)
	}
	if ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("CA cannot sign certificates: key usage %b", ca.KeyUsage)
	}
	if ca.Subject.CommonName != "cortex mesh CA" || ca.Issuer.CommonName != ca.Subject.CommonName {
		t.Errorf("CA subject %q, issuer %q", ca.Subject, ca.Issuer)
	}
	if err := ca.CheckSignatureFrom(ca); err != nil {
		t.Errorf("CA is not self-signed: %v", err)
	}
	// No temporary files are left behind.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("left behind %s", e.Name())
		}
	}
	// An existing directory keeps its mode; the key is 0600 whatever the umask.
	other := t.TempDir()
	os.Chmod(other, 0o755)
	if err := CreateCA(other, false, t0); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, other); m != 0o755 {
		t.Errorf("existing directory mode changed to %o", m)
	}
	if m := mode(t, caKeyPath(other)); m != 0o600 {
		t.Errorf("ca.key mode %o in an existing directory", m)
	}
}

func TestCertKeyModesAndFiles(t *testing.T) {
	dir := newCA(t, t0)
	nodeCert(t, dir, "home")
	clientCert(t, dir, "alice")
	for _, pair := range [][2]string{
		{filepath.Join(dir, "node-home.crt"), filepath.Join(dir, "node-home.key")},
		{filepath.Join(dir, "client-alice.crt"), filepath.Join(dir, "client-alice.key")},
	} {
		if m := mode(t, pair[0]); m != 0o644 {
			t.Errorf("%s: mode %o, want 644", filepath.Base(pair[0]), m)
		}
		if m := mode(t, pair[1]); m != 0o600 {
			t.Errorf("%s: mode %o, want 600", filepath.Base(pair[1]), m)
		}
		if _, err := tls.LoadX509KeyPair(pair[0], pair[1]); err != nil {
			t.Errorf("%s and its key: %v", filepath.Base(pair[0]), err)
		}
	}
	crt, key := NodeCertFiles(dir, "n1")
	if crt != filepath.Join(dir, "node-n1.crt") || key != filepath.Join(dir, "node-n1.key") {
		t.Errorf("NodeCertFiles: %s %s", crt, key)
	}
	crt, key = ClientCertFiles(dir, "bob")
	if crt != filepath.Join(dir, "client-bob.crt") || key != filepath.Join(dir, "client-bob.key") {
		t.Errorf("ClientCertFiles: %s %s", crt, key)
	}
}

func TestNoOverwriteWithoutFlag(t *testing.T) {
	dir := newCA(t, t0)
	nodeCert(t, dir, "home")
	clientCert(t, dir, "alice")
	nodeCrt, nodeKey := NodeCertFiles(dir, "home")
	clientCrt, _ := ClientCertFiles(dir, "alice")
	for _, c := range []struct {
		name   string
		create func(overwrite bool) error
		files  []string
	}{
		{"ca", func(o bool) error { return CreateCA(dir, o, t0) }, []string{caCertPath(dir), caKeyPath(dir)}},
		{"node", func(o bool) error { return CreateNodeCert(dir, "home", RoleMember, nil, o, t0) }, []string{nodeCrt, nodeKey}},
		{"client", func(o bool) error { return CreateClientCert(dir, "alice", o, t0) }, []string{clientCrt}},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := map[string][]byte{}
			for _, f := range c.files {
				before[f], _ = os.ReadFile(f)
			}
			err := c.create(false)
			if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "--overwrite") {
				t.Fatalf("without overwrite: %v, want ErrExists saying --overwrite", err)
			}
			for _, f := range c.files {
				if now, _ := os.ReadFile(f); string(now) != string(before[f]) {
					t.Errorf("%s changed although nothing may be overwritten", filepath.Base(f))
				}
			}
			if err := c.create(true); err != nil {
				t.Fatalf("with overwrite: %v", err)
			}
			for _, f := range c.files {
				if now, _ := os.ReadFile(f); string(now) == string(before[f]) {
					t.Errorf("%s not replaced with overwrite", filepath.Base(f))
				}
			}
		})
	}
	// Only one of the pair present is enough to refuse.
	os.Remove(nodeKey)
	if err := CreateNodeCert(dir, "home", RoleMember, nil, false, t0); !errors.Is(err, ErrExists) {
		t.Errorf("with the certificate left: %v, want ErrExists", err)
	}
}

func TestNodeCertificate(t *testing.T) {
	dir := newCA(t, t0)
	for _, c := range []struct {
		name    string
		hosts   []string
		wantDNS []string
		wantIP  []string
	}{
		{"home", nil, []string{"home"}, nil},
		{"office", []string{"office.example.com", "127.0.0.1", "::1", "localhost"}, []string{"office", "office.example.com", "localhost"}, []string{"127.0.0.1", "::1"}},
		// The name itself and empty hosts are not repeated.
		{"laptop", []string{"laptop", "", "10.0.0.7"}, []string{"laptop"}, []string{"10.0.0.7"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			crt := nodeCert(t, dir, c.name, c.hosts...)
			if crt.Subject.CommonName != c.name {
				t.Errorf("CN %q", crt.Subject.CommonName)
			}
			if !slices.Equal(crt.Subject.OrganizationalUnit, []string{"node"}) {
				t.Errorf("OU %q, want node", crt.Subject.OrganizationalUnit)
			}
			if k, err := KindOf(crt); k != KindNode || err != nil {
				t.Errorf("KindOf: %q %v", k, err)
			}
			if !slices.Equal(crt.DNSNames, c.wantDNS) {
				t.Errorf("DNS SANs %q, want %q", crt.DNSNames, c.wantDNS)
			}
			var ips []string
			for _, ip := range crt.IPAddresses {
				ips = append(ips, ip.String())
			}
			if !slices.Equal(ips, c.wantIP) {
				t.Errorf("IP SANs %q, want %q", ips, c.wantIP)
			}
			if !slices.Equal(crt.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
				t.Errorf("EKU %v, want server and client auth", crt.ExtKeyUsage)
			}
			if crt.IsCA || crt.KeyUsage&x509.KeyUsageCertSign != 0 {
				t.Errorf("a node certificate can sign certificates")
			}
			// The server name check of a TLS client passes for every SAN.
			for _, h := range append(slices.Clone(c.wantDNS), c.wantIP...) {
				if err := crt.VerifyHostname(h); err != nil {
					t.Errorf("VerifyHostname(%s): %v", h, err)
				}
			}
			if err := crt.VerifyHostname("elsewhere.example.com"); err == nil {
				t.Errorf("valid for a host it was not made for")
			}
		})
	}
}

func TestClientCertificate(t *testing.T) {
	dir := newCA(t, t0)
	crt := clientCert(t, dir, "alice")
	if crt.Subject.CommonName != "alice" || !slices.Equal(crt.Subject.OrganizationalUnit, []string{"client"}) {
		t.Errorf("subject %q", crt.Subject)
	}
	if k, err := KindOf(crt); k != KindClient || err != nil {
		t.Errorf("KindOf: %q %v", k, err)
	}
	if !slices.Equal(crt.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("EKU %v, want client auth only", crt.ExtKeyUsage)
	}
	if len(crt.DNSNames) != 0 || len(crt.IPAddresses) != 0 {
		t.Errorf("client certificate has SANs: %q %v", crt.DNSNames, crt.IPAddresses)
	}
}

func TestBadNames(t *testing.T) {
	dir := newCA(t, t0)
	for _, name := range []string{"", "Home", "-x", "a b", "a/b", "../x", strings.Repeat("a", 64), "é"} {
		if err := CreateNodeCert(dir, name, RoleMember, nil, false, t0); err == nil {
			t.Errorf("node name %q accepted", name)
		}
		if err := CreateClientCert(dir, name, false, t0); err == nil || !strings.Contains(err.Error(), "identity") {
			t.Errorf("identity %q: %v", name, err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("bad names wrote files: %d entries", len(entries))
	}
}

func TestIssueWithoutCA(t *testing.T) {
	dir := t.TempDir()
	err := CreateNodeCert(dir, "home", RoleMember, nil, false, t0)
	if err == nil || !strings.Contains(err.Error(), "cortex cert create-ca --dir "+dir) {
		t.Fatalf("no CA: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("files written without a CA: %v", entries)
	}
}

func TestSerialsRandomAndDistinct(t *testing.T) {
	seen := map[string]string{}
	add := func(what string, c *x509.Certificate) {
		if c.SerialNumber.Sign() <= 0 {
			t.Errorf("%s: serial %v is not positive", what, c.SerialNumber)
		}
		// 127 random bits: one under 2^64 happens once in 2^63.
		if c.SerialNumber.BitLen() <= 64 {
			t.Errorf("%s: serial %v is not random", what, c.SerialNumber)
		}
		if prev, ok := seen[c.SerialNumber.String()]; ok {
			t.Errorf("%s has the serial of %s", what, prev)
		}
		seen[c.SerialNumber.String()] = what
		if len(c.SubjectKeyId) != 20 {
			t.Errorf("%s: subject key id of %d bytes", what, len(c.SubjectKeyId))
		}
	}
	for i := range 3 {
		dir := newCA(t, t0)
		add("ca", readCert(t, caCertPath(dir)))
		for j := range 3 {
			name := string(rune('a'+i)) + string(rune('a'+j))
			add("node "+name, nodeCert(t, dir, name))
			add("client "+name, clientCert(t, dir, name))
		}
		// The same name made again gets a new serial.
		if err := CreateClientCert(dir, "aa", true, t0); err == nil {
			crt, _ := ClientCertFiles(dir, "aa")
			add("client aa again", readCert(t, crt))
		}
	}
}

func TestValidity(t *testing.T) {
	dir := newCA(t, t0)
	ca := readCert(t, caCertPath(dir))
	check := func(what string, c *x509.Certificate, notBefore, notAfter time.Time) {
		t.Helper()
		if !c.NotBefore.Equal(notBefore) || !c.NotAfter.Equal(notAfter) {
			t.Errorf("%s: valid %s to %s, want %s to %s", what, c.NotBefore, c.NotAfter, notBefore, notAfter)
		}
	}
	check("CA", ca, t0.Add(-time.Hour), t0.Add(CAValidity))
	check("node", nodeCert(t, dir, "home"), t0.Add(-time.Hour), t0.Add(CertValidity))
	check("client", clientCert(t, dir, "alice"), t0.Add(-time.Hour), t0.Add(CertValidity))
	if CAValidity != 10*365*24*time.Hour || CertValidity != 5*365*24*time.Hour {
		t.Errorf("validity: CA %s, certificates %s", CAValidity, CertValidity)
	}

	// Made six years into the CA's life, a certificate ends with the CA.
	late := t0.Add(6 * 365 * 24 * time.Hour)
	if err := CreateNodeCert(dir, "late", RoleMember, nil, false, late); err != nil {
		t.Fatal(err)
	}
	crt, _ := NodeCertFiles(dir, "late")
	check("node made late", readCert(t, crt), late.Add(-time.Hour), ca.NotAfter)
	if err := CreateClientCert(dir, "late", false, late); err != nil {
		t.Fatal(err)
	}
	crt, _ = ClientCertFiles(dir, "late")
	check("client made late", readCert(t, crt), late.Add(-time.Hour), ca.NotAfter)
}

// signWith makes a certificate signed by the CA in dir from tmpl, bypassing
// the checks of CreateNodeCert and CreateClientCert.
func signWith(t testing.TB, dir string, tmpl *x509.Certificate) []byte {
	t.Helper()
	ca, err := tls.LoadX509KeyPair(caCertPath(dir), caKeyPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(ca.Certificate[0])
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl.SerialNumber = big.NewInt(42)
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore, tmpl.NotAfter = t0.Add(-time.Hour), t0.Add(time.Hour)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, ca.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestVerify(t *testing.T) {
	dir := newCA(t, t0)
	pool := caPool(t, dir)
	node := nodeCert(t, dir, "home", "127.0.0.1")
	client := clientCert(t, dir, "alice")
	other := newCA(t, t0)
	otherNode := nodeCert(t, other, "home")
	otherClient := clientCert(t, other, "alice")
	ca := readCert(t, caCertPath(dir))
	// Old certificates: made ten years ago by a CA made then, checked now.
	old := newCA(t, t0.Add(-11*365*24*time.Hour))
	if err := CreateClientCert(old, "old", false, t0.Add(-6*365*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	oldCrt, _ := ClientCertFiles(old, "old")
	// One certificate made by the CA in the future (a skewed clock).
	if err := CreateClientCert(dir, "future", false, t0.Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	futureCrt, _ := ClientCertFiles(dir, "future")
	unmarked := signWith(t, dir, &x509.Certificate{Subject: pkix.Name{CommonName: "plain"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	serverOnly := signWith(t, dir, &x509.Certificate{Subject: pkix.Name{CommonName: "web"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	badName := signWith(t, dir, &x509.Certificate{Subject: pkix.Name{CommonName: "Bad Name", OrganizationalUnit: []string{"client"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	twoOU := signWith(t, dir, &x509.Certificate{Subject: pkix.Name{CommonName: "two", OrganizationalUnit: []string{"client", "node"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}})
	// A client marked as a node (OU node but only client auth): wrong usage.
	nodeNoServer := signWith(t, dir, &x509.Certificate{Subject: pkix.Name{CommonName: "nn", OrganizationalUnit: []string{"node"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})

	// The refusals errors.Is tells apart (metrics count by them); the
	// others have no reason of their own.
	reasons := map[string]error{
		"node of another CA": ErrForeignCA, "client of another CA": ErrForeignCA, "another CA's chain": ErrForeignCA,
		"client as node": ErrWrongKind, "node as client": ErrWrongKind,
		"expired node": ErrExpired, "expired client": ErrExpired, "old client, old CA": ErrExpired, "not yet valid": ErrExpired,
	}
	for _, c := range []struct {
		name  string
		raw   [][]byte
		pool  *x509.CertPool
		want  Kind
		now   time.Time
		error string // "" when it must pass
	}{
		{"node as node", [][]byte{node.Raw}, pool, KindNode, t0, ""},
		{"node with the CA in the chain", [][]byte{node.Raw, ca.Raw}, pool, KindNode, t0, ""},
		{"client as client", [][]byte{client.Raw}, pool, KindClient, t0, ""},
		{"node at the end of its life", [][]byte{node.Raw}, pool, KindNode, t0.Add(CertValidity - time.Second), ""},
		{"node within the hour back", [][]byte{node.Raw}, pool, KindNode, t0.Add(-59 * time.Minute), ""},
		{"node of another CA", [][]byte{otherNode.Raw}, pool, KindNode, t0, `certificate of "home" is not signed by this mesh's CA`},
		{"client of another CA", [][]byte{otherClient.Raw}, pool, KindClient, t0, `certificate of "alice" is not signed by this mesh's CA`},
		{"another CA's chain", [][]byte{otherNode.Raw, readCert(t, caCertPath(other)).Raw}, pool, KindNode, t0, "not signed by this mesh's CA"},
		{"client as node", [][]byte{client.Raw}, pool, KindNode, t0, `certificate of "alice" is a client certificate, not a node certificate`},
		{"node as client", [][]byte{node.Raw}, pool, KindClient, t0, `certificate of "home" is a node certificate, not a client certificate`},
		{"expired node", [][]byte{node.Raw}, pool, KindNode, t0.Add(CertValidity + time.Minute), `certificate of "home" is expired`},
		{"expired client", [][]byte{client.Raw}, pool, KindClient, t0.Add(6 * 365 * 24 * time.Hour), "expired"},
		{"old client, old CA", [][]byte{readCert(t, oldCrt).Raw}, caPool(t, old), KindClient, t0, "expired"},
		{"not yet valid", [][]byte{readCert(t, futureCrt).Raw}, pool, KindClient, t0, "not yet valid"},
		{"the CA itself", [][]byte{ca.Raw}, pool, KindClient, t0, "not marked as a cortex node or client certificate"},
		{"unmarked", [][]byte{unmarked}, pool, KindClient, t0, `"plain" is not marked as a cortex node or client certificate`},
		{"unmarked server certificate as client", [][]byte{serverOnly}, pool, KindClient, t0, `"web" cannot serve as a client certificate`},
		{"two kinds", [][]byte{twoOU}, pool, KindClient, t0, "not marked"},
		{"node kind without server auth", [][]byte{nodeNoServer}, pool, KindNode, t0, `"nn" cannot serve as a node certificate`},
		{"bad name", [][]byte{badName}, pool, KindClient, t0, "certificate name"},
		{"nothing", nil, pool, KindNode, t0, "no certificate presented"},
		{"garbage", [][]byte{[]byte("not a certificate")}, pool, KindNode, t0, "malformed certificate"},
		{"garbage after the leaf", [][]byte{node.Raw, {0x30, 0x03, 0x02, 0x01}}, pool, KindNode, t0, "malformed certificate"},
	} {
		t.Run(c.name, func(t *testing.T) {
			leaf, err := Verify(c.raw, c.pool, c.want, c.now)
			if c.error == "" {
				if err != nil || leaf == nil {
					t.Fatalf("refused: %v", err)
				}
				if k, _ := KindOf(leaf); k != c.want {
					t.Errorf("leaf kind %q", k)
				}
				return
			}
			if err == nil {
				t.Fatalf("passed, want %q", c.error)
			}
			if leaf != nil {
				t.Errorf("a leaf returned with an error")
			}
			if !strings.Contains(err.Error(), c.error) {
				t.Errorf("error %q, want %q", err, c.error)
			}
			for _, r := range []error{ErrForeignCA, ErrExpired, ErrWrongKind} {
				if errors.Is(err, r) != (reasons[c.name] == r) {
					t.Errorf("errors.Is(%q, %v) = %v, want the reason %v", err, r, errors.Is(err, r), reasons[c.name])
				}
			}
		})
	}
}

func TestLoadIdentity(t *testing.T) {
	dir := newCA(t, t0)
	nodeCert(t, dir, "home")
	nodeCert(t, dir, "office")
	clientCert(t, dir, "alice")
	homeCrt, homeKey := NodeCertFiles(dir, "home")
	_, officeKey := NodeCertFiles(dir, "office")
	aliceCrt, aliceKey := ClientCertFiles(dir, "alice")
	// A certificate given as the key, with a key's mode.
	crtAsKey := filepath.Join(dir, "crt-as.key")
	if b, err := os.ReadFile(homeCrt); err != nil || os.WriteFile(crtAsKey, b, 0o600) != nil {
		t.Fatal(err)
	}

	id, err := LoadIdentity(homeCrt, homeKey, KindNode)
	if err != nil {
		t.Fatal(err)
	}
	if id.Name != "home" || id.Kind != KindNode || id.Leaf == nil || id.TLS.Leaf != id.Leaf || id.TLS.PrivateKey == nil {
		t.Errorf("identity %+v", id)
	}
	if id, err := LoadIdentity(aliceCrt, aliceKey, KindClient); err != nil || id.Name != "alice" || id.Kind != KindClient {
		t.Errorf("client identity %+v %v", id, err)
	}

	for _, c := range []struct {
		name, crt, key string
		want           Kind
		error          string
	}{
		{"key of another certificate", homeCrt, officeKey, KindNode, "private key does not match public key"},
		{"client key with a node certificate", homeCrt, aliceKey, KindNode, "does not match"},
		{"client as node", aliceCrt, aliceKey, KindNode, "is a client certificate, not a node certificate"},
		{"node as client", homeCrt, homeKey, KindClient, "is a node certificate, not a client certificate"},
		{"the CA", caCertPath(dir), caKeyPath(dir), KindNode, "not marked as a cortex node or client certificate"},
		{"missing certificate", filepath.Join(dir, "none.crt"), homeKey, KindNode, "none.crt"},
		{"missing key", homeCrt, filepath.Join(dir, "none.key"), KindNode, "none.key"},
		{"certificate as key", homeCrt, crtAsKey, KindNode, "load"},
	} {
		t.Run(c.name, func(t *testing.T) {
			id, err := LoadIdentity(c.crt, c.key, c.want)
			if err == nil || id != nil {
				t.Fatalf("loaded: %+v", id)
			}
			if !strings.Contains(err.Error(), c.error) {
				t.Errorf("error %q, want %q", err, c.error)
			}
		})
	}
}

func TestLoadCA(t *testing.T) {
	dir := newCA(t, t0)
	if _, err := LoadCA(caCertPath(dir)); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCA(filepath.Join(dir, "none.crt")); err == nil || !strings.Contains(err.Error(), "load mesh CA") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := LoadCA(caKeyPath(dir)); err == nil || !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Errorf("a key as the CA: %v", err)
	}
}

func TestFingerprint(t *testing.T) {
	dir := newCA(t, t0)
	a, b := clientCert(t, dir, "a"), clientCert(t, dir, "b")
	fa := Fingerprint(a)
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(fa) {
		t.Errorf("fingerprint %q", fa)
	}
	if fa == Fingerprint(b) || fa != Fingerprint(a) {
		t.Errorf("fingerprints are not per certificate")
	}
}

// FuzzVerify feeds arbitrary bytes as the certificates a peer presents:
// Verify never panics, and whatever it accepts is a well-formed mesh
// certificate of the kind asked for. The seeds in testdata/fuzz/FuzzVerify
// hold real certificates of the CA in testdata/fuzzca (valid at fuzzNow),
// of another CA, and truncated or altered ones.
func FuzzVerify(f *testing.F) {
	pool, err := LoadCA(filepath.Join("testdata", "fuzzca", "ca.crt"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte{}, []byte{}, false)
	f.Add([]byte("not a certificate"), []byte{}, true)
	f.Fuzz(func(t *testing.T, leaf, second []byte, node bool) {
		raw := [][]byte{leaf}
		if len(second) > 0 {
			raw = append(raw, second)
		}
		want := KindClient
		if node {
			want = KindNode
		}
		c, err := Verify(raw, pool, want, fuzzNow)
		if err != nil {
			if c != nil {
				t.Fatalf("a certificate returned with the error %v", err)
			}
			if err.Error() == "" {
				t.Fatal("an empty error")
			}
			return
		}
		if k, err := KindOf(c); err != nil || k != want {
			t.Fatalf("accepted a %q certificate as %q (%v)", k, want, err)
		}
		if _, err := x509.ParseCertificate(leaf); err != nil {
			t.Fatalf("accepted bytes that do not parse: %v", err)
		}
		if fuzzNow.Before(c.NotBefore) || fuzzNow.After(c.NotAfter) {
			t.Fatalf("accepted a certificate outside its validity")
		}
	})
}

// fuzzNow is when the certificates of testdata/fuzzca are valid.
var fuzzNow = time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)

// TestFuzzSeedsReachAccept checks that the committed seeds still exercise
// Verify's accepting path: the valid seeds pass at fuzzNow.
func TestFuzzSeedsReachAccept(t *testing.T) {
	pool, err := LoadCA(filepath.Join("testdata", "fuzzca", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]Kind{"node_as_node": KindNode, "client_as_client": KindClient, "node_with_ca": KindNode} {
		data, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzVerify", name))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(data), "\n")
		leaf, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := Verify([][]byte{[]byte(leaf)}, pool, want, fuzzNow); err != nil {
			t.Errorf("seed %s is refused: %v", name, err)
		}
	}
}

// The role is in the certificate: admin or member (the default, also for a
// certificate made before roles existed); Verify refuses an unknown one.
func TestNodeRole(t *testing.T) {
	dir := newCA(t, t0)
	for _, role := range []Role{RoleAdmin, RoleMember} {
		name := string(role) + "1"
		if err := CreateNodeCert(dir, name, role, nil, false, t0); err != nil {
			t.Fatal(err)
		}
		crt, key := NodeCertFiles(dir, name)
		if got, err := RoleOf(readCert(t, crt)); err != nil || got != role {
			t.Errorf("RoleOf(%s) = %q, %v", role, got, err)
		}
		id, err := LoadIdentity(crt, key, KindNode)
		if err != nil || id.Role != role {
			t.Fatalf("LoadIdentity: %+v, %v", id, err)
		}
	}
	if err := CreateNodeCert(dir, "x", Role("root"), nil, false, t0); err == nil {
		t.Error("made a certificate with role root")
	}
	// A certificate without the attribute is a member's.
	if got, err := RoleOf(&x509.Certificate{}); err != nil || got != RoleMember {
		t.Errorf("no role: %q, %v", got, err)
	}
	// An unknown role, as another tool might write it, is refused by Verify.
	ca, err := tls.LoadX509KeyPair(caCertPath(dir), caKeyPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(ca.Certificate[0])
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(time.Hour),
		Subject: pkix.Name{CommonName: "odd", OrganizationalUnit: []string{"node"},
			ExtraNames: []pkix.AttributeTypeAndValue{{Type: oidRole, Value: "root"}}},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, ca.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify([][]byte{der}, caPool(t, dir), KindNode, t0); err == nil || !strings.Contains(err.Error(), "root") {
		t.Errorf("Verify of a certificate with role root: %v", err)
	}
}
