package health

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
)

// Time limits of the standard checks.
const (
	DatabaseTimeout      = 3000 * time.Millisecond
	RedisTimeout         = 1000 * time.Millisecond
	RiverTimeout         = 2000 * time.Millisecond
	ReadyDatabaseTimeout = 1000 * time.Millisecond
	ReadyRedisTimeout    = 500 * time.Millisecond
	// RiverFailedLimit is the number of failed (discarded) jobs at which River is reported down.
	RiverFailedLimit = 100
)

// Postgres pings the pool.
func Postgres(pool *pgxpool.Pool) CheckFunc {
	return func(ctx context.Context) (map[string]any, error) {
		// The driver's error names hosts and users; the report says only what failed.
		if err := pool.Ping(ctx); err != nil {
			return nil, errPing(ctx, "postgresql")
		}
		return nil, nil
	}
}

// Redis pings the client.
func Redis(client redis.UniversalClient) CheckFunc {
	return func(ctx context.Context) (map[string]any, error) {
		if err := client.Ping(ctx).Err(); err != nil {
			return nil, errPing(ctx, "redis")
		}
		return nil, nil
	}
}

// River counts jobs in River's table in schema: activeJobs (running), waitingJobs
// (available, scheduled, retryable) and failedJobs (discarded). It is down at
// RiverFailedLimit or more failed jobs.
func River(pool *pgxpool.Pool, schema string) CheckFunc {
	query := fmt.Sprintf(`SELECT
		count(*) FILTER (WHERE state = 'running'),
		count(*) FILTER (WHERE state IN ('available', 'scheduled', 'retryable')),
		count(*) FILTER (WHERE state = 'discarded')
		FROM %q.river_job`, schema)
	return func(ctx context.Context) (map[string]any, error) {
		var active, waiting, failed int64
		if err := pool.QueryRow(ctx, query).Scan(&active, &waiting, &failed); err != nil {
			return nil, errPing(ctx, "river")
		}
		d := map[string]any{"activeJobs": active, "waitingJobs": waiting, "failedJobs": failed}
		if failed >= RiverFailedLimit {
			return d, fmt.Errorf("%d failed jobs (limit %d)", failed, RiverFailedLimit)
		}
		return d, nil
	}
}

// Standard returns the /health and /health/ready checks for a process that uses PostgreSQL
// and Redis, with the standard time limits.
func Standard(pool *pgxpool.Pool, rdb redis.UniversalClient) (full, ready []Check) {
	full = []Check{
		{Name: "database", Timeout: DatabaseTimeout, Run: Postgres(pool)},
		{Name: "redis", Timeout: RedisTimeout, Run: Redis(rdb)},
	}
	ready = []Check{
		{Name: "database", Timeout: ReadyDatabaseTimeout, Run: Postgres(pool)},
		{Name: "redis", Timeout: ReadyRedisTimeout, Run: Redis(rdb)},
	}
	return full, ready
}

// errPing keeps a timeout recognisable and hides driver details from the report.
func errPing(ctx context.Context, what string) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("%s unreachable", what)
}
