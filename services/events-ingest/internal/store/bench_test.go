package store_test

import (
	"context"
	"crypto/md5"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/flags"
	"github.com/heraldmail/herald/libs/flags/flagstest"
	"github.com/heraldmail/herald/libs/jobs"
	"github.com/heraldmail/herald/services/events-ingest/internal/events"
	"github.com/heraldmail/herald/services/events-ingest/internal/store"
	"github.com/stretchr/testify/require"
)

// Shape of BenchmarkInsertMachineMarking.
const (
	// benchStored is the number of events stored before the benchmark, in each table: the
	// domain's recent events, all within the last two hours (the range the look-up of a
	// batch would scan without the recipient index).
	benchStored = 200_000
	// benchBatch is the size of a written batch (INGEST_BATCH_SIZE's default).
	benchBatch = 2000
	// benchBatches is the number of batches each store writes per iteration.
	benchBatches = 10
)

// BenchmarkInsertMachineMarking measures what machine marking costs the write path: in
// every iteration, batch after batch, the same workload goes through three stores on one
// database holding benchStored recent events of the domain in each table: the legacy
// storage (flag off, nothing classified), the partitioned storage without marking (as
// before machine marking) and with it (classification and the history look-up). Opens and
// clicks of a campaign, half of their recipients with a stored delivery, each with a user
// agent of its own (the worst case for the classifier).
//
// It reports events/s of the marked storage, ratio-vs-unmarked and ratio-vs-legacy (its
// rate over theirs), and the p99 of a batch's Insert for each.
func BenchmarkInsertMachineMarking(b *testing.B) {
	ctx := context.Background()
	on := flagstest.New(b)
	flagstest.With(b, on, flags.EventsPartitionedStorage, true)
	_, bn := setup(b, on)
	ins, err := jobs.NewInserter(bn.events)
	require.NoError(b, err)
	stores := []struct {
		name string
		s    *store.Store
	}{
		{"legacy", store.New(bn.events, ins)},
		{"unmarked", store.New(bn.events, ins, store.WithFlags(on), store.WithoutMachineMarking())},
		{"marked", store.New(bn.events, ins, store.WithFlags(on))},
	}
	require.True(b, stores[2].s.Partitioned(ctx, bn.tenant))

	now := time.Now().UTC()
	campaign := uuid.New()
	_, err = bn.pool.Exec(ctx, `SELECT events.create_engagement_partitions($1, $2)`, now.AddDate(0, 0, -7), now.Add(time.Hour))
	require.NoError(b, err)
	for _, table := range []struct{ name, time string }{{"engagement_events", "created_at"}, {"email_events", "occurred_at"}} {
		_, err := bn.pool.Exec(ctx, `INSERT INTO events.`+table.name+`
			(id, company_id, workspace_id, domain_id, type, campaign_id, recipient_id, `+table.time+`, user_agent)
			SELECT gen_random_uuid(), $1, $2, $3, t.type, $4, md5(n::text)::uuid, $5::timestamptz - (n % 7200) * interval '1 second', ''
			FROM generate_series(1, $6::int / 2) AS n CROSS JOIN (VALUES ('sent'), ('delivered')) AS t (type)`,
			bn.tenant.CompanyID, bn.tenant.WorkspaceID, bn.tenant.DomainID, campaign, now, benchStored)
		require.NoError(b, err)
		_, err = bn.pool.Exec(ctx, `ANALYZE events.`+table.name)
		require.NoError(b, err)
	}

	// batch returns the next batch: opens and clicks (one in three), every other one by a
	// recipient with a stored delivery.
	next := 0
	batch := func() []events.Event {
		evs := make([]events.Event, benchBatch)
		for i := range evs {
			next++
			r := uuid.New()
			if next%2 == 0 && next/2 <= benchStored/2 {
				r = uuid.MustParse(fmt.Sprintf("%x", md5.Sum([]byte(strconv.Itoa(next/2)))))
			}
			typ := events.TypeOpen
			if next%3 == 0 {
				typ = events.TypeClick
			}
			// A user agent of its own: the classifier's per-batch cache saves nothing.
			evs[i] = pairEvent(typ, campaign, r, now.Add(-time.Duration(next%7200)*time.Second),
				humanUA+" Build/"+strconv.Itoa(next), "https://example.com/"+strconv.Itoa(next%5))
		}
		return evs
	}

	elapsed := make([]time.Duration, len(stores))
	lat := make([][]time.Duration, len(stores))
	written := 0
	for b.Loop() {
		for k := range benchBatches {
			evs := batch()
			// Each store its own copy (Insert sets the verdicts) and fresh ids, in an order
			// that turns, so that none always comes first.
			for j := range stores {
				i := (j + k) % len(stores)
				own := slices.Clone(evs)
				for e := range own {
					own[e].ID = uuid.New()
				}
				start := time.Now()
				n, err := stores[i].s.Insert(ctx, bn.tenant, own)
				d := time.Since(start)
				require.NoError(b, err)
				require.Equal(b, len(own), n)
				elapsed[i] += d
				lat[i] = append(lat[i], d)
			}
			written += benchBatch
		}
	}
	rate := func(i int) float64 { return float64(written) / elapsed[i].Seconds() }
	p99 := func(i int) float64 {
		slices.Sort(lat[i])
		return float64(lat[i][min(len(lat[i])-1, len(lat[i])*99/100)].Microseconds()) / 1000
	}
	b.ReportMetric(rate(2), "events/s")
	b.ReportMetric(rate(2)/rate(1), "ratio-vs-unmarked")
	b.ReportMetric(rate(2)/rate(0), "ratio-vs-legacy")
	b.ReportMetric(rate(1), "unmarked-events/s")
	b.ReportMetric(rate(0), "legacy-events/s")
	b.ReportMetric(p99(2), "p99-batch-ms")
	b.ReportMetric(p99(1), "unmarked-p99-batch-ms")
	b.ReportMetric(p99(0), "legacy-p99-batch-ms")
}
