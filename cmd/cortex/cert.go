package main

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/cortex-mesh/cortex/cmd/internal/cli"
	"github.com/cortex-mesh/cortex/pki"
	"github.com/cortex-mesh/cortex/scope"

	"github.com/spf13/cobra"
)

// The cert commands make files only: they never talk to a node.

func certCmd(a *app) *cobra.Command {
	c := groupCmd("cert", "Make the mesh CA and node and client certificates",
		`Make the mesh's certificates, like "cockroach cert": one CA per mesh, one
certificate per node and one per client identity, all signed by the CA. They
are PEM files in --dir; private keys are written mode 0600, and an existing
file is never replaced without --overwrite.

  ca.crt, ca.key                 the mesh CA (create-ca). Every node and every
                                 remote client needs ca.crt; keep ca.key
                                 secret, on the machine where you make
                                 certificates.
  node-NAME.crt, node-NAME.key   a node (create-node): cortexd --mesh-cert,
                                 --mesh-key. NAME is the node's name.
  client-ID.crt, client-ID.key   a client identity (create-client): the cortex
                                 flags --cert and --key with --addr.

The CA is valid for 10 years, the certificates it signs for 5 (never past
the CA's own end). Nothing here talks to a node.`,
		`  cortex cert create-ca --dir certs
  cortex cert create-node home --dir certs --host home.example.com --host 10.0.0.5
  cortex cert create-client alice --dir certs`)
	c.AddCommand(certCreateCACmd(a), certCreateNodeCmd(a), certCreateClientCmd(a))
	return c
}

// certFlags are the flags every cert command takes.
type certFlags struct {
	dir       string
	overwrite bool
}

func (f *certFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&f.dir, "dir", "", "directory of the certificates (required; made mode 0700 if missing)")
	c.Flags().BoolVar(&f.overwrite, "overwrite", false, "replace files that exist")
}

func (f *certFlags) check(cmd *cobra.Command) error {
	if f.dir == "" {
		return cli.Usagef(cmd, "missing --dir: give the directory of the certificates, such as --dir certs")
	}
	return nil
}

// certJSON is what the cert commands print with --json.
type certJSON struct {
	Kind        string    `json:"kind"` // "ca", "node" or "client"
	Name        string    `json:"name"`
	Cert        string    `json:"cert"`
	Key         string    `json:"key"`
	Fingerprint string    `json:"fingerprint"`
	NotAfter    time.Time `json:"not_after"`
	DNSNames    []string  `json:"dns_names,omitempty"`
	IPAddresses []string  `json:"ip_addresses,omitempty"`
	Role        pki.Role  `json:"role,omitempty"` // nodes only
}

// wrote prints the files a cert command wrote.
func (a *app) wrote(kind, name, certPath, keyPath string) error {
	if !a.json {
		_, err := fmt.Fprintf(a.stdout, "wrote %s\nwrote %s\n", certPath, keyPath)
		return err
	}
	data, err := os.ReadFile(certPath)
	if err != nil {
		return err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return fmt.Errorf("%s holds no PEM certificate", certPath)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return fmt.Errorf("parse %s: %w", certPath, err)
	}
	out := certJSON{Kind: kind, Name: name, Cert: certPath, Key: keyPath, Fingerprint: pki.Fingerprint(c),
		NotAfter: c.NotAfter.UTC(), DNSNames: c.DNSNames}
	for _, ip := range c.IPAddresses {
		out.IPAddresses = append(out.IPAddresses, ip.String())
	}
	if kind == "node" {
		if out.Role, err = pki.RoleOf(c); err != nil {
			return err
		}
	}
	return cli.WriteJSON(a.stdout, out)
}

func certCreateCACmd(a *app) *cobra.Command {
	var f certFlags
	c := &cobra.Command{
		Use:   "create-ca",
		Short: "Make the mesh CA (DIR/ca.crt, DIR/ca.key)",
		Long: `Make a new mesh CA: DIR/ca.crt (the certificate every node and client
trusts) and DIR/ca.key (its private key, mode 0600: keep it secret; it signs
every certificate of the mesh). Exits 1 if either file exists.

--overwrite replaces an existing CA. Every certificate the old one signed
stops being accepted: make them all again.

Prints the two files written; with --json
{"kind":"ca","name","cert","key","fingerprint","not_after"}.`,
		Example: `  cortex cert create-ca --dir certs`,
		Args:    cli.Positional(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(cmd); err != nil {
				return err
			}
			if err := pki.CreateCA(f.dir, f.overwrite, time.Now()); err != nil {
				return err
			}
			crt, key := pki.CAFiles(f.dir)
			return a.wrote("ca", "cortex mesh CA", crt, key)
		},
	}
	f.add(c)
	return c
}

func certCreateNodeCmd(a *app) *cobra.Command {
	var f certFlags
	var hosts []string
	var role string
	c := &cobra.Command{
		Use:   "create-node NAME",
		Short: "Make a node's certificate (DIR/node-NAME.crt, .key)",
		Long: `Make the certificate of the node NAME, signed by the CA in DIR:
DIR/node-NAME.crt and DIR/node-NAME.key (mode 0600). Start the node with
cortexd --mesh-ca DIR/ca.crt --mesh-cert DIR/node-NAME.crt --mesh-key
DIR/node-NAME.key; its node name is NAME. NAME matches [a-z0-9][a-z0-9_-]{0,62}.

The certificate names NAME (its common name and a DNS name) and each --host
H: a DNS name or an IP address. Remote clients (cortex --addr HOST:PORT)
check that the node's certificate names the HOST they dial, as with any TLS
server, so give every name and address clients use to reach the node's
--rpc-listen. Nodes of the mesh check each other by CA and certificate, not
by address.

--role (default member) is what the node may do in the mesh. A member reads
and writes the tables it holds, creates tables (it is their home), changes
the scope of and drops the tables whose home it is. An admin may also
administer the mesh: identities, ACLs, any node's tables, revoking nodes. The
role is in the certificate: every node checks it on every change to the
system tables, so only whoever holds ca.key grants it.

Exits 1 if a file exists (use --overwrite) or there is no CA in DIR. Prints
the two files written; with --json {"kind":"node","name","cert","key",
"fingerprint","not_after","dns_names","ip_addresses","role"}.`,
		Example: `  cortex cert create-node home --dir certs --role admin
  cortex cert create-node office --dir certs --host office.example.com --host 10.0.0.5`,
		Args: cli.Positional(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(cmd); err != nil {
				return err
			}
			if err := scope.ValidateNodeName(args[0]); err != nil {
				return cli.Usagef(cmd, "bad node name %q: use 1 to 63 of a-z, 0-9, '-' and '_', starting with a letter or digit", args[0])
			}
			r, err := pki.ParseRole(role)
			if err != nil {
				return cli.Usagef(cmd, "bad --role: %v", err)
			}
			for _, h := range hosts {
				if err := checkHost(h); err != nil {
					return cli.Usagef(cmd, "bad --host %q: %v", h, err)
				}
			}
			if err := pki.CreateNodeCert(f.dir, args[0], r, hosts, f.overwrite, time.Now()); err != nil {
				return err
			}
			crt, key := pki.NodeCertFiles(f.dir, args[0])
			return a.wrote("node", args[0], crt, key)
		},
	}
	f.add(c)
	c.Flags().StringArrayVar(&hosts, "host", nil, "DNS name or IP address clients use to reach the node (repeatable)")
	c.Flags().StringVar(&role, "role", string(pki.RoleMember), "the node's role in the mesh: member or admin")
	return c
}

var hostLabel = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$`)

// checkHost accepts an IP address or a DNS name (optionally a wildcard
// "*.example.com").
func checkHost(h string) error {
	if net.ParseIP(h) != nil {
		return nil
	}
	if _, _, err := net.SplitHostPort(h); err == nil {
		return fmt.Errorf("give a host name or IP address without a port")
	}
	name := strings.TrimPrefix(h, "*.")
	if name == "" || len(name) > 253 {
		return fmt.Errorf("give a DNS name or an IP address")
	}
	for _, label := range strings.Split(name, ".") {
		if !hostLabel.MatchString(label) {
			return fmt.Errorf("not a DNS name or an IP address")
		}
	}
	return nil
}

func certCreateClientCmd(a *app) *cobra.Command {
	var f certFlags
	c := &cobra.Command{
		Use:   "create-client IDENTITY",
		Short: "Make a client's certificate (DIR/client-IDENTITY.crt, .key)",
		Long: `Make the certificate of the client identity IDENTITY, signed by the CA in
DIR: DIR/client-IDENTITY.crt and DIR/client-IDENTITY.key (mode 0600).
IDENTITY matches [a-z0-9][a-z0-9_-]{0,62}.

With it, cortex calls a node remotely:
  cortex --addr HOST:PORT --ca DIR/ca.crt --cert DIR/client-IDENTITY.crt \
    --key DIR/client-IDENTITY.key ...
once the node's administrator has registered the identity and granted it
tables (cortex identity add IDENTITY [--cert FILE]; cortex acl grant).

Exits 1 if a file exists (use --overwrite) or there is no CA in DIR. Prints
the two files written; with --json {"kind":"client","name","cert","key",
"fingerprint","not_after"}.`,
		Example: `  cortex cert create-client alice --dir certs
  cortex identity add alice --cert certs/client-alice.crt && cortex acl grant alice users read`,
		Args: cli.Positional(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(cmd); err != nil {
				return err
			}
			if err := scope.ValidateNodeName(args[0]); err != nil {
				return cli.Usagef(cmd, "bad identity %q: use 1 to 63 of a-z, 0-9, '-' and '_', starting with a letter or digit", args[0])
			}
			if err := pki.CreateClientCert(f.dir, args[0], f.overwrite, time.Now()); err != nil {
				return err
			}
			crt, key := pki.ClientCertFiles(f.dir, args[0])
			return a.wrote("client", args[0], crt, key)
		},
	}
	f.add(c)
	return c
}
