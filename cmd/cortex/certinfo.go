package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/cortex-mesh/cortex/cmd/internal/cli"
	"github.com/cortex-mesh/cortex/pki"

	"github.com/spf13/cobra"
)

// cert list, show and renew: what certificate files are, and signing one
// again. Like the create commands they never talk to a node.

// readCertInfo reads and describes the certificate file path. A missing
// file is exit 3.
func readCertInfo(path string, now time.Time) (pki.Info, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return pki.Info{}, &cli.ExitError{Code: exitNotFound, Msg: fmt.Sprintf("no such file: %s", path)}
	}
	if err != nil {
		return pki.Info{}, err
	}
	c, err := pki.ParseCertPEM(data)
	if err != nil {
		return pki.Info{}, fmt.Errorf("%s: %w", path, err)
	}
	in := pki.Describe(c, now)
	in.File = path
	return in, nil
}

// daysLeft is the DAYS LEFT cell: the number, and why it matters.
func daysLeft(in pki.Info) string {
	switch {
	case in.Expired:
		return fmt.Sprintf("%d (expired)", in.DaysLeft)
	case in.ExpiresSoon:
		return fmt.Sprintf("%d (expires soon)", in.DaysLeft)
	}
	return fmt.Sprint(in.DaysLeft)
}

func certListCmd(a *app) *cobra.Command {
	var dir string
	c := &cobra.Command{
		Use:   "list",
		Short: "List the certificates in --dir, with the days they have left",
		Long: `List every certificate file (*.crt) in --dir: the CA first, then by file.
For each: file, kind (ca, node, client), name, role (nodes), mesh (the mesh
name of the CA, or of the CA that signed it), not after, and days left,
marked "expires soon" within 30 days and "expired" after the end.

With --json prints a JSON array of {"file","name","kind","role","mesh",
"serial","fingerprint","not_before","not_after","days_left","expired",
"expires_soon","issuer","dns_names","ip_addresses"}.

Exits 3 if --dir does not exist; a file that is not a certificate is named
on stderr and makes the command exit 1 (after listing the others).`,
		Example: `  cortex cert list --dir certs
  cortex cert list --dir certs --json | jq -r '.[] | select(.expires_soon) | .file'`,
		Args: cli.Positional(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dir == "" {
				return cli.Usagef(cmd, "missing --dir: give the directory of the certificates, such as --dir certs")
			}
			files, err := filepath.Glob(filepath.Join(dir, "*.crt"))
			if err == nil {
				_, err = os.Stat(dir)
			}
			if errors.Is(err, fs.ErrNotExist) {
				return &cli.ExitError{Code: exitNotFound, Msg: fmt.Sprintf("no such directory: %s", dir)}
			}
			if err != nil {
				return err
			}
			now := time.Now()
			var infos []pki.Info
			var bad []string
			for _, f := range files {
				in, err := readCertInfo(f, now)
				if err != nil {
					fmt.Fprintf(a.stderr, "warning: %s\n", cli.OneLine(err.Error()))
					bad = append(bad, filepath.Base(f))
					continue
				}
				infos = append(infos, in)
			}
			sort.SliceStable(infos, func(i, j int) bool { return (infos[i].Kind == "ca") && infos[j].Kind != "ca" })
			if err := a.printCertList(infos); err != nil {
				return err
			}
			if len(bad) > 0 {
				return fmt.Errorf("%d file(s) in %s are not certificates: %s", len(bad), dir, strings.Join(bad, ", "))
			}
			return nil
		},
	}
	c.Flags().StringVar(&dir, "dir", "", "directory of the certificates (required)")
	return c
}

func (a *app) printCertList(infos []pki.Info) error {
	if a.json {
		if infos == nil {
			infos = []pki.Info{}
		}
		return cli.WriteJSON(a.stdout, infos)
	}
	cols := cli.NewColumns(a.stdout, "FILE", "KIND", "NAME", "ROLE", "MESH", "NOT AFTER", "DAYS LEFT")
	for _, in := range infos {
		cols.Row(filepath.Base(in.File), in.Kind, in.Name, dash(string(in.Role)), dash(in.Mesh), in.NotAfter.Format(time.RFC3339), daysLeft(in))
	}
	return cols.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func certShowCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "show FILE",
		Short: "Show what a certificate file is: name, kind, validity, issuer, SANs",
		Long: `Show the certificate in FILE (the first PEM certificate in it): name, kind
(ca, node, client), role (nodes), mesh name, serial, SHA-256 fingerprint (as
cortex node revoke takes it), not before, not after, days left, issuer and
the DNS names and IP addresses it names.

With --json prints {"file","name","kind","role","mesh","serial","fingerprint",
"not_before","not_after","days_left","expired","expires_soon","issuer",
"dns_names","ip_addresses"}. Exits 3 if FILE does not exist, 1 if it holds no
certificate.`,
		Example: `  cortex cert show certs/node-home.crt
  cortex cert show certs/ca.crt --json | jq .days_left`,
		Args: cli.Positional(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := readCertInfo(args[0], time.Now())
			if err != nil {
				return err
			}
			if a.json {
				return cli.WriteJSON(a.stdout, in)
			}
			cols := cli.NewColumns(a.stdout, "FILE", in.File)
			cols.Row("NAME", in.Name)
			cols.Row("KIND", in.Kind)
			if in.Role != "" {
				cols.Row("ROLE", string(in.Role))
			}
			cols.Row("MESH", dash(in.Mesh))
			cols.Row("SERIAL", in.Serial)
			cols.Row("FINGERPRINT", in.Fingerprint)
			cols.Row("NOT BEFORE", in.NotBefore.Format(time.RFC3339))
			cols.Row("NOT AFTER", in.NotAfter.Format(time.RFC3339))
			cols.Row("DAYS LEFT", daysLeft(in))
			cols.Row("ISSUER", in.Issuer)
			sans := append(append([]string{}, in.DNSNames...), in.IPAddresses...)
			cols.Row("SANS", dash(strings.Join(sans, " ")))
			return cols.Flush()
		},
	}
}

func certRenewCmd(a *app) *cobra.Command {
	var f certFlags
	c := &cobra.Command{
		Use:   "renew FILE",
		Short: "Sign a node or client certificate again, keeping its key",
		Long: `Sign the node or client certificate in FILE again with the CA in --dir:
the same key, name, role and DNS names and IP addresses, a new serial and a
new validity (--lifetime, default 5y, never past the CA's end). FILE is
replaced (atomically); the key file is not touched.

A running cortexd keeps its certificate until it is told: send it SIGHUP
(kill -HUP PID) and it reloads --mesh-cert and --mesh-key without dropping
a connection. New mesh and RPC connections present the renewed certificate;
the connections up stay up. It accepts only a certificate of the same node,
CA, key and role, and otherwise keeps the old one and logs why. A client
whose identity is pinned (identity add --cert) must be pinned again to the
renewed certificate.

Exits 1 if FILE is not signed by the CA in --dir or is the CA itself, 3 if
FILE does not exist. Prints the file written, its serial and end; with
--json {"kind","name","cert","fingerprint","serial","not_after","days_left",
"clamped","dns_names","ip_addresses","role"}.`,
		Example: `  cortex cert renew certs/node-home.crt --dir certs --lifetime 1y
  kill -HUP $(cat /var/run/cortexd.pid)`,
		Args: cli.Positional(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := f.options(cmd)
			if err != nil {
				return err
			}
			if _, err := os.Stat(args[0]); errors.Is(err, fs.ErrNotExist) {
				return &cli.ExitError{Code: exitNotFound, Msg: fmt.Sprintf("no such file: %s", args[0])}
			}
			iss, err := pki.Renew(f.dir, args[0], o)
			if err != nil {
				return err
			}
			return a.wrote(iss)
		},
	}
	c.Flags().StringVar(&f.dir, "dir", "", "directory of the CA that signs it (required)")
	f.addLifetime(c)
	return c
}
