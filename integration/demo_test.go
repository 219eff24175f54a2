package integration

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// make demo works (CI runs it through this test): every step it shows
// checks its own outcome and the script exits non-zero on the first one
// that does not hold.
func TestMakeDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries and runs three nodes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", "demo.sh").CombinedOutput()
	if err != nil {
		t.Fatalf("demo.sh: %v\n%s", err, out)
	}
	for _, want := range []string{"degraded", "in sync", "green", "cortexd laptop exited 0"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the demo's output lacks %q:\n%s", want, out)
		}
	}
}
