// Package ingestbench measures event ingestion end to end against real processes and a real
// PostgreSQL: BenchmarkIngestStream (the acknowledged gRPC stream of events-ingest) and
// BenchmarkIngestREST (the gateway's events:batch endpoint), each beside two baselines measured
// in every round of 100,000 events, on the same table, right before the ingestion in one round
// and right after it in the next: one pgx CopyFrom of as many rows of the same shape straight
// into PostgreSQL (the raw limit) and one INSERT per event (the naive design).
//
// Run with `make bench BENCH=Ingest`, which uses the benchmark cluster of scripts/stack.sh:
// durable as in production (fsync, synchronous_commit and full_page_writes on). Events are
// acknowledged after their batch committed and the naive design commits once per event, so
// what a commit costs decides what the figures mean; on the fast test cluster a commit does not
// wait for the disk. By hand: `scripts/stack.sh bench-start`, then
// `eval "$(scripts/stack.sh bench-env)"` and `go test -run '^$' -bench Ingest ./bench/ingestbench`
// in tools. Each ingestion benchmark reports events/s, ratio-vs-copy, ratio-vs-insert and p99-ack-ms
// (the time from sending a chunk or request to its acknowledgement), plus copy-events/s and
// insert-events/s, and logs the server's durability settings with its figures.
//
// BenchmarkCampaignStats (`make bench BENCH=CampaignStats`) measures the read side: the
// statistics of a campaign of 10 million events (GetCampaignStats through REST and gRPC)
// against the naive query over its events; see docs/events.md.
package ingestbench
