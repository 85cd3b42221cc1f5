package store

// WithHistorySQL makes the store look up the history of a batch with query instead, so that
// tests can make the look-up fail.
func WithHistorySQL(query string) Option {
	return func(s *Store) { s.historySQL = query }
}
