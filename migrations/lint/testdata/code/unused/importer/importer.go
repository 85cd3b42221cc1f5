// Package importer imports recipients.
package importer

// flagV2 is another flag whose name only starts like the retired one.
const flagV2 = "legacy_import_pipeline_v2"

// Import imports one batch.
func Import() error { return nil }
