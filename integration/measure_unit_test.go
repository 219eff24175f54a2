package integration

import (
	"strings"
	"testing"
	"time"
)

// The pure parts of the mesh benchmarks: /proc parsing, the lag figures and
// the rendering of the table.

func TestParseStatCPU(t *testing.T) {
	for _, c := range []struct {
		name, in string
		want     time.Duration
		err      string
	}{
		{"cortexd", "4242 (cortexd) S 1 4242 4242 0 -1 4194560 2112 0 0 0 150 37 0 0 20 0 9 0 8123 1500000 3000 18446744073709551615", 1870 * time.Millisecond, ""},
		{"name with spaces and parens", "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 1 1 1", 70 * time.Millisecond, ""},
		{"zero", "1 (x) S 0 0 0 0 0 0 0 0 0 0 0 0", 0, ""},
		{"no parenthesis", "1 x S 0 0 0 0 0 0 0 0 0 0 0 0", 0, "no ')'"},
		{"too short", "1 (x) S 0 0 0", 0, "4 fields after the command name"},
		{"not a number", "1 (x) S 0 0 0 0 0 0 0 0 0 0 zz 0", 0, `utime/stime "zz"`},
		{"negative", "1 (x) S 0 0 0 0 0 0 0 0 0 0 -5 0", 0, `utime/stime "-5"`},
		{"huge", "1 (x) S 0 0 0 0 0 0 0 0 0 0 9223372036854775807 0", 0, "out of range"},
	} {
		got, err := parseStatCPU([]byte(c.in))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want one containing %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %v, %v; want %v", c.name, got, err, c.want)
		}
	}
}

func TestParseVmRSS(t *testing.T) {
	for _, c := range []struct {
		name, in string
		want     int64
		err      string
	}{
		{"status", "Name:\tcortexd\nVmPeak:\t 1500000 kB\nVmRSS:\t   51234 kB\nRssAnon:\t 40000 kB\n", 51234 << 10, ""},
		{"last line without newline", "Name:\tx\nVmRSS:\t12 kB", 12 << 10, ""},
		{"missing", "Name:\tx\nVmSize:\t12 kB\n", 0, "no VmRSS line"},
		{"other unit", "VmRSS:\t12 MB\n", 0, `want "VmRSS: N kB"`},
		{"no number", "VmRSS:\tkB\n", 0, `want "VmRSS: N kB"`},
		{"not a number", "VmRSS:\tx1 kB\n", 0, "is not a size in kB"},
		{"negative", "VmRSS:\t-1 kB\n", 0, "is not a size in kB"},
		{"huge", "VmRSS:\t9223372036854775807 kB\n", 0, "is not a size in kB"},
	} {
		got, err := parseVmRSS([]byte(c.in))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want one containing %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %v, %v; want %v", c.name, got, err, c.want)
		}
	}
}

// The parsers never panic, and what they accept is in range.
func FuzzParseStatCPU(f *testing.F) {
	f.Add([]byte("4242 (cortexd) S 1 4242 4242 0 -1 4194560 2112 0 0 0 150 37 0 0 20 0 9 0 8123"))
	f.Add([]byte("7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 3 4"))
	f.Add([]byte(")"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := parseStatCPU(b)
		if err == nil && d < 0 {
			t.Fatalf("negative CPU time %v from %q", d, b)
		}
	})
}

func FuzzParseVmRSS(f *testing.F) {
	f.Add([]byte("Name:\tcortexd\nVmRSS:\t   51234 kB\n"))
	f.Add([]byte("VmRSS:"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := parseVmRSS(b)
		if err == nil && (n < 0 || n > 1<<50) {
			t.Fatalf("RSS %d out of range from %q", n, b)
		}
	})
}

func TestLagIndex(t *testing.T) {
	for _, c := range []struct {
		key  string
		want int
		ok   bool
	}{
		{"l0-r500-0000000042", 42, true},
		{"l0-r500-0000000000", 0, true},
		{"l1-r500-0000000042", 0, false},  // another run's prefix
		{"l0-r500-000000004", 0, false},   // 9 digits
		{"l0-r500-00000000042", 0, false}, // 11 digits
		{"l0-r500-00000000x2", 0, false},
		{"l0-r500-+000000042", 0, false},
		{"warm-up", 0, false},
	} {
		got, ok := lagIndex("l0-r500-", []byte(c.key))
		if ok != c.ok || ok && got != c.want {
			t.Errorf("lagIndex(%q) = %d, %v; want %d, %v", c.key, got, ok, c.want, c.ok)
		}
	}
}

func TestLagsOf(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(msec int) time.Time { return t0.Add(time.Duration(msec) * time.Millisecond) }
	acked := []time.Time{at(1), at(2), at(3), at(4)}
	arrived := []time.Time{at(2), at(1), at(6), at(5)} // the second one arrived before its ack
	st := lagsOf(acked, arrived, 2*time.Second)
	if st.writes != 4 || st.early != 1 || st.rate != 2 {
		t.Errorf("writes %d, early %d, rate %v; want 4, 1, 2", st.writes, st.early, st.rate)
	}
	// lags sorted: 0, 1, 1, 3 ms
	if st.p50 != time.Millisecond || st.p99 != time.Millisecond || st.max != 3*time.Millisecond {
		t.Errorf("p50 %v p99 %v max %v; want 1ms 1ms 3ms", st.p50, st.p99, st.max)
	}
}

func TestSummarize(t *testing.T) {
	for _, c := range []struct {
		vals []float64
		want string
	}{
		{nil, "n/a"},
		{[]float64{1234.4}, "1,234"},
		{[]float64{3000, 1000, 2000}, "2,000 (1,000–3,000)"},
		{[]float64{1, 5}, "3 (1–5)"}, // the median of two is their mean
		{[]float64{-1234567}, "-1,234,567"},
	} {
		if got := summarize(c.vals, num); got != c.want {
			t.Errorf("summarize(%v) = %q, want %q", c.vals, got, c.want)
		}
	}
}

func TestMissingPeers(t *testing.T) {
	want := []string{"a", "b", "c", "d"}
	if got := missingPeers("a", map[string]bool{"b": true, "c": true, "d": true}, want); got != "" {
		t.Errorf("full: %q", got)
	}
	if got := missingPeers("b", map[string]bool{"a": true, "x": true}, want); got != "c,d" {
		t.Errorf("partial: %q, want c,d", got)
	}
}

func TestMeshReportMarkdown(t *testing.T) {
	r3 := mergeRounds([]meshFigures{
		{nodes: 3, start: "1s", raw: meshRaw{w1: 1000, w16: 8000, w64: 20000, l1000p50: 0.5, l1000p99: 2, l1000max: 9, l500p50: 0.4, l500p99: 1.5, l500max: 5, cpu10k: 3, cpuNodeUS: 100}},
		{nodes: 3, start: "2s", raw: meshRaw{w1: 3000, w16: 9000, w64: 22000, l1000p50: 0.7, l1000p99: 4, l1000max: 20, l500p50: 0.6, l500p99: 2.5, l500max: 6, cpu10k: 4, cpuNodeUS: 133}},
		{nodes: 3, start: "3s", raw: meshRaw{w1: 2000, w16: 10000, w64: 21000, l1000p50: 0.6, l1000p99: 3, l1000max: 10, l500p50: 0.5, l500p99: 2, l500max: 7, cpu10k: 5, cpuNodeUS: 167}},
	})
	r16 := mergeRounds([]meshFigures{{nodes: 16, start: "30s", raw: meshRaw{w64: 900, errs: []string{"lag at 500/s: 10 of 5000 writes arrived"}}}})
	rep := meshReport{header: []string{"BenchmarkMesh now"}, mesh: [3]meshFigures{r3, mergeRounds([]meshFigures{{nodes: 8}}), r16}, catchUp: "200,000", memory: "300 / 250 B",
		repair: "0.7 s", fsync: "130 µs / 220 µs", footer: "done"}
	md := rep.markdown()
	for _, want := range []string{
		"| figure | 3 nodes | 8 nodes | 16 nodes |\n|---|---|---|---|\n",
		"| start until fully connected | 1s, 2s, 3s |  | 30s |\n",
		"| writes/s, 1 client | 2,000 (1,000–3,000) |  |  |\n",
		"| writes/s, 64 clients | 21,000 (20,000–22,000) | n/a | 900 |\n",
		"| lag a→c at 1,000 writes/s, p50 / p99 (by watch) | 0.60 (0.50–0.70) / 3.00 (2.00–4.00) ms (max 10.00 (9.00–20.00)) |  |  |\n",
		"| lag a→c at 500 writes/s, p50 / p99 (by watch) | 0.50 (0.40–0.60) / 2.00 (1.50–2.50) ms (max 6.00 (5.00–7.00)) | n/a | n/a |\n",
		"| CPU of all cortexd per 10,000 writes (64 clients, until all nodes hold them) | 4.00 s (3.00 s–5.00 s) | n/a | n/a |\n",
		"| catch-up entries/s after missed writes, from process launch | 200,000 |  |  |\n",
		"- 16 nodes: lag at 500/s: 10 of 5000 writes arrived\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if r3.writes64 != 21000 || r3.lag1000p99 != 3 || r16.lag500p99 != 0 {
		t.Errorf("numbers behind the cells: %v %v %v", r3.writes64, r3.lag1000p99, r16.lag500p99)
	}
}
