// Package postgres opens the pgx connection pool of a process with the limits every service
// needs: a bounded pool, a statement timeout on every connection, a connect timeout, TLS when
// required, and a readable application name in pg_stat_activity.
package postgres

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/heraldmail/herald/libs/config"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
)

// Connect builds the pool. It does not fail when the database is unreachable at start-up (the
// process starts and reports itself not ready until it is); it fails on a malformed
// configuration.
func Connect(ctx context.Context, cfg config.Database, appName string, log *zap.Logger) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(withTLSDefault(cfg.URL, cfg.TLS))
	if err != nil {
		// The parse error may quote the URL; say only which variable is wrong.
		return nil, &config.Error{Var: "DATABASE_URL", Reason: "cannot be parsed as a PostgreSQL connection URL"}
	}
	if cfg.TLS && pc.ConnConfig.TLSConfig == nil {
		return nil, &config.Error{Var: "DATABASE_URL", Reason: "TLS is required but the URL disables it"}
	}
	pc.MaxConns = cfg.PoolSize
	pc.MinConns = 0
	pc.MaxConnIdleTime = 5 * time.Minute
	pc.MaxConnLifetime = time.Hour
	pc.HealthCheckPeriod = 15 * time.Second
	pc.ConnConfig.ConnectTimeout = cfg.ConnectTimeout
	if pc.ConnConfig.RuntimeParams == nil {
		pc.ConnConfig.RuntimeParams = map[string]string{}
	}
	pc.ConnConfig.RuntimeParams["application_name"] = appName
	pc.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(cfg.StatementTimeout.Milliseconds(), 10)
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("create pool: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		log.Warn("postgresql not reachable at start-up; readiness stays 503 until it is",
			zap.String("host", pc.ConnConfig.Host), zap.Uint16("port", pc.ConnConfig.Port))
	}
	return pool, nil
}

// withTLSDefault makes TLS mean a verified connection: when TLS is required and the URL does
// not choose an sslmode, pgx's default ("prefer") could fall back to plain text, so the URL
// gets sslmode=verify-full.
func withTLSDefault(raw string, tls bool) string {
	if !tls {
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	q := u.Query()
	if q.Get("sslmode") != "" {
		return raw
	}
	q.Set("sslmode", "verify-full")
	u.RawQuery = q.Encode()
	return u.String()
}
