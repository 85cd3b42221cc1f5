// Package ingestbench measures event ingestion end to end against real processes and a real
// PostgreSQL: BenchmarkIngestStream (the acknowledged gRPC stream of events-ingest) and
// BenchmarkIngestREST (the gateway's events:batch endpoint), each beside two baselines measured
// in every iteration, right before the ingestion, on the same table: one pgx CopyFrom of as
// many rows of the same shape straight into PostgreSQL (the raw limit) and one INSERT per event
// (the naive design).
//
// Run with `make bench BENCH=Ingest` (or `go test -run '^$' -bench Ingest ./bench/ingestbench`
// in tools with HERALD_TEST_DATABASE_URL and HERALD_TEST_REDIS_ADDR set). Every benchmark
// reports events/s, ratio-vs-copy, ratio-vs-insert and p99-ack-ms (the time from sending a
// chunk or request to its acknowledgement).
package ingestbench
