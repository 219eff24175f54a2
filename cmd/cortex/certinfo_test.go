package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/pki"
)

// info decodes one cert show --json object (numbers as int).
func info(t *testing.T, s string) pki.Info {
	t.Helper()
	var in pki.Info
	if err := json.Unmarshal([]byte(s), &in); err != nil {
		t.Fatalf("%v: %q", err, s)
	}
	return in
}

func TestCertListAndShow(t *testing.T) {
	t.Parallel()
	env := nowhere(t)
	dir := filepath.Join(t.TempDir(), "certs")
	j := func(name string) string { return filepath.Join(dir, name) }
	okEnv(t, env, "cert", "create-ca", "--dir", dir, "--mesh", "lab")
	okEnv(t, env, "cert", "create-node", "home", "--dir", dir, "--role", "admin", "--host", "10.0.0.5", "--host", "home.example.com")
	okEnv(t, env, "cert", "create-client", "alice", "--dir", dir, "--lifetime", "10m")

	home, err := pki.LoadIdentity(j("node-home.crt"), j("node-home.key"), pki.KindNode)
	if err != nil {
		t.Fatal(err)
	}
	in := info(t, okEnv(t, env, "cert", "show", j("node-home.crt"), "--json"))
	if in.File != j("node-home.crt") || in.Name != "home" || in.Kind != "node" || in.Role != pki.RoleAdmin || in.Mesh != "lab" ||
		in.Fingerprint != pki.Fingerprint(home.Leaf) || in.Serial != home.Leaf.SerialNumber.Text(16) ||
		!in.NotAfter.Equal(home.Leaf.NotAfter) || !in.NotBefore.Equal(home.Leaf.NotBefore) || in.DaysLeft != 5*365-1 && in.DaysLeft != 5*365 ||
		in.ExpiresSoon || in.Expired || in.Issuer != "CN=cortex mesh CA,OU=mesh:lab,O=cortex" ||
		strings.Join(in.DNSNames, ",") != "home,home.example.com" || strings.Join(in.IPAddresses, ",") != "10.0.0.5" {
		t.Errorf("show --json: %+v", in)
	}
	text := okEnv(t, env, "cert", "show", j("node-home.crt"))
	for _, want := range []string{`(?m)^NAME +home$`, `(?m)^KIND +node$`, `(?m)^ROLE +admin$`, `(?m)^MESH +lab$`,
		`(?m)^FINGERPRINT +` + pki.Fingerprint(home.Leaf) + `$`, `(?m)^NOT AFTER +` + home.Leaf.NotAfter.UTC().Format(time.RFC3339) + `$`,
		`(?m)^DAYS LEFT +18\d\d$`, `(?m)^ISSUER +CN=cortex mesh CA,OU=mesh:lab,O=cortex$`, `(?m)^SANS +home home.example.com 10.0.0.5$`} {
		if !regexp.MustCompile(want).MatchString(text) {
			t.Errorf("show: no %s in\n%s", want, text)
		}
	}
	if ca := info(t, okEnv(t, env, "cert", "show", j("ca.crt"), "--json")); ca.Kind != "ca" || ca.Mesh != "lab" || ca.DaysLeft < 3649 {
		t.Errorf("show ca: %+v", ca)
	}

	// list: the CA first, then by file; alice's 10 minutes expire soon.
	var list []pki.Info
	if err := json.Unmarshal([]byte(okEnv(t, env, "cert", "list", "--dir", dir, "--json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || list[0].Kind != "ca" || list[1].Name != "alice" || list[2].Name != "home" {
		t.Fatalf("list --json: %+v", list)
	}
	if a := list[1]; a.Kind != "client" || a.DaysLeft != 0 || !a.ExpiresSoon || a.Expired {
		t.Errorf("alice: %+v", a)
	}
	lines := strings.Split(strings.TrimSpace(okEnv(t, env, "cert", "list", "--dir", dir)), "\n")
	if len(lines) != 4 || !regexp.MustCompile(`^FILE +KIND +NAME +ROLE +MESH +NOT AFTER +DAYS LEFT$`).MatchString(lines[0]) ||
		!regexp.MustCompile(`^ca\.crt +ca +cortex mesh CA +- +lab +\S+ +36\d\d$`).MatchString(lines[1]) ||
		!regexp.MustCompile(`^client-alice\.crt +client +alice +- +lab +\S+ +0 \(expires soon\)$`).MatchString(lines[2]) ||
		!regexp.MustCompile(`^node-home\.crt +node +home +admin +lab +\S+ +18\d\d$`).MatchString(lines[3]) {
		t.Errorf("list:\n%s", strings.Join(lines, "\n"))
	}
	if got := okEnv(t, env, "cert", "list", "--dir", t.TempDir(), "--json"); got != "[]\n" {
		t.Errorf("empty list: %q", got)
	}

	// Bad input: a missing file or directory is exit 3, a file that is no
	// certificate exit 1 (list still lists the others), no --dir exit 2.
	fails(t, runEnv(t, env, "", "cert", "show", j("none.crt")), exitNotFound, "no such file")
	fails(t, runEnv(t, env, "", "cert", "list", "--dir", j("none")), exitNotFound, "no such directory")
	os.WriteFile(j("junk.crt"), []byte("junk"), 0o644)
	fails(t, runEnv(t, env, "", "cert", "show", j("junk.crt")), exitError, "holds no PEM certificate")
	r := runEnv(t, env, "", "cert", "list", "--dir", dir)
	if r.code != exitError || strings.Count(r.stdout, "\n") != 4 || !strings.Contains(r.stderr, "warning: "+j("junk.crt")+": holds no PEM certificate") ||
		!strings.Contains(r.stderr, "error: 1 file(s) in "+dir+" are not certificates: junk.crt") {
		t.Errorf("list with junk: %v", r)
	}
	fails(t, runEnv(t, env, "", "cert", "list"), exitUsage, "missing --dir")
	fails(t, runEnv(t, env, "", "cert", "show"), exitUsage, "")
}

func TestCertLifetime(t *testing.T) {
	t.Parallel()
	env := nowhere(t)
	dir := filepath.Join(t.TempDir(), "certs")
	j := func(name string) string { return filepath.Join(dir, name) }
	out := decode[map[string]any](t, okEnv(t, env, "--json", "cert", "create-ca", "--dir", dir, "--lifetime", "30d", "--mesh", "lab"))
	if d := out["days_left"].(json.Number).String(); d != "29" && d != "30" || out["mesh"] != "lab" {
		t.Errorf("create-ca --lifetime 30d: %v", out)
	}
	ca := info(t, okEnv(t, env, "cert", "show", j("ca.crt"), "--json"))
	now := time.Now()
	node := info(t, func() string {
		okEnv(t, env, "cert", "create-node", "home", "--dir", dir, "--lifetime", "2h")
		return okEnv(t, env, "cert", "show", j("node-home.crt"), "--json")
	}())
	if d := node.NotAfter.Sub(now); d < 2*time.Hour-time.Minute || d > 2*time.Hour+time.Minute {
		t.Errorf("--lifetime 2h: ends in %s", d)
	}
	// Past the CA: cut to the CA's end, with a note on stderr.
	r := runEnv(t, env, "", "--json", "cert", "create-client", "alice", "--dir", dir, "--lifetime", "1y")
	out = decode[map[string]any](t, r.stdout)
	if r.code != 0 || out["clamped"] != true || out["not_after"] != ca.NotAfter.Format(time.RFC3339) ||
		!strings.Contains(r.stderr, "note: the CA ends "+ca.NotAfter.Format(time.RFC3339)+", sooner than the 1y asked: "+j("client-alice.crt")+" ends with it (29 days)") {
		t.Errorf("create-client past the CA: %v", r)
	}
	// The default (5y) too.
	r = runEnv(t, env, "", "cert", "create-node", "office", "--dir", dir)
	if r.code != 0 || !strings.Contains(r.stderr, "sooner than the 5y asked") {
		t.Errorf("default past the CA: %v", r)
	}
	// Out of bounds or malformed: exit 2, nothing written.
	for _, args := range [][]string{
		{"cert", "create-node", "x", "--dir", dir, "--lifetime", "30s"},
		{"cert", "create-node", "x", "--dir", dir, "--lifetime", "11y"},
		{"cert", "create-client", "x", "--dir", dir, "--lifetime", "soon"},
		{"cert", "create-client", "x", "--dir", dir, "--lifetime", "-1d"},
		{"cert", "create-ca", "--dir", j("ca2"), "--lifetime", "31y"},
		{"cert", "create-ca", "--dir", j("ca2"), "--mesh", "Bad Mesh"},
		{"cert", "renew", j("node-home.crt"), "--dir", dir, "--lifetime", "0d"},
	} {
		fails(t, runEnv(t, env, "", args...), exitUsage, "")
	}
	for _, f := range []string{"node-x.crt", "node-x.key", "client-x.crt", "ca2"} {
		if _, err := os.Lstat(j(f)); err == nil {
			t.Errorf("a refused command wrote %s", f)
		}
	}
}

func TestCertRenew(t *testing.T) {
	t.Parallel()
	env := nowhere(t)
	dir := filepath.Join(t.TempDir(), "certs")
	j := func(name string) string { return filepath.Join(dir, name) }
	okEnv(t, env, "cert", "create-ca", "--dir", dir)
	okEnv(t, env, "cert", "create-node", "home", "--dir", dir, "--lifetime", "10m", "--host", "127.0.0.1")
	before := info(t, okEnv(t, env, "cert", "show", j("node-home.crt"), "--json"))
	key, _ := os.ReadFile(j("node-home.key"))
	got := okEnv(t, env, "cert", "renew", j("node-home.crt"), "--dir", dir, "--lifetime", "90d")
	after := info(t, okEnv(t, env, "cert", "show", j("node-home.crt"), "--json"))
	if got != "wrote "+j("node-home.crt")+" (serial "+after.Serial+", valid until "+after.NotAfter.Format(time.RFC3339)+")\n" {
		t.Errorf("renew: %q", got)
	}
	if after.Serial == before.Serial || after.DaysLeft != 89 && after.DaysLeft != 90 || after.Name != "home" || strings.Join(after.IPAddresses, ",") != "127.0.0.1" {
		t.Errorf("renewed: %+v (was %+v)", after, before)
	}
	if k, _ := os.ReadFile(j("node-home.key")); string(k) != string(key) {
		t.Error("renew changed the key")
	}
	if _, err := pki.LoadIdentity(j("node-home.crt"), j("node-home.key"), pki.KindNode); err != nil {
		t.Errorf("the renewed certificate does not load with its key: %v", err)
	}
	out := decode[map[string]any](t, okEnv(t, env, "--json", "cert", "renew", j("node-home.crt"), "--dir", dir))
	if out["kind"] != "node" || out["cert"] != j("node-home.crt") || out["key"] != nil || out["serial"] == after.Serial {
		t.Errorf("renew --json: %v", out)
	}
	other := filepath.Join(t.TempDir(), "other")
	okEnv(t, env, "cert", "create-ca", "--dir", other)
	fails(t, runEnv(t, env, "", "cert", "renew", j("node-home.crt"), "--dir", other), exitError, "is not signed by the CA in "+other)
	fails(t, runEnv(t, env, "", "cert", "renew", j("ca.crt"), "--dir", dir), exitError, "a CA is not renewed")
	fails(t, runEnv(t, env, "", "cert", "renew", j("none.crt"), "--dir", dir), exitNotFound, "no such file")
	fails(t, runEnv(t, env, "", "cert", "renew", j("node-home.crt")), exitUsage, "missing --dir")
}
