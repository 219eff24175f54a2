package main

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/cortex-mesh/cortex/scope"
)

// sourceKind is where a connection setting comes from.
type sourceKind int

const (
	fromFlag    sourceKind = iota // a command-line flag
	fromEnv                       // a $CORTEX_* variable
	fromProfile                   // a profile of the client configuration file
)

// connSource is what one source of settings (the flags, the environment or
// a profile) says about the node to call: "" where it says nothing.
type connSource struct {
	Kind    sourceKind
	Profile string // the profile's name (fromProfile)

	Addr, Socket     string
	CA, Cert, Key    string
	CertsDir, Client string
}

// label names one setting of the source for messages: "--certs-dir",
// "$CORTEX_CERTS_DIR" or "certs_dir of profile office". key is the name in
// the configuration file (certs_dir).
func (s connSource) label(key string) string {
	switch s.Kind {
	case fromFlag:
		return "--" + strings.ReplaceAll(key, "_", "-")
	case fromEnv:
		return "$CORTEX_" + strings.ToUpper(key)
	}
	return key + " of profile " + s.Profile
}

// remoteSet names the flags of remote mode other than --addr that the
// source sets.
func (s connSource) remoteSet() []string {
	var set []string
	for _, f := range []struct{ key, v string }{{"ca", s.CA}, {"cert", s.Cert}, {"key", s.Key}, {"certs_dir", s.CertsDir}, {"client", s.Client}} {
		if f.v != "" {
			set = append(set, s.label(f.key))
		}
	}
	return set
}

// target is the node to call, resolved from the sources: a Unix socket, or
// a remote node's address with the client certificate to show it.
type target struct {
	Socket string // local mode (Addr is ""): the node's Unix socket

	Addr, Host string // remote mode: HOST:PORT and its HOST
	// CA, Cert and Key are the files named outright; "" for those that
	// come from CertsDir (ca.crt and client-CLIENT.crt, .key).
	CA, Cert, Key    string
	CertsDir, Client string

	// Labels of the settings, for messages.
	AddrFrom, CAFrom, CertFrom, KeyFrom, DirFrom, ClientFrom string
}

// caFromDir and pairFromDir report whether the CA and the client pair are
// to be found in CertsDir.
func (t target) caFromDir() bool   { return t.CA == "" && t.CertsDir != "" }
func (t target) pairFromDir() bool { return t.Cert == "" && t.CertsDir != "" }

// resolveTarget decides which node to call and with which files, from the
// sources in order of precedence: the flags, then the environment, then
// the profile (any may be zero). It reads no file.
//
// The rules:
//   - --socket calls that socket: it may not come with --addr or another
//     remote flag, and the environment and the profile are not looked at.
//   - Otherwise an address from the first source that has one means remote
//     mode; with none, the socket is the first source's that has one, else
//     defaultSocket, and remote flags are a usage error (the environment's
//     and the profile's are ignored).
//   - In remote mode the CA is taken from the first source that names it
//     or a certificates directory, and the certificate and key together
//     from the first source that names either or a certificates directory:
//     what one source names is never mixed with a lower source's files.
//     The client name is the first source's that has one, up to the source
//     of the directory.
func resolveTarget(srcs []connSource, defaultSocket string) (target, error) {
	var flags connSource
	if len(srcs) > 0 && srcs[0].Kind == fromFlag {
		flags = srcs[0]
	}
	if flags.Socket != "" {
		if flags.Addr != "" {
			return target{}, fmt.Errorf("give --socket (a local node) or --addr (a remote node), not both")
		}
		if set := flags.remoteSet(); len(set) > 0 {
			return target{}, fmt.Errorf("%s: for a remote node, not --socket: give its --addr HOST:PORT instead", strings.Join(set, ", "))
		}
		return target{Socket: flags.Socket}, nil
	}
	var t target
	for _, s := range srcs {
		if s.Addr != "" {
			t.Addr, t.AddrFrom = s.Addr, s.label("addr")
			break
		}
	}
	if t.Addr == "" {
		if set := flags.remoteSet(); len(set) > 0 {
			return target{}, fmt.Errorf("%s: for a remote node: give its --addr HOST:PORT too", strings.Join(set, ", "))
		}
		t.Socket = defaultSocket
		for _, s := range srcs {
			if s.Socket != "" {
				t.Socket = s.Socket
				break
			}
		}
		return t, nil
	}
	host, err := checkAddr(t.Addr)
	if err != nil {
		return target{}, fmt.Errorf("bad %s %q: %w", t.AddrFrom, t.Addr, err)
	}
	t.Host = host

	var dirSrc = -1
	for i, s := range srcs {
		if s.CertsDir != "" {
			dirSrc = i
			t.CertsDir, t.DirFrom = s.CertsDir, s.label("certs_dir")
			break
		}
	}
	// reaches reports whether source i is at or above the directory's.
	reaches := func(i int) bool { return dirSrc < 0 || i <= dirSrc }
	for i, s := range srcs {
		if !reaches(i) {
			break
		}
		if s.CA != "" {
			t.CA, t.CAFrom = s.CA, s.label("ca")
			break
		}
	}
	var missing []string
	for i, s := range srcs {
		if !reaches(i) {
			break
		}
		if s.Cert != "" || s.Key != "" {
			t.Cert, t.CertFrom = s.Cert, s.label("cert")
			t.Key, t.KeyFrom = s.Key, s.label("key")
			if s.Cert == "" {
				missing = append(missing, s.label("cert"))
			}
			if s.Key == "" {
				missing = append(missing, s.label("key"))
			}
			break
		}
	}
	clientFlag := false
	for i, s := range srcs {
		if !reaches(i) {
			break
		}
		if s.Client != "" {
			t.Client, t.ClientFrom, clientFlag = s.Client, s.label("client"), s.Kind == fromFlag
			break
		}
	}
	if t.CA == "" && t.CertsDir == "" {
		missing = append([]string{"--ca"}, missing...)
	}
	if t.Cert == "" && t.Key == "" && t.CertsDir == "" {
		missing = append(missing, "--cert", "--key")
	}
	if len(missing) > 0 {
		return target{}, fmt.Errorf("%s needs --certs-dir DIR, or --ca, --cert and --key (missing: %s)", t.AddrFrom, strings.Join(missing, ", "))
	}
	if t.Client != "" {
		if err := scope.ValidateNodeName(t.Client); err != nil {
			return target{}, fmt.Errorf("bad %s %q: a client identity is 1 to 63 of a-z, 0-9, '-' and '_', starting with a letter or digit", t.ClientFrom, t.Client)
		}
		if clientFlag && !t.pairFromDir() {
			return target{}, fmt.Errorf("--client picks a certificate in --certs-dir, but the certificate is %s: give one or the other", t.CertFrom)
		}
	}
	if !t.pairFromDir() {
		t.Client, t.ClientFrom = "", "" // it picks nothing
	}
	if !t.caFromDir() && !t.pairFromDir() {
		t.CertsDir, t.DirFrom = "", "" // nothing comes from it
	}
	if t.caFromDir() {
		t.CAFrom = t.DirFrom
	}
	if t.pairFromDir() {
		t.CertFrom, t.KeyFrom = t.DirFrom, t.DirFrom
	}
	return t, nil
}

// checkAddr checks a HOST:PORT address and returns its host.
func checkAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return "", fmt.Errorf("give HOST:PORT, such as node1.example.com:7947 or 10.0.0.5:7947")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("the port must be a number from 1 to 65535")
	}
	return host, nil
}

// clientsIn returns the client identities whose certificates are among
// the file names of a certificates directory (client-NAME.crt), sorted.
func clientsIn(names []string) []string {
	var clients []string
	for _, n := range names {
		id, ok := strings.CutPrefix(n, "client-")
		if !ok {
			continue
		}
		if id, ok = strings.CutSuffix(id, ".crt"); ok && scope.ValidateNodeName(id) == nil {
			clients = append(clients, id)
		}
	}
	slices.Sort(clients)
	return slices.Compact(clients)
}

// severalClientsError is returned by pickClient when the directory holds
// more than one client certificate and none was named: a usage error.
type severalClientsError struct{ msg string }

func (e severalClientsError) Error() string { return e.msg }

// pickClient decides whose certificate of the directory dir (labelled
// from) to use, given the clients whose certificates it holds: the one
// named, else the only one.
func pickClient(client string, clients []string, dir, from string) (string, error) {
	switch {
	case client != "" && slices.Contains(clients, client):
		return client, nil
	case client != "" && len(clients) == 0:
		return "", fmt.Errorf("no client-%s.crt in %s %s, and no other client certificate (make it with: cortex cert create-client %s --dir %s)", client, from, dir, client, dir)
	case client != "":
		return "", fmt.Errorf("no client-%s.crt in %s %s; it has the certificates of %s", client, from, dir, strings.Join(clients, ", "))
	case len(clients) == 1:
		return clients[0], nil
	case len(clients) == 0:
		return "", fmt.Errorf("no client certificate (client-NAME.crt) in %s %s: make one with cortex cert create-client NAME --dir %s, or point %s at the directory that has it", from, dir, dir, from)
	}
	return "", severalClientsError{fmt.Sprintf("%s %s has the certificates of %d clients (%s): say which with --client NAME ($CORTEX_CLIENT, or client in the profile)",
		from, dir, len(clients), strings.Join(clients, ", "))}
}
