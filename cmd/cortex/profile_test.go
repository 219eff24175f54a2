package main

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestDecodeClientConfig(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, toml string
		want       map[string]profile
		def        string
		wantErr    string
	}{
		{name: "empty file", toml: ""},
		{name: "relative paths are the file's", def: "office", toml: `
default_profile = "office"
[profiles.office]
addr = "office.example.com:7947"
certs_dir = "certs"
client = "alice"
[profiles.abs]
addr = "[::1]:7947"
ca = "/etc/ca.crt"
cert = "c.crt"
key = "../k.key"
[profiles.local]
socket = "data/cortex.sock"
[profiles.who]
certs_dir = "/certs"
`, want: map[string]profile{
			"office": {Addr: "office.example.com:7947", CertsDir: "/base/certs", Client: "alice"},
			"abs":    {Addr: "[::1]:7947", CA: "/etc/ca.crt", Cert: "/base/c.crt", Key: "/k.key"},
			"local":  {Socket: "/base/data/cortex.sock"},
			"who":    {CertsDir: "/certs"},
		}},
		{name: "malformed: the line", toml: "[profiles.a]\naddr = \"h:1\"\ncerts_dir =\n", wantErr: "toml: line 3"},
		{name: "wrong type: the line", toml: "[profiles.a]\n\naddr = 7947\n", wantErr: "line 3"},
		{name: "defined twice", toml: "[profiles.a]\nsocket = \"s\"\n[profiles.a]\n", wantErr: "line 3"},
		{name: "unknown profile key", toml: "[profiles.a]\nadr = \"h:1\"\n", wantErr: `unknown key "profiles.a.adr": a profile's keys are addr, socket, certs_dir, client, ca, cert, key`},
		{name: "unknown top key", toml: "profile = \"a\"\n", wantErr: `unknown key "profile": the keys are default_profile and [profiles.NAME] tables`},
		{name: "empty profile", toml: "[profiles.a]\n", wantErr: `profile "a": it sets nothing`},
		{name: "addr and socket", toml: "[profiles.a]\naddr = \"h:1\"\nsocket = \"s\"\n", wantErr: "both addr (a remote node) and socket"},
		{name: "socket with certificates", toml: "[profiles.a]\nsocket = \"s\"\ncerts_dir = \"c\"\n", wantErr: "socket is a local node"},
		{name: "cert without key", toml: "[profiles.a]\naddr = \"h:1\"\ncert = \"c\"\n", wantErr: "cert and key go together"},
		{name: "client without a directory", toml: "[profiles.a]\naddr = \"h:1\"\nclient = \"alice\"\nca = \"c\"\n", wantErr: "client picks a certificate in certs_dir"},
		{name: "bad client", toml: "[profiles.a]\naddr = \"h:1\"\ncerts_dir = \"c\"\nclient = \"Alice/x\"\n", wantErr: `bad client "Alice/x"`},
		{name: "bad addr", toml: "[profiles.a]\naddr = \"office\"\ncerts_dir = \"c\"\n", wantErr: `profile "a": bad addr "office": give HOST:PORT`},
		{name: "unknown default", toml: "default_profile = \"home\"\n[profiles.a]\nsocket = \"s\"\n", wantErr: `default_profile "home" is not a profile here (profiles: a)`},
		{name: "default without profiles", toml: "default_profile = \"home\"\n", wantErr: "(it has no profiles)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := decodeClientConfig([]byte(c.toml), "/base")
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.DefaultProfile != c.def {
				t.Errorf("default_profile %q, want %q", got.DefaultProfile, c.def)
			}
			if len(got.Profiles) != len(c.want) {
				t.Errorf("profiles %q, want %d", got.names(), len(c.want))
			}
			for name, want := range c.want {
				if p := got.Profiles[name]; p == nil || *p != want {
					t.Errorf("profile %s: %+v, want %+v", name, p, want)
				}
			}
		})
	}
}

func TestConfigPath(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		flag     string
		env      map[string]string
		want     string
		explicit bool
	}{
		{flag: "my.toml", env: map[string]string{"CORTEX_CONFIG": "/e.toml", "HOME": "/home/u"}, want: "my.toml", explicit: true},
		{env: map[string]string{"CORTEX_CONFIG": "/e.toml", "XDG_CONFIG_HOME": "/x"}, want: "/e.toml", explicit: true},
		{env: map[string]string{"XDG_CONFIG_HOME": "/x", "HOME": "/home/u"}, want: "/x/cortex/config.toml"},
		{env: map[string]string{"XDG_CONFIG_HOME": "relative", "HOME": "/home/u"}, want: "/home/u/.config/cortex/config.toml"},
		{env: map[string]string{"HOME": "/home/u"}, want: "/home/u/.config/cortex/config.toml"},
		{env: map[string]string{}, want: ""},
	} {
		got, explicit := configPath(c.flag, func(k string) string { return c.env[k] })
		if got != c.want || explicit != c.explicit {
			t.Errorf("configPath(%q, %v) = %q, %v; want %q, %v", c.flag, c.env, got, explicit, c.want, c.explicit)
		}
	}
}

func TestSelectProfile(t *testing.T) {
	t.Parallel()
	office, home := &profile{Addr: "o:1"}, &profile{Socket: "s"}
	cfg := clientConfig{path: "/c.toml", Profiles: map[string]*profile{"office": office, "home": home}}
	withDefault := cfg
	withDefault.DefaultProfile = "home"
	for _, c := range []struct {
		cfg        clientConfig
		flag, env  string
		want       string
		wantErr    string
		wantUsage  bool
		wantOfFile *profile
	}{
		{cfg: cfg},
		{cfg: cfg, flag: "office", env: "home", want: "office", wantOfFile: office},
		{cfg: cfg, env: "home", want: "home", wantOfFile: home},
		{cfg: withDefault, want: "home", wantOfFile: home},
		{cfg: withDefault, env: "office", want: "office", wantOfFile: office},
		{cfg: cfg, flag: "ofice", wantErr: `--profile "ofice": no such profile in /c.toml (profiles: home, office)`},
		{cfg: cfg, env: "x", wantErr: `$CORTEX_PROFILE "x": no such profile`},
		{cfg: clientConfig{path: "/none.toml", missing: true}, flag: "office", wantErr: `--profile "office": no configuration file /none.toml: write one (see docs/examples/cortex-client.toml) or give --config FILE`},
		{cfg: clientConfig{}, flag: "office", wantErr: "no configuration file: give --config FILE or $CORTEX_CONFIG"},
	} {
		name, p, err := selectProfile(c.cfg, c.flag, c.env)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("selectProfile(%q, %q): %v, want %q", c.flag, c.env, err, c.wantErr)
			}
			continue
		}
		if err != nil || name != c.want || p != c.wantOfFile {
			t.Errorf("selectProfile(%q, %q) = %q, %v, %v; want %q", c.flag, c.env, name, p, err, c.want)
		}
	}
}

// The sample client configuration in docs/examples decodes and sets every
// key a profile has: a key added to profile must be explained there.
func TestSampleClientConfigHasEveryKey(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../docs/examples/cortex-client.toml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := decodeClientConfig(data, "/etc/cortex")
	if err != nil {
		t.Fatalf("the sample does not decode: %v", err)
	}
	if cfg.Profiles["office"].CertsDir != "/etc/cortex/certs" {
		t.Errorf("certs_dir is not relative to the file: %+v", cfg.Profiles["office"])
	}
	var keys []string
	for _, typ := range []reflect.Type{reflect.TypeFor[clientConfig](), reflect.TypeFor[profile]()} {
		for i := range typ.NumField() {
			if key := typ.Field(i).Tag.Get("toml"); key != "" && key != "profiles" {
				keys = append(keys, key)
			}
		}
	}
	if !slices.Equal(keys[1:], profileKeys) {
		t.Errorf("profileKeys %q, the struct has %q", profileKeys, keys[1:])
	}
	for _, key := range keys {
		if !regexp.MustCompile(`(?m)^` + key + ` = `).Match(data) {
			t.Errorf("the sample configuration does not set %s", key)
		}
	}
}

// Decoding any bytes returns a configuration whose profiles pass their
// own check and whose paths are absolute, or an error; never a panic.
func FuzzClientConfig(f *testing.F) {
	if sample, err := os.ReadFile("../../docs/examples/cortex-client.toml"); err == nil {
		f.Add(sample)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := decodeClientConfig(data, "/base")
		if err != nil {
			if cfg.Profiles != nil || cfg.DefaultProfile != "" {
				t.Fatalf("an error and a configuration: %v, %+v", err, cfg)
			}
			return
		}
		if d := cfg.DefaultProfile; d != "" && cfg.Profiles[d] == nil {
			t.Fatalf("default_profile %q is not a profile", d)
		}
		for name, p := range cfg.Profiles {
			if err := p.check(); err != nil {
				t.Fatalf("profile %q passed, then fails its check: %v", name, err)
			}
			for _, f := range []string{p.Socket, p.CertsDir, p.CA, p.Cert, p.Key} {
				if f != "" && !filepath.IsAbs(f) {
					t.Fatalf("profile %q: path %q is not absolute", name, f)
				}
			}
		}
	})
}
