package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// filtered gathers only the series of one table (or none).
type filtered struct {
	m     *Metrics
	table string
}

func (f filtered) Gather() ([]*dto.MetricFamily, error) {
	mfs, err := f.m.Registry().Gather()
	for _, mf := range mfs {
		kept := mf.Metric[:0]
		for _, s := range mf.Metric {
			if t, ok := label(s, "table"); !ok || t == f.table {
				kept = append(kept, s)
			}
		}
		mf.Metric = kept
	}
	return mfs, err
}

var _ prometheus.Gatherer = filtered{}

func label(s *dto.Metric, name string) (string, bool) {
	for _, l := range s.Label {
		if l.GetName() == name {
			return l.GetValue(), true
		}
	}
	return "", false
}

// find returns the series of name with table=table.
func find(t *testing.T, m *Metrics, name, table string) *dto.Metric {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, s := range mf.Metric {
			if v, _ := label(s, "table"); v == table {
				return s
			}
		}
	}
	t.Fatalf("no series %s{table=%q}", name, table)
	return nil
}

func metricValue(t *testing.T, m *Metrics, name, table string) float64 {
	s := find(t, m, name, table)
	if s.Gauge != nil {
		return s.Gauge.GetValue()
	}
	return s.Counter.GetValue()
}

func histogramSum(t *testing.T, m *Metrics, name, table string) float64 {
	return find(t, m, name, table).Histogram.GetSampleSum()
}
