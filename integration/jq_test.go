package integration

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helpExamples walks the help of bin (cortex or cortex-wal) command by
// command and returns every example line that pipes into jq, with the
// command it is an example of.
func helpExamples(t *testing.T, bin string) map[string]string {
	t.Helper()
	commandLine := regexp.MustCompile(`^  ([a-z][a-z0-9-]*)\s+\S`)
	found := map[string]string{}
	var walk func(path []string)
	walk = func(path []string) {
		if len(path) > 3 {
			t.Fatalf("%s %s: commands nest deeper than any cortex command does", filepath.Base(bin), strings.Join(path, " "))
		}
		out, err := exec.Command(bin, append(slices.Clone(path), "--help")...).Output()
		if err != nil {
			t.Fatalf("%s %s --help: %v", filepath.Base(bin), strings.Join(path, " "), err)
		}
		// The sections that follow "Usage:" (cobra's, after the long
		// text): examples, and the command groups.
		section, usage := "", false
		var subs []string
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			line := sc.Text()
			if line != "" && line[0] != ' ' && strings.HasSuffix(line, ":") {
				section, usage = line, usage || line == "Usage:"
				continue
			}
			if !usage {
				continue
			}
			switch section {
			case "Examples:":
				if strings.Contains(line, "| jq ") {
					found[strings.TrimSpace(line)] = strings.Join(path, " ")
				}
			case "Usage:", "Flags:", "Global Flags:", "Exit codes:", "":
			default:
				if m := commandLine.FindStringSubmatch(line); m != nil && m[1] != "help" && m[1] != "completion" {
					subs = append(subs, m[1])
				}
			}
		}
		for _, s := range subs {
			walk(append(slices.Clone(path), s))
		}
	}
	walk(nil)
	return found
}

// jqExample is one example of the help that pipes into jq: the command's
// words (with the example's paths swapped for this test's) and the jq part,
// run by sh as written.
type jqExample struct {
	line string
	argv []string
	jq   string
	env  []string // added to the command's environment
}

func parseJQExample(t *testing.T, line string, swap map[string]string, env ...string) jqExample {
	t.Helper()
	left, right, ok := strings.Cut(line, " | ")
	if !ok || !strings.HasPrefix(right, "jq ") || strings.ContainsAny(left, `'"\$`) {
		t.Fatalf("example %q is not COMMAND ARGS | jq ...: the test cannot run it", line)
	}
	ex := jqExample{line: line, jq: right, env: env}
	for _, w := range strings.Fields(left) {
		if r, ok := swap[w]; ok {
			w = r
		}
		ex.argv = append(ex.argv, w)
	}
	return ex
}

// run runs the example's command into its jq filter, in dir; during, if
// set, runs while the command runs, given the command's stderr and jq's
// output so far (the command is then ended with SIGTERM, as a watch is
// ended). It returns jq's output.
func (ex jqExample) run(t *testing.T, dir string, during func(stderr, out *syncBuffer)) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ex.argv[0], ex.argv[1:]...)
	jq := exec.CommandContext(ctx, "sh", "-c", ex.jq)
	cmd.Dir, jq.Dir = dir, dir
	cmd.Env = append(os.Environ(), ex.env...)
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	jq.Stdin = pipe
	var cmdErr, jqErr, jqOut syncBuffer
	cmd.Stderr, jq.Stdout, jq.Stderr = &cmdErr, &jqOut, &jqErr
	if err := jq.Start(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if during != nil {
		during(&cmdErr, &jqOut)
		cmd.Process.Signal(syscall.SIGTERM)
	}
	cerr := cmd.Wait()
	jerr := jq.Wait()
	if cerr != nil || jerr != nil || jqErr.String() != "" {
		t.Errorf("example %q: command: %v (stderr %q); jq: %v (stderr %q)", ex.line, cerr, cmdErr.String(), jerr, jqErr.String())
	}
	return jqOut.String()
}

// Every example in the help of cortex and cortex-wal that pipes into jq
// runs, as written, on the output of a real node (the CLI's JSON shapes:
// arrays, objects, JSON lines), and prints what it says it does.
func TestHelpJQExamples(t *testing.T) {
	if _, err := exec.LookPath("jq"); err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("jq is not installed (CI installs it: .ci/run)")
		}
		t.Fatal("jq is not installed: the help's jq examples cannot be tested")
	}
	certs := rpcCerts(t, "home", "alice")
	addr := freeAddr(t)
	n := rpcNode(t, "home", certs, addr)
	n.start()
	n.waitLog(`msg="rpc listening" addr=` + regexp.QuoteMeta(addr))
	n.must("table", "create", "users", "--scope", "all")
	n.must("table", "create", "fruit")
	n.must("put", "users", "alice", `{"plan":"pro"}`)
	n.must("put", "users", "bob", "x")
	n.must("del", "users", "bob")
	n.must("put", "fruit", "apple", "red")
	n.must("put", "fruit", "banana", "yellow")
	n.must("identity", "add", "alice")
	n.must("identity", "add", "office", "--kind", "node")
	n.must("acl", "grant", "alice", "users", "read")
	n.must("node", "revoke", "ghost", "--yes")

	// The examples run in a directory where certs/ is the test's.
	work := t.TempDir()
	if err := os.Symlink(certs, filepath.Join(work, "certs")); err != nil {
		t.Fatal(err)
	}
	cortexBin, walBin := filepath.Join(bin, "cortex"), filepath.Join(bin, "cortex-wal")
	swap := map[string]string{"cortex": cortexBin, "cortex-wal": walBin, "./cortex-data": n.dir, "/var/lib/cortex": n.dir}

	// What each example prints here ("" only where this one-node mesh has
	// nothing to select: no connected peer, no certificate expiring).
	want := map[string]string{
		`cortex get users alice --json | jq -r .value`:                                      `{"plan":"pro"}` + "\n",
		`cortex scan users --json | jq -r '.[].key'`:                                        "alice\n",
		`cortex export fruit --prefix a | jq -r .key`:                                       "apple\n",
		`cortex watch users --json | jq -r 'select(.op == "del") | .key'`:                   "carol\n",
		`cortex table list --json | jq -r '.[] | select(.held) | .name'`:                    "cortex_meta\ncortex_identities\ncortex_acls\nfruit\nscratch\nusers\n", // scratch: bench write ran before (the examples run in order)
		`cortex identity list --json | jq -r '.[] | select(.kind == "node") | .name'`:       "office\n",
		`cortex acl list --json | jq -r '.[] | select(.identity == "alice") | .table'`:      "users\n",
		`cortex node status --json | jq -r .node`:                                           "home\n",
		`cortex node revocations --json | jq -r '.[].target'`:                               "ghost\n",
		`cortex node forgotten --json | jq -r '.[].node'`:                                   "",
		`cortex sync status fruit --json | jq '.tables[0].state'`:                           "\"in_sync\"\n",
		`cortex mesh peers --json | jq -r '.[] | select(.connected) | .node'`:               "",
		`cortex cert list --dir certs --json | jq -r '.[] | select(.expires_soon) | .file'`: "",
		`cortex cert show certs/ca.crt --json | jq .days_left`:                              "", // checked below
		`cortex bench write --table scratch --json | jq .ops_per_s`:                         "", // checked below
		`cortex-wal ls /var/lib/cortex --json | jq '.tables[] | {dir, last, status}'`:       "", // checked below
		`cortex-wal dump ./cortex-data users --json | jq -c '.[] | select(.op == "del")'`:   "", // checked below
		`cortex-wal verify /var/lib/cortex --json | jq '.tables[] | select(.ok | not)'`:     "",
	}
	examples := helpExamples(t, cortexBin)
	walExamples := helpExamples(t, walBin)
	for line, cmd := range walExamples {
		examples[line] = cmd
	}
	for line := range examples {
		if _, ok := want[line]; !ok {
			t.Errorf("the help has a jq example this test does not know: %q (add what it prints to want)", line)
		}
	}
	for line := range want {
		if _, ok := examples[line]; !ok {
			t.Errorf("the help no longer has the example %q", line)
		}
	}

	check := func(line, got string) {
		t.Helper()
		switch {
		case strings.Contains(line, "cert show"):
			if days := strings.TrimSpace(got); days != "3649" && days != "3650" {
				t.Errorf("%q printed %q, want the CA's days left (10 years)", line, got)
			}
		case strings.Contains(line, "bench write"):
			if !regexp.MustCompile(`^[0-9]+(\.[0-9]+)?(e[+-]?[0-9]+)?\n$`).MatchString(got) {
				t.Errorf("%q printed %q, want a number", line, got)
			}
		case strings.Contains(line, "cortex-wal ls"):
			if !strings.Contains(got, `"dir": "users-`) || !strings.Contains(got, `"dir": "fruit-`) {
				t.Errorf("%q printed %q, want the users and fruit copies", line, got)
			}
		case strings.Contains(line, "cortex-wal dump"):
			// One line per delete (bob's, and carol's if the watch ran
			// first), each with hlc as a decimal string.
			del := regexp.MustCompile(`^\{"offset":\d+,"hlc":"\d+","hlc_time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z",.*"op":"del","key":"(bob|carol)".*\}$`)
			lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
			for _, l := range lines {
				if !del.MatchString(l) {
					t.Errorf("%q printed %q, want deletes only", line, l)
				}
			}
			if !strings.Contains(got, `"key":"bob"`) {
				t.Errorf("%q printed %q, want bob's delete", line, got)
			}
		default:
			if got != want[line] {
				t.Errorf("%q printed %q, want %q", line, got, want[line])
			}
		}
	}
	var walLines []string
	lines := make([]string, 0, len(examples))
	for line := range examples {
		lines = append(lines, line)
	}
	slices.Sort(lines)
	for _, line := range lines {
		// The examples name no socket: $CORTEX_SOCKET points at the node's.
		ex := parseJQExample(t, line, swap, "CORTEX_SOCKET="+n.socket)
		switch {
		case strings.HasPrefix(line, "cortex-wal "):
			walLines = append(walLines, line) // once cortexd has stopped
			continue
		case strings.Contains(line, "cortex watch"):
			// A watch goes on until it is interrupted: once it watches,
			// delete a key and wait for the filter to have had it.
			check(line, ex.run(t, work, func(stderr, out *syncBuffer) {
				deadline := time.Now().Add(10 * time.Second)
				for !strings.Contains(stderr.String(), "watching users") && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
				}
				n.must("put", "users", "carol", "c")
				n.must("del", "users", "carol")
				for !strings.Contains(out.String(), "carol\n") && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
				}
			}))
		default:
			check(line, ex.run(t, work, nil))
		}
	}
	if err := n.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	for _, line := range walLines {
		check(line, parseJQExample(t, line, swap).run(t, work, nil))
	}
}
