// Package importer imports recipients.
package importer

// Import imports one batch.
func Import() error { return nil }
