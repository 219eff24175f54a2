package tables_test

import (
	"context"
	"fmt"
	"os"

	"github.com/cortex-mesh/cortex/tables"
)

// A table copy is written, closed (which checkpoints it), reopened from its
// directory and read back.
func ExampleTable() {
	dir, _ := os.MkdirTemp("", "cortex-example-")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	t, err := tables.Open(dir, tables.Options{Name: "fruit", Node: "home"})
	if err != nil {
		fmt.Println(err)
		return
	}
	t.Put(ctx, []byte("apple"), []byte("red"))
	t.Put(ctx, []byte("banana"), []byte("yellow"))
	t.Put(ctx, []byte("cherry"), []byte("dark red"))
	t.Delete(ctx, []byte("banana"))
	before := t.Stats()
	t.Close()

	t, err = tables.Open(dir, tables.Options{Name: "fruit", Node: "home"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer t.Close()
	recs, _ := t.Scan(nil, nil, 0)
	for _, r := range recs {
		fmt.Printf("%s=%s (written on %s)\n", r.Key, r.Value, r.Version.Origin)
	}
	after := t.Stats()
	fmt.Println("keys:", after.Keys, "tombstones:", after.Tombstones, "log offset:", after.Applied)
	fmt.Println("same digest after restart:", before.Digest == after.Digest)
	// Output:
	// apple=red (written on home)
	// cherry=dark red (written on home)
	// keys: 2 tombstones: 1 log offset: 4
	// same digest after restart: true
}
