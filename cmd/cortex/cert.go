package main

import (
	"fmt"
	"net"
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
                                 flags --cert and --key with --addr, or
                                 --certs-dir DIR --client ID.

The CA is valid for 10 years, the certificates it signs for 5, unless
--lifetime says otherwise; a certificate never outlives its CA (it is cut
to the CA's end, with a note). list and show print what certificates are
and how many days they have left; renew signs a certificate again with the
same key, and a running cortexd takes it on SIGHUP. Nothing here talks to a
node.`,
		`  cortex cert create-ca --dir certs --mesh home
  cortex cert create-node home --dir certs --host home.example.com --host 10.0.0.5
  cortex cert create-client alice --dir certs --lifetime 90d
  cortex cert list --dir certs
  cortex cert renew certs/node-home.crt --dir certs && kill -HUP $(pidof cortexd)`)
	c.AddCommand(certCreateCACmd(a), certCreateNodeCmd(a), certCreateClientCmd(a), certListCmd(a), certShowCmd(a), certRenewCmd(a))
	c.Annotations = map[string]string{offline: "yes"} // no node, so no profile or remote flags to resolve
	return c
}

// certFlags are the flags every create command takes.
type certFlags struct {
	dir       string
	overwrite bool
	lifetime  string
	ca        bool // the lifetime is a CA's
}

func (f *certFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&f.dir, "dir", "", "directory of the certificates (required; made mode 0700 if missing)")
	c.Flags().BoolVar(&f.overwrite, "overwrite", false, "replace files that exist")
	f.addLifetime(c)
}

func (f *certFlags) addLifetime(c *cobra.Command) {
	def, max := pki.CertValidity, pki.MaxCertLifetime
	if f.ca {
		def, max = pki.CAValidity, pki.MaxCALifetime
	}
	c.Flags().StringVar(&f.lifetime, "lifetime", "", fmt.Sprintf("how long the certificate is valid: 10y, 90d, 12h, 30m (default %s, at least %s, at most %s)",
		pki.FormatLifetime(def), pki.FormatLifetime(pki.MinLifetime), pki.FormatLifetime(max)))
}

// options checks the flags and returns the options to make a certificate
// with.
func (f *certFlags) options(cmd *cobra.Command) (pki.Options, error) {
	o := pki.Options{Overwrite: f.overwrite, Now: time.Now()}
	if f.dir == "" {
		return o, cli.Usagef(cmd, "missing --dir: give the directory of the certificates, such as --dir certs")
	}
	if f.lifetime != "" {
		d, err := pki.ParseLifetime(f.lifetime)
		if err != nil {
			return o, cli.Usagef(cmd, "bad --lifetime: %v", err)
		}
		if err := pki.CheckLifetime(d, f.ca); err != nil {
			return o, cli.Usagef(cmd, "bad --lifetime: %v", err)
		}
		o.Lifetime = d
	}
	return o, nil
}

// certJSON is what the create and renew commands print with --json.
type certJSON struct {
	Kind        string    `json:"kind"` // "ca", "node" or "client"
	Name        string    `json:"name"`
	Cert        string    `json:"cert"`
	Key         string    `json:"key,omitempty"` // not for renew: the key stays
	Fingerprint string    `json:"fingerprint"`
	Serial      string    `json:"serial"`
	NotAfter    time.Time `json:"not_after"`
	DaysLeft    int       `json:"days_left"`
	Clamped     bool      `json:"clamped,omitempty"` // cut to the CA's end
	Mesh        string    `json:"mesh,omitempty"`
	DNSNames    []string  `json:"dns_names,omitempty"`
	IPAddresses []string  `json:"ip_addresses,omitempty"`
	Role        pki.Role  `json:"role,omitempty"` // nodes only
}

// wrote prints what a cert command wrote, and says so on stderr when the
// certificate was cut to its CA's end.
func (a *app) wrote(iss pki.Issued) error {
	in := pki.Describe(iss.Cert, time.Now())
	if iss.Clamped {
		fmt.Fprintf(a.stderr, "note: the CA ends %s, sooner than the %s asked: %s ends with it (%d days)\n",
			in.NotAfter.Format(time.RFC3339), pki.FormatLifetime(iss.Asked), iss.CertPath, in.DaysLeft)
	}
	if !a.json {
		if iss.KeyPath == "" {
			_, err := fmt.Fprintf(a.stdout, "wrote %s (serial %s, valid until %s)\n", iss.CertPath, in.Serial, in.NotAfter.Format(time.RFC3339))
			return err
		}
		_, err := fmt.Fprintf(a.stdout, "wrote %s\nwrote %s\n", iss.CertPath, iss.KeyPath)
		return err
	}
	return cli.WriteJSON(a.stdout, certJSON{Kind: in.Kind, Name: in.Name, Cert: iss.CertPath, Key: iss.KeyPath,
		Fingerprint: in.Fingerprint, Serial: in.Serial, NotAfter: in.NotAfter, DaysLeft: in.DaysLeft, Clamped: iss.Clamped,
		Mesh: in.Mesh, DNSNames: in.DNSNames, IPAddresses: in.IPAddresses, Role: in.Role})
}

func certCreateCACmd(a *app) *cobra.Command {
	f := certFlags{ca: true}
	var meshName string
	c := &cobra.Command{
		Use:   "create-ca",
		Short: "Make the mesh CA (DIR/ca.crt, DIR/ca.key)",
		Long: `Make a new mesh CA: DIR/ca.crt (the certificate every node and client
trusts) and DIR/ca.key (its private key, mode 0600: keep it secret; it signs
every certificate of the mesh). Exits 1 if either file exists.

--overwrite replaces an existing CA. Every certificate the old one signed
stops being accepted: make them all again.

--mesh NAME names the mesh ([a-z0-9][a-z0-9_-]{0,62}): it is kept in the CA
certificate's subject (OU=mesh:NAME) and shown by cert show, cert list and
cortex node status, so that certificates of two meshes are told apart.
--lifetime is how long the CA is valid (default 10y, 1m to 30y); nothing it
signs outlives it.

Prints the two files written; with --json {"kind":"ca","name","cert","key",
"fingerprint","serial","not_after","days_left","mesh"}.`,
		Example: `  cortex cert create-ca --dir certs --mesh home
  cortex cert create-ca --dir /tmp/try --lifetime 1h`,
		Args: cli.Positional(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := f.options(cmd)
			if err != nil {
				return err
			}
			if meshName != "" {
				if err := scope.ValidateNodeName(meshName); err != nil {
					return cli.Usagef(cmd, "bad --mesh %q: use 1 to 63 of a-z, 0-9, '-' and '_', starting with a letter or digit", meshName)
				}
			}
			o.Mesh = meshName
			iss, err := pki.NewCA(f.dir, o)
			if err != nil {
				return err
			}
			return a.wrote(iss)
		},
	}
	f.add(c)
	c.Flags().StringVar(&meshName, "mesh", "", "the mesh's name, kept in the CA certificate")
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

--lifetime is how long it is valid (default 5y, 1m to 10y); it never
outlives the CA: asked for longer, it ends with the CA and a note says so.

Exits 1 if a file exists (use --overwrite) or there is no CA in DIR. Prints
the two files written; with --json {"kind":"node","name","cert","key",
"fingerprint","serial","not_after","days_left","clamped","dns_names",
"ip_addresses","role"}.`,
		Example: `  cortex cert create-node home --dir certs --role admin
  cortex cert create-node office --dir certs --host office.example.com --host 10.0.0.5 --lifetime 1y`,
		Args: named(cobra.ExactArgs(1), nodeArg),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := f.options(cmd)
			if err != nil {
				return err
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
			iss, err := pki.NewNodeCert(f.dir, args[0], r, hosts, o)
			if err != nil {
				return err
			}
			return a.wrote(iss)
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
  cortex --addr HOST:PORT --certs-dir DIR --client IDENTITY ...
(--client may be left out if DIR has no other client certificate; or name
the files: --ca DIR/ca.crt --cert DIR/client-IDENTITY.crt --key
DIR/client-IDENTITY.key; or put them in a profile: cortex help), once the node's administrator has registered the identity and granted it
tables (cortex identity add IDENTITY [--cert FILE]; cortex acl grant).

--lifetime is how long it is valid (default 5y, 1m to 10y); it never
outlives the CA: asked for longer, it ends with the CA and a note says so.

Exits 1 if a file exists (use --overwrite) or there is no CA in DIR. Prints
the two files written; with --json {"kind":"client","name","cert","key",
"fingerprint","serial","not_after","days_left","clamped"}.`,
		Example: `  cortex cert create-client alice --dir certs
  cortex identity add alice --cert certs/client-alice.crt && cortex acl grant alice users read`,
		Args: named(cobra.ExactArgs(1), identityArg),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := f.options(cmd)
			if err != nil {
				return err
			}
			iss, err := pki.NewClientCert(f.dir, args[0], o)
			if err != nil {
				return err
			}
			return a.wrote(iss)
		},
	}
	f.add(c)
	return c
}
