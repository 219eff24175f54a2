package ratelog

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestLog(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	reason := errors.New("certificate signed by another CA")
	// An event notes one (key set) or runs the periodic flush (key empty);
	// want are the reports it gives, as key: count.
	type event struct {
		at   time.Duration
		key  string
		want map[string]int
	}
	for _, tc := range []struct {
		name   string
		max    int
		events []event
	}{
		{"first at once, then once a minute with the count", 10, []event{
			{0, "a", map[string]int{"a": 1}},
			{time.Second, "a", nil},
			{30 * time.Second, "a", nil},
			{59 * time.Second, "a", nil},
			{61 * time.Second, "a", map[string]int{"a": 4}},
			{62 * time.Second, "a", nil},
		}},
		{"keys are counted apart", 10, []event{
			{0, "a", map[string]int{"a": 1}},
			{time.Second, "b", map[string]int{"b": 1}},
			{2 * time.Second, "a", nil},
			{3 * time.Second, "b", nil},
			{4 * time.Second, "b", nil},
		}},
		{"flush reports what is pending once it is due, then forgets", 10, []event{
			{0, "a", map[string]int{"a": 1}},
			{10 * time.Second, "a", nil},
			{20 * time.Second, "a", nil},
			{30 * time.Second, "", nil}, // not due yet
			{60 * time.Second, "", map[string]int{"a": 2}},
			{120 * time.Second, "", nil}, // nothing pending: forgotten
			{121 * time.Second, "a", map[string]int{"a": 1}},
		}},
		{"past max keys, the others count together", 2, []event{
			{0, "a", map[string]int{"a": 1}},
			{0, "b", map[string]int{"b": 1}},
			{0, "c", map[string]int{"other": 1}},
			{time.Second, "c", nil},
			{2 * time.Second, "d", nil},
			{60 * time.Second, "", map[string]int{"other": 2}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := New(time.Minute, tc.max, "other")
			for i, e := range tc.events {
				var reps []Report[string]
				if e.key != "" {
					if rep, ok := l.Note(e.key, reason, t0.Add(e.at)); ok {
						reps = append(reps, rep)
					}
				} else {
					reps = l.Flush(t0.Add(e.at))
				}
				got := map[string]int{}
				for _, rep := range reps {
					got[rep.Key] = rep.N
					if rep.Err != reason {
						t.Errorf("event %d: reason %v", i, rep.Err)
					}
				}
				if len(got) != len(e.want) {
					t.Fatalf("event %d: reported %v, want %v", i, got, e.want)
				}
				for k, n := range e.want {
					if got[k] != n {
						t.Fatalf("event %d: reported %v, want %v", i, got, e.want)
					}
				}
			}
		})
	}
}

// Run reports what is pending once an interval, and returns when its
// context ends.
func TestRun(t *testing.T) {
	l := New(10*time.Millisecond, 10, "other")
	start := time.Now()
	l.Note("a", errors.New("x"), start)
	l.Note("a", errors.New("y"), start)
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan Report[string], 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Run(ctx, func(r Report[string]) {
			select {
			case got <- r:
			default:
			}
		})
	}()
	select {
	case r := <-got:
		if r.Key != "a" || r.N != 1 || r.Err.Error() != "y" {
			t.Fatalf("report %+v, want a: 1 (the latest reason, y)", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run never reported the pending event")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
