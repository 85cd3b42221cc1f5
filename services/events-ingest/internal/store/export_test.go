package store

import (
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// StagingTable is the temporary table a batch is copied into.
const StagingTable = stagingTable

// HistorySQL is the look-up of a batch's history and HistorySettingsSQL the settings it
// runs under, for EXPLAIN.
const (
	HistorySQL         = historySQL
	HistorySettingsSQL = historySettingsSQL
)

// WithHistorySQL makes the store look up the history of a batch with query instead, so that
// tests can make the look-up fail or stall.
func WithHistorySQL(query string) Option {
	return func(s *Store) { s.historySQL = query }
}

// WithHistoryTimeout bounds the look-up with d instead of DefaultHistoryTimeout.
func WithHistoryTimeout(d time.Duration) Option {
	return func(s *Store) { s.historyTimeout = d }
}

// WithoutMachineMarking writes the partitioned table without classifying (every event
// human), as the storage was before machine marking, for benchmarks to compare with.
func WithoutMachineMarking() Option {
	return func(s *Store) { s.noMarking = true }
}

// LookupCount returns the look-ups m counted with result.
func LookupCount(m *Metrics, result string) float64 {
	return testutil.ToFloat64(m.lookups.WithLabelValues(result))
}
