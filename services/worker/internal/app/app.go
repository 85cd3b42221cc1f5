// Package app wires the worker: configuration, the shared process plumbing (logging,
// PostgreSQL, Redis, metrics, health with River's job counts), the gRPC connections the jobs
// call out on, the River client with every worker registered (backfills included) and the
// admin routes for job counts and backfills, all run under one graceful lifecycle.
package app

import (
	"context"
	"fmt"
	"time"

	"github.com/heraldmail/herald/libs/backfill"
	"github.com/heraldmail/herald/libs/config"
	"github.com/heraldmail/herald/libs/health"
	"github.com/heraldmail/herald/libs/jobs"
	"github.com/heraldmail/herald/libs/process"
	"github.com/heraldmail/herald/libs/rpc"
	"github.com/heraldmail/herald/libs/tenancy"
	recipientv1 "github.com/heraldmail/herald/proto/gen/go/herald/recipient/v1"
	"github.com/heraldmail/herald/services/worker/internal/backfills"
	"github.com/heraldmail/herald/services/worker/internal/bulk"
	"github.com/heraldmail/herald/services/worker/internal/eventstorage"
	"github.com/heraldmail/herald/services/worker/internal/imports"
	"github.com/heraldmail/herald/services/worker/internal/jobstats"
	"github.com/heraldmail/herald/services/worker/internal/recipientstatus"
	"github.com/heraldmail/herald/services/worker/internal/runner"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"go.uber.org/zap"
)

// Service is the process name in logs, metrics and pg_stat_activity.
const Service = "worker"

// Run runs the worker until ctx is cancelled or a SIGTERM/SIGINT arrives, then shuts it down
// gracefully. It returns nil after a clean shutdown.
func Run(ctx context.Context, boot *zap.Logger, env config.Source) error {
	boot.Debug("starting", zap.String("service", Service))
	var cfg Config
	if err := config.Load(&cfg, env); err != nil {
		return fmt.Errorf("load config: %w", err)
	}
	p, err := process.Start(ctx, process.Options{
		Name:             Service,
		DefaultAdminPort: DefaultAdminPort,
		ExtraChecks: func(pool *pgxpool.Pool) []health.Check {
			return []health.Check{{Name: "river", Timeout: health.RiverTimeout, Run: health.River(pool, jobs.Schema)}}
		},
	}, cfg, &cfg.Common)
	if err != nil {
		return err
	}
	defer p.Close()

	recipientConn, err := rpc.Dial(cfg.RecipientGRPCAddr)
	if err != nil {
		return fmt.Errorf("RECIPIENT_GRPC_ADDR: %w", err)
	}
	p.OnClose(func() { _ = recipientConn.Close() })

	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, recipientstatus.NewWorker(
		recipientv1.NewRecipientServiceClient(recipientConn), tenancy.NewSigner(cfg.JWTSecret), p.Log,
	)); err != nil {
		return fmt.Errorf("register recipient status worker: %w", err)
	}
	importWorker, err := imports.NewWorker(
		recipientv1.NewImportServiceClient(recipientConn), tenancy.NewSigner(cfg.JWTSecret), p.Log.Named("import"),
		imports.Options{BatchSize: cfg.ImportBatchSize, AttemptDuration: cfg.ImportAttemptDuration, Registry: p.Registry},
	)
	if err != nil {
		return err
	}
	if err := river.AddWorkerSafely(workers, importWorker); err != nil {
		return fmt.Errorf("register import worker: %w", err)
	}
	if err := river.AddWorkerSafely(workers, bulk.NewWorker(
		recipientv1.NewRecipientServiceClient(recipientConn), tenancy.NewSigner(cfg.JWTSecret), p.Log.Named("bulk"), bulk.Options{},
	)); err != nil {
		return fmt.Errorf("register bulk operation worker: %w", err)
	}
	eventMetrics, err := eventstorage.NewMetrics(p.Registry)
	if err != nil {
		return err
	}
	if err := eventstorage.New(p.Pool, time.Now, eventMetrics, p.Flags, p.Log.Named("eventstorage")).Register(workers); err != nil {
		return fmt.Errorf("register event storage workers: %w", err)
	}
	registered := backfills.Registered(p.Pool)
	backfillWorker, err := backfill.NewWorker(p.Pool, registered, p.Log.Named("backfill"), backfill.Options{})
	if err != nil {
		return fmt.Errorf("backfill worker: %w", err)
	}
	if err := river.AddWorkerSafely(workers, backfillWorker); err != nil {
		return fmt.Errorf("register backfill worker: %w", err)
	}
	client, err := runner.NewClient(p.Pool, workers, p.Log, func(c *river.Config) {
		c.PeriodicJobs = append(c.PeriodicJobs, eventstorage.PeriodicJobs(cfg.EventRollupInterval)...)
	}, func(c *river.Config) {
		c.RescueStuckJobsAfter = cfg.JobRescueAfter
	})
	if err != nil {
		return err
	}
	jobstats.New(p.Pool, jobs.Schema, p.Log).Register(p.AdminMux())
	backfills.NewHandler(p.Pool, client, registered, p.Log).Register(p.AdminMux())
	return p.Run(ctx, runner.Component(client, p.Log))
}
