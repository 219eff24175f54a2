package integration

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cortex-mesh/cortex/api"
)

// A key or value over the node's limit is refused with its size as the
// user sent it (not the size of the base64 request that carries it), over
// the Unix socket and over the mTLS listener alike, and nothing is written.
func TestPutSizesAsSent(t *testing.T) {
	dir := rpcCerts(t, "home", "alice")
	addr := freeAddr(t)
	n := rpcNode(t, "home", dir, addr)
	n.start()
	n.waitLog(`msg="rpc listening" addr=` + regexp.QuoteMeta(addr))
	n.must("table", "create", "t")
	n.must("identity", "add", "alice")
	n.must("acl", "grant", "alice", "t", "write")

	paths := map[string]func(stdin string, args ...string) result{
		"socket": n.cliIn,
		"rpc": func(stdin string, args ...string) result {
			return remoteIn(t, stdin, addr, dir, dir, "client-alice.crt", "client-alice.key", args...)
		},
	}
	cases := []struct {
		name       string
		key, value string // value "-" reads stdin
		stdin      string
		want       string
	}{
		{"2 MiB value (its request is over the body limit)", "k", "-", strings.Repeat("v", 2<<20),
			"value is 2,097,152 bytes, over the limit of 1,048,576"},
		{"value one byte over (its request fits the body limit)", "k", "-", strings.Repeat("v", 1<<20+1),
			"value is 1,048,577 bytes, over the limit of 1,048,576"},
		{"2 KiB key", strings.Repeat("k", 2<<10), "v", "",
			"key is 2,048 bytes, over the limit of 1,024"},
		{"100,000-byte key", strings.Repeat("k", 100000), "v", "",
			"key is 100,000 bytes, over the limit of 1,024"},
	}
	for path, run := range paths {
		for _, c := range cases {
			r := run(c.stdin, "put", "t", c.key, c.value)
			expect(t, path+": "+c.name, r, 1, c.want)
			if strings.Contains(r.stderr, "request body") || strings.Contains(r.stderr, "base64") {
				t.Errorf("%s: %s: the error speaks of the request, not of what was sent: %s", path, c.name, r.stderr)
			}
		}
		// At the limit it is taken.
		if r := run(strings.Repeat("v", 1<<20), "put", "t", strings.Repeat("k", 1<<10), "-"); r.code != 0 {
			t.Errorf("%s: key and value at their limits: %+v", path, r)
		}
	}
	// Nothing refused was written: the table holds the one key at its limit.
	res, err := n.client().Scan(context.Background(), api.ScanRequest{Table: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != 1 || string(res.Records[0].Key) != strings.Repeat("k", 1<<10) {
		t.Errorf("after the refused puts the table holds %d records, want the one key at the limit", len(res.Records))
	}
}

// remoteIn is remote with stdin.
func remoteIn(t *testing.T, stdin, addr, caDir, certDir, crt, key string, args ...string) result {
	t.Helper()
	flags := []string{"--addr", addr, "--ca", filepath.Join(caDir, "ca.crt"),
		"--cert", filepath.Join(certDir, crt), "--key", filepath.Join(certDir, key)}
	cmd := exec.Command(filepath.Join(bin, "cortex"), append(flags, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run cortex %v: %v", args, err)
	}
	return result{out.String(), errb.String(), cmd.ProcessState.ExitCode()}
}
