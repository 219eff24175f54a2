package main

import (
	"slices"
	"strings"
	"testing"
)

// The precedence of the connection settings: flags, then the environment,
// then the profile, then the default socket.
func TestResolveTarget(t *testing.T) {
	t.Parallel()
	flag := func(s connSource) connSource { s.Kind = fromFlag; return s }
	env := func(s connSource) connSource { s.Kind = fromEnv; return s }
	prof := func(s connSource) connSource { s.Kind, s.Profile = fromProfile, "office"; return s }
	for _, c := range []struct {
		name    string
		srcs    []connSource
		want    target
		wantErr string
	}{
		{name: "nothing: the default socket", srcs: []connSource{flag(connSource{}), env(connSource{})},
			want: target{Socket: "def.sock"}},
		{name: "env socket", srcs: []connSource{flag(connSource{}), env(connSource{Socket: "env.sock"}), prof(connSource{Socket: "p.sock"})},
			want: target{Socket: "env.sock"}},
		{name: "profile socket", srcs: []connSource{flag(connSource{}), env(connSource{}), prof(connSource{Socket: "p.sock"})},
			want: target{Socket: "p.sock"}},
		{name: "--socket wins over everything", srcs: []connSource{flag(connSource{Socket: "f.sock"}), env(connSource{Addr: "h:1", CertsDir: "d"}), prof(connSource{Addr: "p:1", CertsDir: "pd"})},
			want: target{Socket: "f.sock"}},
		{name: "a profile's address wins over the environment's socket",
			srcs: []connSource{flag(connSource{}), env(connSource{Socket: "env.sock"}), prof(connSource{Addr: "node1:7947", CertsDir: "/c", Client: "alice"})},
			want: target{Addr: "node1:7947", Host: "node1", CertsDir: "/c", Client: "alice",
				AddrFrom: "addr of profile office", CAFrom: "certs_dir of profile office", CertFrom: "certs_dir of profile office", KeyFrom: "certs_dir of profile office",
				DirFrom: "certs_dir of profile office", ClientFrom: "client of profile office"}},
		{name: "flags' four files",
			srcs: []connSource{flag(connSource{Addr: "10.0.0.5:7947", CA: "ca", Cert: "c", Key: "k"}), env(connSource{CertsDir: "ed"})},
			want: target{Addr: "10.0.0.5:7947", Host: "10.0.0.5", CA: "ca", Cert: "c", Key: "k",
				AddrFrom: "--addr", CAFrom: "--ca", CertFrom: "--cert", KeyFrom: "--key"}},
		{name: "flag address, env files",
			srcs: []connSource{flag(connSource{Addr: "h:1"}), env(connSource{CA: "eca", Cert: "ec", Key: "ek"}), prof(connSource{Addr: "p:1", CertsDir: "pd"})},
			want: target{Addr: "h:1", Host: "h", CA: "eca", Cert: "ec", Key: "ek",
				AddrFrom: "--addr", CAFrom: "$CORTEX_CA", CertFrom: "$CORTEX_CERT", KeyFrom: "$CORTEX_KEY"}},
		{name: "flag certs dir over the profile's files and client",
			srcs: []connSource{flag(connSource{CertsDir: "fd"}), env(connSource{}), prof(connSource{Addr: "p:1", CA: "pca", Cert: "pc", Key: "pk", Client: "bob"})},
			want: target{Addr: "p:1", Host: "p", CertsDir: "fd",
				AddrFrom: "addr of profile office", CAFrom: "--certs-dir", CertFrom: "--certs-dir", KeyFrom: "--certs-dir", DirFrom: "--certs-dir"}},
		{name: "flag client with the profile's directory",
			srcs: []connSource{flag(connSource{Client: "bob"}), env(connSource{}), prof(connSource{Addr: "p:1", CertsDir: "pd", Client: "alice"})},
			want: target{Addr: "p:1", Host: "p", CertsDir: "pd", Client: "bob",
				AddrFrom: "addr of profile office", CAFrom: "certs_dir of profile office", CertFrom: "certs_dir of profile office", KeyFrom: "certs_dir of profile office",
				DirFrom: "certs_dir of profile office", ClientFrom: "--client"}},
		{name: "a directory with its own ca overridden",
			srcs: []connSource{flag(connSource{Addr: "h:1", CertsDir: "fd", CA: "other.crt"})},
			want: target{Addr: "h:1", Host: "h", CA: "other.crt", CertsDir: "fd",
				AddrFrom: "--addr", CAFrom: "--ca", CertFrom: "--certs-dir", KeyFrom: "--certs-dir", DirFrom: "--certs-dir"}},
		{name: "flag pair, ca from the profile's directory",
			srcs: []connSource{flag(connSource{Cert: "c", Key: "k"}), env(connSource{}), prof(connSource{Addr: "p:1", CertsDir: "pd"})},
			want: target{Addr: "p:1", Host: "p", Cert: "c", Key: "k", CertsDir: "pd",
				AddrFrom: "addr of profile office", CAFrom: "certs_dir of profile office", CertFrom: "--cert", KeyFrom: "--key", DirFrom: "certs_dir of profile office"}},
		{name: "env client, no directory above the profile's",
			srcs: []connSource{flag(connSource{}), env(connSource{Client: "carol"}), prof(connSource{Addr: "p:1", CertsDir: "pd"})},
			want: target{Addr: "p:1", Host: "p", CertsDir: "pd", Client: "carol",
				AddrFrom: "addr of profile office", CAFrom: "certs_dir of profile office", CertFrom: "certs_dir of profile office", KeyFrom: "certs_dir of profile office",
				DirFrom: "certs_dir of profile office", ClientFrom: "$CORTEX_CLIENT"}},

		{name: "socket and addr", srcs: []connSource{flag(connSource{Socket: "s", Addr: "h:1"})}, wantErr: "not both"},
		{name: "socket and certs dir", srcs: []connSource{flag(connSource{Socket: "s", CertsDir: "d"})}, wantErr: "--certs-dir: for a remote node, not --socket"},
		{name: "remote flags without an address", srcs: []connSource{flag(connSource{CA: "c", Client: "a"}), env(connSource{})}, wantErr: "--ca, --client: for a remote node: give its --addr HOST:PORT too"},
		{name: "nothing but an address", srcs: []connSource{flag(connSource{Addr: "h:1"})},
			wantErr: "--addr needs --certs-dir DIR, or --ca, --cert and --key (missing: --ca, --cert, --key)"},
		{name: "a cert without its key", srcs: []connSource{flag(connSource{Addr: "h:1", CA: "c", Cert: "c"}), env(connSource{CertsDir: "d"})},
			wantErr: "(missing: --key)"},
		{name: "env key without its cert", srcs: []connSource{flag(connSource{}), env(connSource{Addr: "h:1", Key: "k"})},
			wantErr: "$CORTEX_ADDR needs --certs-dir DIR, or --ca, --cert and --key (missing: --ca, $CORTEX_CERT)"},
		{name: "bad address", srcs: []connSource{flag(connSource{}), env(connSource{Addr: "nohost", CertsDir: "d"})}, wantErr: `bad $CORTEX_ADDR "nohost": give HOST:PORT`},
		{name: "bad port", srcs: []connSource{flag(connSource{Addr: "h:99999", CertsDir: "d"})}, wantErr: "the port must be a number from 1 to 65535"},
		{name: "bad client", srcs: []connSource{flag(connSource{Addr: "h:1", CertsDir: "d", Client: "../x"})}, wantErr: `bad --client "../x"`},
		{name: "a client flag that picks nothing", srcs: []connSource{flag(connSource{Addr: "h:1", CA: "c", Cert: "c", Key: "k", Client: "bob"}), env(connSource{CertsDir: "d"})},
			wantErr: "--client picks a certificate in --certs-dir, but the certificate is --cert"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := resolveTarget(c.srcs, "def.sock")
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want %q (got %+v)", err, c.wantErr, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestClientsIn(t *testing.T) {
	t.Parallel()
	names := []string{"ca.crt", "ca.key", "client-bob.crt", "client-bob.key", "client-alice.crt", "node-home.crt",
		"client-alice.crt.tmp", "client-.crt", "client-Bad.crt", "client-carol.key", "README"}
	if got := clientsIn(names); !slices.Equal(got, []string{"alice", "bob"}) {
		t.Errorf("clientsIn: %q", got)
	}
	if got := clientsIn(nil); len(got) != 0 {
		t.Errorf("clientsIn(nil): %q", got)
	}
}

func TestPickClient(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		client  string
		clients []string
		want    string
		wantErr string
		several bool
	}{
		{clients: []string{"alice"}, want: "alice"},
		{client: "bob", clients: []string{"alice", "bob"}, want: "bob"},
		{clients: []string{"alice", "bob"}, wantErr: "--certs-dir certs has the certificates of 2 clients (alice, bob): say which with --client NAME", several: true},
		{clients: nil, wantErr: "no client certificate (client-NAME.crt) in --certs-dir certs: make one with cortex cert create-client NAME --dir certs"},
		{client: "carol", clients: []string{"alice", "bob"}, wantErr: "no client-carol.crt in --certs-dir certs; it has the certificates of alice, bob"},
		{client: "carol", wantErr: "no client-carol.crt in --certs-dir certs, and no other client certificate (make it with: cortex cert create-client carol --dir certs)"},
	} {
		got, err := pickClient(c.client, c.clients, "certs", "--certs-dir")
		if c.wantErr != "" {
			_, several := err.(severalClientsError)
			if err == nil || !strings.Contains(err.Error(), c.wantErr) || several != c.several {
				t.Errorf("pickClient(%q, %q): %v, want %q (several %v)", c.client, c.clients, err, c.wantErr, c.several)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("pickClient(%q, %q) = %q, %v; want %q", c.client, c.clients, got, err, c.want)
		}
	}
}
