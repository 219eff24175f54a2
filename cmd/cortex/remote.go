package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/cortex-mesh/cortex/cmd/internal/cli"
	"github.com/cortex-mesh/cortex/pki"

	"github.com/cortex-mesh/cortex/api"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// remote is the target of remote mode: a node's mTLS listener
// (cortexd --rpc-listen) and the client certificate to show it.
type remote struct {
	addr, ca, cert, key string
	host                string // the host part of addr: the name the node's certificate must hold
	kindHint            string // why --cert is probably refused, when it is not a client certificate
}

func (r *remote) flags(pf *pflag.FlagSet) {
	pf.StringVar(&r.addr, "addr", "", "HOST:PORT of a node's mTLS listener (cortexd --rpc-listen), instead of --socket; needs --ca, --cert and --key (env CORTEX_ADDR)")
	pf.StringVar(&r.ca, "ca", "", "with --addr: the mesh CA certificate (ca.crt) that the node's certificate must be signed by (env CORTEX_CA)")
	pf.StringVar(&r.cert, "cert", "", "with --addr: this client's certificate, made with cortex cert create-client (env CORTEX_CERT)")
	pf.StringVar(&r.key, "key", "", "with --addr: this client's private key (env CORTEX_KEY)")
}

// check validates the remote flags: all or none, and a HOST:PORT address.
// $CORTEX_ADDR, $CORTEX_CA, $CORTEX_CERT and $CORTEX_KEY are their
// defaults, used unless --socket is given.
func (r *remote) check(cmd *cobra.Command, getenv func(string) string) error {
	if r.addr != "" && cmd.Flags().Changed("socket") {
		return cli.Usagef(cmd, "give --socket (a local node) or --addr (a remote node), not both")
	}
	flagged := r.ca != "" || r.cert != "" || r.key != ""
	if !cmd.Flags().Changed("socket") {
		for _, f := range []struct {
			value *string
			env   string
		}{{&r.addr, "CORTEX_ADDR"}, {&r.ca, "CORTEX_CA"}, {&r.cert, "CORTEX_CERT"}, {&r.key, "CORTEX_KEY"}} {
			if *f.value == "" {
				*f.value = getenv(f.env)
			}
		}
	}
	var missing []string
	for _, f := range []struct{ name, value string }{{"--ca", r.ca}, {"--cert", r.cert}, {"--key", r.key}} {
		if f.value == "" {
			missing = append(missing, f.name)
		}
	}
	if r.addr == "" {
		if flagged {
			return cli.Usagef(cmd, "--ca, --cert and --key are for a remote node: give its --addr HOST:PORT too")
		}
		r.ca, r.cert, r.key = "", "", ""
		return nil
	}
	if len(missing) > 0 {
		return cli.Usagef(cmd, "--addr needs --ca, --cert and --key (missing: %s)", strings.Join(missing, ", "))
	}
	host, port, err := net.SplitHostPort(r.addr)
	if err != nil || host == "" {
		return cli.Usagef(cmd, "bad --addr %q: give HOST:PORT, such as node1.example.com:7947 or 10.0.0.5:7947", r.addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return cli.Usagef(cmd, "bad --addr %q: the port must be a number from 1 to 65535", r.addr)
	}
	r.host = host
	return nil
}

// client loads the CA and the client certificate and returns a client for
// the node's mTLS listener. The node's certificate is checked as usual: it
// must chain to --ca and name the host of --addr (a DNS or IP SAN, made
// with cortex cert create-node --host).
func (r *remote) client() (*api.Client, error) {
	pool, err := pki.LoadCA(r.ca)
	if err != nil {
		return nil, fmt.Errorf("--ca: %w", err)
	}
	var pair tls.Certificate
	if id, err := pki.LoadIdentity(r.cert, r.key, pki.KindClient); err == nil {
		pair = id.TLS
	} else if errors.Is(err, pki.ErrKeyTooOpen) {
		return nil, fmt.Errorf("--key: %w", err)
	} else {
		// Not a client certificate of the mesh (a node's, say): if the key
		// matches, it is still shown, and the node decides; the node refuses
		// it and logs why, and what we print then says what is wrong.
		p, perr := pki.LoadKeyPair(r.cert, r.key)
		if perr != nil {
			return nil, fmt.Errorf("--cert and --key: %w", err)
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

// unreachable explains an error of the mTLS connection: the node is not
// listening there, its certificate is not the one expected, or it refused
// ours.
func (r *remote) unreachable(err error) string {
	where := "cannot reach cortexd at " + r.addr + " (--addr)"
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
		return fmt.Sprintf("%s: the node's certificate is not signed by the mesh CA in --ca %s: check that --ca is this mesh's ca.crt", where, r.ca)
	case errors.As(err, &invalid):
		return fmt.Sprintf("%s: the node's certificate is not acceptable: %v", where, invalid)
	case errors.As(err, &op) && op.Op == "remote error":
		msg := fmt.Sprintf("%s: the node refused our certificate (--cert %s): %v; the node's log says why", where, r.cert, op.Err)
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
