package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/cortex-mesh/cortex/scope"
)

// clientConfig is cortex's configuration file: named profiles, each saying
// which node to call and with which certificate.
type clientConfig struct {
	// DefaultProfile is used when neither --profile nor $CORTEX_PROFILE
	// names one.
	DefaultProfile string              `toml:"default_profile"`
	Profiles       map[string]*profile `toml:"profiles"`

	path    string // the file read ("" if none)
	missing bool   // the file does not exist
}

// profile is one [profiles.NAME] table: the same settings as the flags.
// Relative paths are relative to the configuration file's directory.
type profile struct {
	Addr     string `toml:"addr"`
	Socket   string `toml:"socket"`
	CertsDir string `toml:"certs_dir"`
	Client   string `toml:"client"`
	CA       string `toml:"ca"`
	Cert     string `toml:"cert"`
	Key      string `toml:"key"`
}

// profileKeys are the keys of a profile, as the file spells them.
var profileKeys = []string{"addr", "socket", "certs_dir", "client", "ca", "cert", "key"}

// names returns the profiles' names, sorted.
func (c clientConfig) names() []string {
	names := make([]string, 0, len(c.Profiles))
	for n := range c.Profiles {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// decodeClientConfig reads a configuration file's TOML and checks it: no
// unknown key, every profile usable. Relative paths are made relative to
// base, the file's directory.
func decodeClientConfig(data []byte, base string) (clientConfig, error) {
	var c clientConfig
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&c)
	if err != nil {
		return clientConfig{}, err
	}
	if extra := md.Undecoded(); len(extra) > 0 {
		key := extra[0].String()
		hint := "the keys are default_profile and [profiles.NAME] tables"
		if len(extra[0]) == 3 && extra[0][0] == "profiles" {
			hint = "a profile's keys are " + strings.Join(profileKeys, ", ")
		}
		return clientConfig{}, fmt.Errorf("unknown key %q: %s", key, hint)
	}
	for _, name := range c.names() {
		p := c.Profiles[name]
		if p == nil {
			return clientConfig{}, fmt.Errorf("profile %q is empty", name)
		}
		if err := p.check(); err != nil {
			return clientConfig{}, fmt.Errorf("profile %q: %w", name, err)
		}
		for _, f := range []*string{&p.Socket, &p.CertsDir, &p.CA, &p.Cert, &p.Key} {
			if *f != "" && !filepath.IsAbs(*f) {
				*f = filepath.Join(base, *f)
			}
		}
	}
	if d := c.DefaultProfile; d != "" && c.Profiles[d] == nil {
		return clientConfig{}, fmt.Errorf("default_profile %q is not a profile here (%s)", d, profileList(c.names()))
	}
	return c, nil
}

// check validates a profile's values.
func (p *profile) check() error {
	switch {
	case p.Addr == "" && p.Socket == "" && p.CertsDir == "" && p.CA == "" && p.Cert == "" && p.Key == "":
		return fmt.Errorf("it sets nothing: give addr (with certs_dir, or ca, cert and key) or socket")
	case p.Addr != "" && p.Socket != "":
		return fmt.Errorf("it sets both addr (a remote node) and socket (a local node): keep one")
	case p.Socket != "" && (p.CertsDir != "" || p.Client != "" || p.CA != "" || p.Cert != "" || p.Key != ""):
		return fmt.Errorf("socket is a local node, which needs no certificate: drop certs_dir, client, ca, cert and key, or use addr")
	case (p.Cert == "") != (p.Key == ""):
		return fmt.Errorf("cert and key go together: give both or neither")
	case p.Client != "" && p.CertsDir == "":
		return fmt.Errorf("client picks a certificate in certs_dir: give certs_dir too")
	}
	if p.Client != "" && scope.ValidateNodeName(p.Client) != nil {
		return fmt.Errorf("bad client %q: a client identity is 1 to 63 of a-z, 0-9, '-' and '_', starting with a letter or digit", p.Client)
	}
	if p.Addr != "" {
		if _, err := checkAddr(p.Addr); err != nil {
			return fmt.Errorf("bad addr %q: %w", p.Addr, err)
		}
	}
	return nil
}

// source is the profile as a source of connection settings.
func (p *profile) source(name string) connSource {
	return connSource{Kind: fromProfile, Profile: name, Addr: p.Addr, Socket: p.Socket,
		CA: p.CA, Cert: p.Cert, Key: p.Key, CertsDir: p.CertsDir, Client: p.Client}
}

// configPath returns the configuration file to read: --config, else
// $CORTEX_CONFIG (explicit: it must exist), else
// $XDG_CONFIG_HOME/cortex/config.toml, else ~/.config/cortex/config.toml
// (read if it exists); "" if there is no home to look in.
func configPath(flag string, getenv func(string) string) (path string, explicit bool) {
	if flag != "" {
		return flag, true
	}
	if p := getenv("CORTEX_CONFIG"); p != "" {
		return p, true
	}
	if x := getenv("XDG_CONFIG_HOME"); filepath.IsAbs(x) {
		return filepath.Join(x, "cortex", "config.toml"), false
	}
	if h := getenv("HOME"); filepath.IsAbs(h) {
		return filepath.Join(h, ".config", "cortex", "config.toml"), false
	}
	return "", false
}

// loadClientConfig reads the configuration file at path. A default file
// that does not exist is no profiles; an explicit one must exist.
func loadClientConfig(path string, explicit bool) (clientConfig, error) {
	if path == "" {
		return clientConfig{}, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return clientConfig{path: path, missing: true}, nil
	}
	if err != nil {
		return clientConfig{}, fmt.Errorf("config file: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return clientConfig{}, fmt.Errorf("config file %s: %w", path, err)
	}
	c, err := decodeClientConfig(data, filepath.Dir(abs))
	if err != nil {
		return clientConfig{}, fmt.Errorf("config file %s: %w", path, err)
	}
	c.path = path
	return c, nil
}

// selectProfile picks the profile: --profile (flag), else $CORTEX_PROFILE
// (env), else the file's default_profile; nil if none is asked for. Its
// error, a profile the file does not have, is a usage error.
func selectProfile(c clientConfig, flag, env string) (string, *profile, error) {
	name, from := flag, "--profile"
	if name == "" {
		name, from = env, "$CORTEX_PROFILE"
	}
	if name == "" {
		name = c.DefaultProfile
	}
	if name == "" {
		return "", nil, nil
	}
	if p := c.Profiles[name]; p != nil {
		return name, p, nil
	}
	var where string
	switch {
	case c.path == "":
		where = "no configuration file: give --config FILE or $CORTEX_CONFIG (there is no $HOME to look in)"
	case c.missing:
		where = "no configuration file " + c.path + ": write one (see docs/examples/cortex-client.toml) or give --config FILE"
	default:
		where = "no such profile in " + c.path + " (" + profileList(c.names()) + ")"
	}
	return "", nil, fmt.Errorf("%s %q: %s", from, name, where)
}

// profileList says which profiles there are.
func profileList(names []string) string {
	if len(names) == 0 {
		return "it has no profiles"
	}
	return "profiles: " + strings.Join(names, ", ")
}
