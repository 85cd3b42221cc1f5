package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldmail/herald/services/recipient/internal/recipient"
)

// benchRows is the size of the domain the list benchmarks run on.
const benchRows = 1_000_000

// BenchmarkListTotal measures the total of a list page on a domain of a million recipients,
// against its baseline in the same run, an exact count(*) of the same rows:
//
//   - unfiltered and status-only lists read the domain's counters (metric
//     "speedup_vs_count(*)" compares one page with its total to the count alone);
//   - a list with an attribute filter counts at most recipient.CountCap matching rows.
//
// Run it with: go test ./internal/store -run '^$' -bench ListTotal -benchtime 20x
func BenchmarkListTotal(b *testing.B) {
	bb := setupBulk(b)
	ctx := context.Background()
	start := time.Now()
	seed(b, bb.admin, bb.tenant, benchRows)
	_, err := bb.admin.Exec(ctx, `ANALYZE recipient.recipients`)
	require.NoError(b, err)
	b.Logf("seeded %d recipients in %s", benchRows, time.Since(start).Round(time.Millisecond))
	// The first read writes the domain's baseline (one full count); later ones read counters.
	first, err := bb.store.List(ctx, bb.tenant, recipient.Query{Limit: 1})
	require.NoError(b, err)
	require.Equal(b, int64(benchRows), first.Total)

	// baseline times an exact count(*) of the rows f selects, as the service role.
	baseline := func(b *testing.B, where string, args ...any) time.Duration {
		b.Helper()
		const rounds = 3
		var took time.Duration
		for range rounds {
			t0 := time.Now()
			var n int64
			require.NoError(b, bb.admin.QueryRow(ctx, `SELECT count(*) FROM recipient.recipients WHERE domain_id = $1`+where,
				append([]any{bb.tenant.DomainID}, args...)...).Scan(&n))
			took += time.Since(t0)
		}
		return took / rounds
	}
	run := func(b *testing.B, q recipient.Query, wantExact bool, base time.Duration) {
		b.Helper()
		b.ResetTimer()
		t0 := time.Now()
		for range b.N {
			p, err := bb.store.List(ctx, bb.tenant, q)
			require.NoError(b, err)
			require.Equal(b, wantExact, p.TotalExact)
		}
		per := time.Since(t0) / time.Duration(b.N)
		b.ReportMetric(float64(base.Microseconds())/1000, "count(*)_ms")
		b.ReportMetric(float64(per.Microseconds())/1000, "page+total_ms")
		b.ReportMetric(float64(base)/float64(per), "speedup_vs_count(*)")
	}

	b.Run("unfiltered", func(b *testing.B) {
		run(b, recipient.Query{Limit: 50}, true, baseline(b, ""))
	})
	b.Run("status", func(b *testing.B) {
		run(b, recipient.Query{Limit: 50, Filter: recipient.Filter{Status: recipient.StatusSubscribed}}, true,
			baseline(b, ` AND status = 'subscribed'`))
	})
	b.Run("attribute_capped", func(b *testing.B) {
		f := recipient.Filter{Attributes: []recipient.Condition{{Key: "plan", Op: recipient.OpEq, Value: "pro"}}}
		run(b, recipient.Query{Limit: 50, Filter: f}, false, baseline(b, ` AND attributes @> '{"plan": "pro"}'`))
	})
}
