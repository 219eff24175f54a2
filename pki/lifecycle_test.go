package pki

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseLifetime(t *testing.T) {
	day := 24 * time.Hour
	for _, c := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"10y", 10 * 365 * day, false},
		{"1y", 365 * day, false},
		{"90d", 90 * day, false},
		{"12h", 12 * time.Hour, false},
		{"30m", 30 * time.Minute, false},
		{"1h30m", 90 * time.Minute, false},
		{"0d", 0, true},
		{"-5d", 0, true},
		{"1.5y", 0, true},
		{"d", 0, true},
		{"", 0, true},
		{"10", 0, true},
		{"-1h", 0, true},
		{"0s", 0, true},
		{"99999999d", 0, true},
		{"5w", 0, true},
	} {
		got, err := ParseLifetime(c.in)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("ParseLifetime(%q) = %s, %v; want %s, error %v", c.in, got, err, c.want, c.err)
		}
	}
	for _, d := range []time.Duration{10 * 365 * day, 90 * day, 12 * time.Hour, 90 * time.Minute} {
		back, err := ParseLifetime(FormatLifetime(d))
		if err != nil || back != d {
			t.Errorf("FormatLifetime(%s) = %q reads back as %s, %v", d, FormatLifetime(d), back, err)
		}
	}
}

func TestCheckLifetime(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		ca   bool
		want string
	}{
		{time.Minute, false, ""},
		{59 * time.Second, false, "between 1m0s and 10y"},
		{MaxCertLifetime, false, ""},
		{MaxCertLifetime + time.Hour, false, "of a node or client certificate must be between"},
		{MaxCALifetime, true, ""},
		{MaxCALifetime + time.Hour, true, "of a CA must be between 1m0s and 30y"},
		{0, true, "must be between"},
	} {
		err := CheckLifetime(c.d, c.ca)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("CheckLifetime(%s, %v) = %v, want %q", c.d, c.ca, err, c.want)
		}
	}
}

func TestValidityClamp(t *testing.T) {
	now := t0
	for _, c := range []struct {
		name       string
		lifetime   time.Duration
		caNotAfter time.Time
		notAfter   time.Time
		clamped    bool
		err        string
	}{
		{"within the CA", time.Hour, now.Add(48 * time.Hour), now.Add(time.Hour), false, ""},
		{"ends with the CA", 48 * time.Hour, now.Add(48 * time.Hour), now.Add(48 * time.Hour), false, ""},
		{"past the CA", 72 * time.Hour, now.Add(48 * time.Hour), now.Add(48 * time.Hour), true, ""},
		{"CA expired", time.Hour, now.Add(-time.Second), time.Time{}, false, "it can sign nothing more"},
		{"CA ends within a minute", time.Hour, now.Add(30 * time.Second), time.Time{}, false, "it can sign nothing more"},
	} {
		nb, na, clamped, err := validity(now, c.lifetime, c.caNotAfter)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || !nb.Equal(now.Add(-backdate)) || !na.Equal(c.notAfter) || clamped != c.clamped {
			t.Errorf("%s: %s to %s clamped %v (%v); want to %s clamped %v", c.name, nb, na, clamped, err, c.notAfter, c.clamped)
		}
	}
}

func TestLifetimesAndMeshName(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	ca, err := NewCA(dir, Options{Now: t0, Lifetime: 2 * 24 * time.Hour, Mesh: "home-lab"})
	if err != nil {
		t.Fatal(err)
	}
	if !ca.Cert.NotAfter.Equal(t0.Add(48*time.Hour)) || MeshName(ca.Cert.Subject) != "home-lab" || !slices.Equal(ca.Cert.Subject.OrganizationalUnit, []string{"mesh:home-lab"}) {
		t.Errorf("CA: not after %s, subject %s", ca.Cert.NotAfter, ca.Cert.Subject)
	}
	if _, err := KindOf(ca.Cert); err == nil {
		t.Error("the CA is taken for a node or client certificate")
	}
	node, err := NewNodeCert(dir, "home", RoleAdmin, nil, Options{Now: t0, Lifetime: 10 * time.Minute})
	if err != nil || !node.Cert.NotAfter.Equal(t0.Add(10*time.Minute)) || node.Clamped {
		t.Fatalf("node: %v, not after %v clamped %v", err, node.Cert.NotAfter, node.Clamped)
	}
	if MeshName(node.Cert.Issuer) != "home-lab" {
		t.Errorf("node issuer %s", node.Cert.Issuer)
	}
	// Asked past the CA's end: clamped to it, and said so.
	client, err := NewClientCert(dir, "alice", Options{Now: t0, Lifetime: 365 * 24 * time.Hour})
	if err != nil || !client.Cert.NotAfter.Equal(ca.Cert.NotAfter) || !client.Clamped || client.Asked != 365*24*time.Hour {
		t.Fatalf("client: %v, not after %v clamped %v", err, client.Cert.NotAfter, client.Clamped)
	}
	// The default is still clamped.
	dflt, err := NewNodeCert(dir, "office", RoleMember, nil, Options{Now: t0})
	if err != nil || !dflt.Cert.NotAfter.Equal(ca.Cert.NotAfter) || !dflt.Clamped || dflt.Asked != CertValidity {
		t.Fatalf("default: %v, not after %v clamped %v", err, dflt.Cert.NotAfter, dflt.Clamped)
	}
	// Out of bounds, a bad mesh name, an expired CA: refused, nothing written.
	for name, fn := range map[string]func() error{
		"short": func() error {
			_, err := NewNodeCert(dir, "short", RoleMember, nil, Options{Now: t0, Lifetime: time.Second})
			return err
		},
		"long": func() error {
			_, err := NewClientCert(dir, "long", Options{Now: t0, Lifetime: 11 * 365 * 24 * time.Hour})
			return err
		},
		"late": func() error { _, err := NewClientCert(dir, "late", Options{Now: t0.Add(49 * time.Hour)}); return err },
	} {
		if err := fn(); err == nil {
			t.Errorf("%s: accepted", name)
		}
		for _, f := range []string{"node-" + name + ".crt", "node-" + name + ".key", "client-" + name + ".crt", "client-" + name + ".key"} {
			if _, err := os.Lstat(filepath.Join(dir, f)); err == nil {
				t.Errorf("%s: wrote %s", name, f)
			}
		}
	}
	other := filepath.Join(t.TempDir(), "other")
	if _, err := NewCA(other, Options{Now: t0, Mesh: "Bad Name"}); err == nil || !strings.Contains(err.Error(), "mesh name") {
		t.Errorf("bad mesh name: %v", err)
	}
	if _, err := NewCA(other, Options{Now: t0, Lifetime: 31 * 365 * 24 * time.Hour}); err == nil {
		t.Error("a 31-year CA was made")
	}
	if _, err := os.Lstat(other); err == nil {
		t.Error("a refused CA wrote its directory")
	}
}

func TestRenew(t *testing.T) {
	dir := newCA(t, t0)
	old, err := NewNodeCert(dir, "home", RoleAdmin, []string{"127.0.0.1", "home.example.com"}, Options{Now: t0, Lifetime: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	keyBefore, _ := os.ReadFile(old.KeyPath)
	later := t0.Add(5 * time.Minute)
	got, err := Renew(dir, old.CertPath, Options{Now: later, Lifetime: 90 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c := readCert(t, old.CertPath)
	if !c.Equal(got.Cert) || got.KeyPath != "" {
		t.Error("the file does not hold the renewed certificate")
	}
	if c.SerialNumber.Cmp(old.Cert.SerialNumber) == 0 || !c.NotAfter.Equal(later.Add(90*24*time.Hour)) {
		t.Errorf("renewed: serial %s (old %s), not after %s", Serial(c), Serial(old.Cert), c.NotAfter)
	}
	role, _ := RoleOf(c)
	if c.Subject.CommonName != "home" || role != RoleAdmin || !slices.Equal(c.DNSNames, old.Cert.DNSNames) || len(c.IPAddresses) != 1 || !c.IPAddresses[0].Equal(old.Cert.IPAddresses[0]) {
		t.Errorf("renewed subject %s role %s SANs %v %v", c.Subject, role, c.DNSNames, c.IPAddresses)
	}
	if keyAfter, _ := os.ReadFile(old.KeyPath); string(keyAfter) != string(keyBefore) {
		t.Error("renew touched the key")
	}
	// The renewed certificate loads with the old key and passes as its renewal.
	oldIdent := &Identity{Leaf: old.Cert, Name: "home", Kind: KindNode, Role: RoleAdmin}
	next, err := LoadIdentity(old.CertPath, old.KeyPath, KindNode)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckRenewal(oldIdent, next, caPool(t, dir), later); err != nil {
		t.Errorf("CheckRenewal of a renewed certificate: %v", err)
	}

	// A client certificate renews too.
	if _, err := NewClientCert(dir, "alice", Options{Now: t0}); err != nil {
		t.Fatal(err)
	}
	crt, _ := ClientCertFiles(dir, "alice")
	if r, err := Renew(dir, crt, Options{Now: later}); err != nil || KindOrEmpty(r.Cert) != KindClient {
		t.Errorf("renew client: %v", err)
	}

	// Refused: another CA's certificate, the CA itself, a file that is no
	// certificate; the file stays as it was.
	other := newCA(t, t0)
	foreign, err := NewNodeCert(other, "x", RoleMember, nil, Options{Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(t.TempDir(), "garbage.crt")
	os.WriteFile(garbage, []byte("not a certificate"), 0o644)
	for _, c := range []struct{ path, want string }{
		{foreign.CertPath, "is not signed by the CA in"},
		{caCertPath(dir), "a CA is not renewed"},
		{garbage, "holds no PEM certificate"},
		{filepath.Join(dir, "none.crt"), "no such file"},
	} {
		before, _ := os.ReadFile(c.path)
		if _, err := Renew(dir, c.path, Options{Now: later}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("renew %s: %v, want %q", c.path, err, c.want)
		}
		if after, _ := os.ReadFile(c.path); string(after) != string(before) {
			t.Errorf("renew %s changed it", c.path)
		}
	}
}

// KindOrEmpty is KindOf without the error.
func KindOrEmpty(c *x509.Certificate) Kind {
	k, _ := KindOf(c)
	return k
}

func TestCheckRenewal(t *testing.T) {
	dir := newCA(t, t0)
	pool := caPool(t, dir)
	load := func(name string, role Role, lifetime time.Duration) *Identity {
		t.Helper()
		if _, err := NewNodeCert(dir, name, role, nil, Options{Now: t0, Lifetime: lifetime, Overwrite: true}); err != nil {
			t.Fatal(err)
		}
		crt, key := NodeCertFiles(dir, name)
		id, err := LoadIdentity(crt, key, KindNode)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	cur := load("home", RoleMember, time.Hour)
	crt, key := NodeCertFiles(dir, "home")
	renew := func(lifetime time.Duration) *Identity {
		t.Helper()
		if _, err := Renew(dir, crt, Options{Now: t0, Lifetime: lifetime}); err != nil {
			t.Fatal(err)
		}
		id, err := LoadIdentity(crt, key, KindNode)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	renewed := renew(90 * 24 * time.Hour)
	otherCA := newCA(t, t0)
	if _, err := NewNodeCert(otherCA, "home", RoleMember, nil, Options{Now: t0}); err != nil {
		t.Fatal(err)
	}
	oc, ok := NodeCertFiles(otherCA, "home")
	foreign, err := LoadIdentity(oc, ok, KindNode)
	if err != nil {
		t.Fatal(err)
	}
	expired := renew(time.Minute)
	adminRole := *renewed
	adminRole.Role = RoleAdmin
	client := *renewed
	client.Kind = KindClient
	for _, c := range []struct {
		name string
		next *Identity
		at   time.Time
		want string
	}{
		{"renewed", renewed, t0, ""},
		{"the same certificate", cur, t0, ""},
		{"another node", load("office", RoleMember, time.Hour), t0, `node "office", and this node is "home"`},
		{"another key", load("home", RoleMember, time.Hour), t0, "another key"},
		{"another CA", foreign, t0, "not signed by this mesh's CA"},
		{"expired", expired, t0.Add(2 * time.Minute), "expired"},
		{"another role", &adminRole, t0, "restart cortexd to take a new role"},
		{"a client certificate", &client, t0, "not a node certificate"},
	} {
		err := CheckRenewal(cur, c.next, pool, c.at)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

func TestDescribe(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	ca, err := NewCA(dir, Options{Now: t0, Mesh: "lab"})
	if err != nil {
		t.Fatal(err)
	}
	node, err := NewNodeCert(dir, "home", RoleAdmin, []string{"10.0.0.5", "home.example.com"}, Options{Now: t0, Lifetime: 20 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	in := Describe(node.Cert, t0.Add(36*time.Hour))
	want := Info{Name: "home", Kind: "node", Role: RoleAdmin, Mesh: "lab", Serial: node.Cert.SerialNumber.Text(16), Fingerprint: Fingerprint(node.Cert),
		NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(20 * 24 * time.Hour), DaysLeft: 18, ExpiresSoon: true,
		Issuer: "CN=cortex mesh CA,OU=mesh:lab,O=cortex", DNSNames: []string{"home", "home.example.com"}, IPAddresses: []string{"10.0.0.5"}}
	if !infoEqual(in, want) {
		t.Errorf("node:\n got %+v\nwant %+v", in, want)
	}
	cin := Describe(ca.Cert, t0)
	if cin.Kind != "ca" || cin.Mesh != "lab" || cin.DaysLeft != 3650 || cin.ExpiresSoon || cin.Expired {
		t.Errorf("CA: %+v", cin)
	}
	if e := Describe(node.Cert, t0.Add(21*24*time.Hour)); !e.Expired || e.DaysLeft != -1 {
		t.Errorf("expired: %+v", e)
	}
}

func infoEqual(a, b Info) bool {
	return a.Name == b.Name && a.Kind == b.Kind && a.Role == b.Role && a.Mesh == b.Mesh && a.Serial == b.Serial && a.Fingerprint == b.Fingerprint &&
		a.NotBefore.Equal(b.NotBefore) && a.NotAfter.Equal(b.NotAfter) && a.DaysLeft == b.DaysLeft && a.Expired == b.Expired &&
		a.ExpiresSoon == b.ExpiresSoon && a.Issuer == b.Issuer && slices.Equal(a.DNSNames, b.DNSNames) && slices.Equal(a.IPAddresses, b.IPAddresses)
}

func TestDaysLeft(t *testing.T) {
	day := 24 * time.Hour
	for _, c := range []struct {
		left time.Duration
		want int
		soon bool
	}{
		{10 * time.Minute, 0, true},
		{day, 1, true},
		{30*day - time.Second, 29, true},
		{30 * day, 30, false},
		{-time.Second, -1, true},
		{-day - time.Second, -2, true},
	} {
		if got := DaysLeft(t0.Add(c.left), t0); got != c.want {
			t.Errorf("DaysLeft(%s) = %d, want %d", c.left, got, c.want)
		}
		if got := ExpiresSoon(t0.Add(c.left), t0); got != c.soon {
			t.Errorf("ExpiresSoon(%s) = %v", c.left, got)
		}
	}
}

func TestParseCertPEM(t *testing.T) {
	dir := newCA(t, t0)
	node, err := NewNodeCert(dir, "home", RoleMember, nil, Options{Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	crt, _ := os.ReadFile(node.CertPath)
	key, _ := os.ReadFile(node.KeyPath)
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"certificate", crt, ""},
		{"key first", append(append([]byte{}, key...), crt...), ""},
		{"key alone", key, "holds no PEM certificate"},
		{"empty", nil, "holds no PEM certificate"},
		{"bad DER", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), "malformed certificate"},
		{"huge", make([]byte, maxCertFile+1), "too large"},
	} {
		got, err := ParseCertPEM(c.data)
		if c.want == "" && (err != nil || !got.Equal(node.Cert)) || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// FuzzParseCertPEM: whatever a file holds, reading it for cert show never
// panics, and what parses can be described.
func FuzzParseCertPEM(f *testing.F) {
	ca, err := os.ReadFile(filepath.Join("testdata", "fuzzca", "ca.crt"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ca)
	f.Add([]byte{})
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCertPEM(data)
		if err != nil {
			if c != nil || err.Error() == "" {
				t.Fatalf("certificate %v with error %q", c, err)
			}
			return
		}
		in := Describe(c, t0)
		if in.Fingerprint != Fingerprint(c) || in.Kind == "" {
			t.Fatalf("described as %+v", in)
		}
	})
}
