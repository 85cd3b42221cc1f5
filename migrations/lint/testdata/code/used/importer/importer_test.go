package importer

import "testing"

// A test still exercising the old path keeps the flag in use.
func TestLegacyPipeline(t *testing.T) {
	t.Setenv("FF_OVERRIDE", "legacy_import_pipeline=on")
}
