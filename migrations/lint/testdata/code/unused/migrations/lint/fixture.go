// Package lint is skipped: code under migrations/ uses no flags.
package lint

const retired = "legacy_import_pipeline"
