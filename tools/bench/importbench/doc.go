// Package importbench holds the end-to-end tests and the benchmark of recipient CSV imports:
// the recipient service, the gateway and the worker run as real processes on free ports, a
// file is uploaded through the REST API and imported by the worker's job. BenchmarkImport
// (make bench BENCH=Import) compares a 1,000,000-row import with PostgreSQL's own bulk path
// (psql \copy into a staging table, then one INSERT ... ON CONFLICT), measured in the same run.
// See docs/imports.md.
package importbench
