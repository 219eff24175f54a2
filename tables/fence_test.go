package tables

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// Fence, under concurrent local writers: every write it took is stamped
// before the time it returns, every one sent after fails with ErrFenced, remote
// entries are still applied, and Unfence lets local writes in again.
func TestFence(t *testing.T) {
	tb := utNew(t, "a")
	ctx := context.Background()
	var mu sync.Mutex
	var took []uint64 // versions of the writes it acknowledged
	var refused int
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100_000; i++ { // bounded: the fence comes long before
				select {
				case <-stop:
					return
				default:
				}
				v, err := tb.Put(ctx, fmt.Appendf(nil, "w%d-%06d", w, i), []byte("v"))
				mu.Lock()
				switch {
				case errors.Is(err, ErrFenced):
					refused++
				case err != nil:
					t.Error(err)
				default:
					took = append(took, v.HLC)
				}
				mu.Unlock()
			}
		}()
	}
	waitFor := func(what string, done func() bool) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			ok := done()
			mu.Unlock()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("never: %s", what)
			}
			time.Sleep(time.Millisecond) // poll interval
		}
	}
	waitFor("200 writes in before the fence", func() bool { return len(took) >= 200 })
	at, err := tb.Fence(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Put(ctx, []byte("late"), []byte("v")); !errors.Is(err, ErrFenced) {
		t.Fatalf("a write after Fence returned: %v, want ErrFenced", err)
	}
	waitFor("100 writes refused after it", func() bool { return refused >= 100 })
	close(stop)
	wg.Wait()
	for _, v := range took { // those answered after Fence returned too
		if v >= at {
			t.Fatalf("a write stamped %d, not before the fence's %d", v, at)
		}
	}
	if n := utApply(t, tb, utPut("remote", "r", at+1, "b")); n != 1 {
		t.Fatalf("a fenced copy adopted %d remote entries, want 1", n)
	}
	tb.Unfence()
	if _, err := tb.Put(ctx, []byte("after"), []byte("v")); err != nil {
		t.Fatalf("a write after Unfence: %v", err)
	}
}
