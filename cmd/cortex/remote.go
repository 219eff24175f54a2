package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cortex-mesh/cortex/cmd/internal/cli"
	"github.com/cortex-mesh/cortex/pki"

	"github.com/cortex-mesh/cortex/api"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// remote is the target of remote mode: a node's mTLS listener
// (cortexd --rpc-listen) and the client certificate to show it. Its flag
// fields are overwritten by resolve with what is used.
type remote struct {
	addr, ca, cert, key string
	certsDir, clientID  string
	profile, config     string // --profile, --config
	host                string // the host part of addr: the name the node's certificate must hold
	kindHint            string // why --cert is probably refused, when it is not a client certificate

	// Labels of where addr, ca, cert and key come from, for messages.
	addrFrom, caFrom, certFrom, keyFrom string
	resolved                            bool // resolve has run: the fields above are what is used
}

func (r *remote) flags(pf *pflag.FlagSet) {
	pf.StringVar(&r.addr, "addr", "", "HOST:PORT of a node's mTLS listener (cortexd --rpc-listen), instead of --socket; needs --certs-dir, or --ca, --cert and --key (env CORTEX_ADDR)")
	pf.StringVar(&r.certsDir, "certs-dir", "", "with --addr: a directory made by cortex cert, with ca.crt and client-NAME.crt, .key (env CORTEX_CERTS_DIR)")
	pf.StringVar(&r.clientID, "client", "", "with --certs-dir: whose certificate to use, if it has several (env CORTEX_CLIENT)")
	pf.StringVar(&r.ca, "ca", "", "with --addr: the mesh CA certificate (ca.crt) that the node's certificate must be signed by (env CORTEX_CA)")
	pf.StringVar(&r.cert, "cert", "", "with --addr: this client's certificate, made with cortex cert create-client (env CORTEX_CERT)")
	pf.StringVar(&r.key, "key", "", "with --addr: this client's private key (env CORTEX_KEY)")
	pf.StringVar(&r.profile, "profile", "", "a profile of the configuration file: the node to call and the certificate to use (env CORTEX_PROFILE)")
	pf.StringVar(&r.config, "config", "", "the configuration file with the profiles (env CORTEX_CONFIG; default $XDG_CONFIG_HOME/cortex/config.toml, else ~/.config/cortex/config.toml)")
}

// offline is the annotation of the commands that never call a node (cert):
// they need no connection settings.
const offline = "offline"

// prepare checks the global flags and decides which node to call, before
// any command that may call one.
func (a *app) prepare(cmd *cobra.Command) error {
	if a.timeout < 0 {
		return cli.Usagef(cmd, "--timeout %s is negative: give a duration such as 30s, or 0 for no timeout", a.timeout)
	}
	if a.remote.resolved {
		return nil
	}
	if cmd.Parent() == cmd.Root() && slices.Contains([]string{cobra.ShellCompRequestCmd, cobra.ShellCompNoDescRequestCmd}, cmd.Name()) {
		return nil // the shell asking for completions: the command completed resolves with its own flags
	}
	for c := cmd; c != nil; c = c.Parent() {
		if c.Annotations[offline] != "" || (c.Name() == "completion" && c.Parent() == cmd.Root()) {
			return nil
		}
	}
	socketFlag := ""
	if cmd.Flags().Changed("socket") {
		socketFlag = a.socket
	}
	socket, err := a.remote.resolve(cmd, socketFlag, a.getenv)
	if err != nil {
		return err
	}
	a.socket = socket
	return nil
}

// resolve decides which node to call, from the flags, the environment and
// the profile (in that order of precedence; see resolveTarget), finds the
// files of a certificates directory, and returns the socket to use when
// not in remote mode. Its errors are usage errors, except those of files
// that are not there.
func (r *remote) resolve(cmd *cobra.Command, socketFlag string, getenv func(string) string) (string, error) {
	flags := connSource{Kind: fromFlag, Socket: socketFlag, Addr: r.addr, CA: r.ca, Cert: r.cert, Key: r.key,
		CertsDir: r.certsDir, Client: r.clientID}
	srcs := []connSource{flags}
	if socketFlag == "" {
		env := connSource{Kind: fromEnv, Addr: getenv("CORTEX_ADDR"), Socket: getenv("CORTEX_SOCKET"),
			CA: getenv("CORTEX_CA"), Cert: getenv("CORTEX_CERT"), Key: getenv("CORTEX_KEY"),
			CertsDir: getenv("CORTEX_CERTS_DIR"), Client: getenv("CORTEX_CLIENT")}
		if d := getenv("CORTEX_DATA_DIR"); env.Socket == "" && d != "" {
			env.Socket = filepath.Join(d, "cortex.sock")
		}
		srcs = append(srcs, env)
		path, explicit := configPath(r.config, getenv)
		cfg, err := loadClientConfig(path, explicit)
		if err != nil {
			return "", err
		}
		name, p, err := selectProfile(cfg, r.profile, getenv("CORTEX_PROFILE"))
		if err != nil {
			return "", cli.Usagef(cmd, "%v", err)
		}
		if p != nil {
			srcs = append(srcs, p.source(name))
		}
	} else if r.profile != "" {
		return "", cli.Usagef(cmd, "give --socket (a local node) or --profile, not both")
	}
	t, err := resolveTarget(srcs, defaultSocket)
	if err != nil {
		return "", cli.Usagef(cmd, "%v", err)
	}
	if t.Addr != "" {
		if err := t.findFiles(); err != nil {
			var several severalClientsError
			if errors.As(err, &several) {
				return "", cli.Usagef(cmd, "%v", err)
			}
			return "", err
		}
	}
	r.addr, r.host, r.ca, r.cert, r.key = t.Addr, t.Host, t.CA, t.Cert, t.Key
	r.addrFrom, r.caFrom, r.certFrom, r.keyFrom = t.AddrFrom, t.CAFrom, t.CertFrom, t.KeyFrom
	r.resolved = true
	return t.Socket, nil
}

// findFiles sets the files that come from the certificates directory:
// ca.crt, and the client's pair, the one there is if no client is named.
// It checks they are there, so that a wrong directory is told as such.
func (t *target) findFiles() error {
	if !t.caFromDir() && !t.pairFromDir() {
		return nil
	}
	entries, err := os.ReadDir(t.CertsDir)
	if err != nil {
		return fmt.Errorf("%s: %w", t.DirFrom, err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if t.caFromDir() {
		t.CA, _ = pki.CAFiles(t.CertsDir)
		if !slices.Contains(names, filepath.Base(t.CA)) {
			return fmt.Errorf("no ca.crt in %s %s: point it at the directory made with cortex cert create-ca, or name the CA with --ca", t.DirFrom, t.CertsDir)
		}
	}
	if t.pairFromDir() {
		client, err := pickClient(t.Client, clientsIn(names), t.CertsDir, t.DirFrom)
		if err != nil {
			return err
		}
		t.Client = client
		t.Cert, t.Key = pki.ClientCertFiles(t.CertsDir, client)
		if !slices.Contains(names, filepath.Base(t.Key)) {
			return fmt.Errorf("no client-%s.key in %s %s, next to client-%s.crt: copy the key that goes with it", client, t.DirFrom, t.CertsDir, client)
		}
	}
	return nil
}

// client loads the CA and the client certificate and returns a client for
// the node's mTLS listener. The node's certificate is checked as usual: it
// must chain to --ca and name the host of --addr (a DNS or IP SAN, made
// with cortex cert create-node --host).
func (r *remote) client() (*api.Client, error) {
	pool, err := pki.LoadCA(r.ca)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.caFrom, err)
	}
	var pair tls.Certificate
	if id, err := pki.LoadIdentity(r.cert, r.key, pki.KindClient); err == nil {
		pair = id.TLS
	} else if errors.Is(err, pki.ErrKeyTooOpen) {
		return nil, fmt.Errorf("%s: %w", r.keyFrom, err)
	} else {
		// Not a client certificate of the mesh (a node's, say): if the key
		// matches, it is still shown, and the node decides; the node refuses
		// it and logs why, and what we print then says what is wrong.
		p, perr := pki.LoadKeyPair(r.cert, r.key)
		if perr != nil {
			return nil, fmt.Errorf("%s: %w", r.pairFrom(), err)
		}
		pair, r.kindHint = p, err.Error()
	}
	cfg := &tls.Config{
		RootCAs:      pool,
		Certificates: []tls.Certificate{pair},
		ServerName:   r.host,
		MinVersion:   tls.VersionTLS13,
	}
	return api.DialTLS(r.addr, cfg), nil
}

// pairFrom names where the certificate and key come from.
func (r *remote) pairFrom() string {
	if r.certFrom == r.keyFrom {
		return r.certFrom
	}
	return r.certFrom + " and " + r.keyFrom
}

// unreachable explains an error of the mTLS connection: the node is not
// listening there, its certificate is not the one expected, or it refused
// ours.
func (r *remote) unreachable(err error) string {
	where := "cannot reach cortexd at " + r.addr + " (" + r.addrFrom + ")"
	var hostErr x509.HostnameError
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var op *net.OpError
	switch {
	case errors.As(err, &hostErr):
		names := append([]string{}, hostErr.Certificate.DNSNames...)
		for _, ip := range hostErr.Certificate.IPAddresses {
			names = append(names, ip.String())
		}
		return fmt.Sprintf("%s: the node's certificate is not valid for %q, only for %s: dial one of those, or remake the node's certificate with cortex cert create-node %s --host %s",
			where, r.host, strings.Join(names, ", "), hostErr.Certificate.Subject.CommonName, r.host)
	case errors.As(err, &unknown):
		return fmt.Sprintf("%s: the node's certificate is not signed by the mesh CA in %s %s: check that it is this mesh's ca.crt", where, r.caFrom, r.ca)
	case errors.As(err, &invalid):
		return fmt.Sprintf("%s: the node's certificate is not acceptable: %v", where, invalid)
	case errors.As(err, &op) && op.Op == "remote error":
		msg := fmt.Sprintf("%s: the node refused our certificate (%s %s): %v; the node's log says why", where, r.certFrom, r.cert, op.Err)
		if r.kindHint != "" {
			msg += "; probably because " + r.kindHint + " (make one with: cortex cert create-client IDENTITY --dir DIR)"
		}
		return msg
	case errors.As(err, &op) && op.Op == "dial":
		return fmt.Sprintf("%s: %v; is cortexd running there with --rpc-listen, and can this machine reach it?", where, op.Err)
	}
	msg := strings.Replace(err.Error(), api.ErrUnreachable.Error()+" at "+r.addr, where, 1)
	if r.kindHint != "" {
		msg += "; note: " + r.kindHint
	}
	return msg + "; is cortexd running there with --rpc-listen, and does it accept our certificate?"
}
