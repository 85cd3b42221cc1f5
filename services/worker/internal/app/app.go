// Package app wires the worker: configuration, logging, the PostgreSQL pool and Redis client,
// the gRPC connections the jobs call out on, the River client with every worker registered,
// and the admin server (health, metrics, pprof, job counts), all run under one graceful
// lifecycle.
package app

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/heraldmail/herald/libs/admin"
	"github.com/heraldmail/herald/libs/config"
	"github.com/heraldmail/herald/libs/errtrack"
	"github.com/heraldmail/herald/libs/health"
	"github.com/heraldmail/herald/libs/jobs"
	"github.com/heraldmail/herald/libs/lifecycle"
	"github.com/heraldmail/herald/libs/logging"
	"github.com/heraldmail/herald/libs/metrics"
	"github.com/heraldmail/herald/libs/postgres"
	"github.com/heraldmail/herald/libs/redisconn"
	"github.com/heraldmail/herald/libs/rpc"
	"github.com/heraldmail/herald/libs/tenancy"
	recipientv1 "github.com/heraldmail/herald/proto/gen/go/herald/recipient/v1"
	"github.com/heraldmail/herald/services/worker/internal/jobstats"
	"github.com/heraldmail/herald/services/worker/internal/recipientstatus"
	"github.com/heraldmail/herald/services/worker/internal/runner"
	"github.com/riverqueue/river"
	"go.uber.org/zap"
)

// Service is the process name in logs, metrics and pg_stat_activity.
const Service = "worker"

// Version is the release reported to error tracking.
const Version = "dev"

// Run runs the worker until ctx is cancelled or a SIGTERM/SIGINT arrives, then shuts it down
// gracefully. It returns nil after a clean shutdown.
func Run(ctx context.Context, log *zap.Logger, env config.Source) error {
	log.Info("starting", zap.String("version", Version))
	var cfg Config
	if err := config.Load(&cfg, env); err != nil {
		return fmt.Errorf("load config: %w", err)
	}
	if cfg.AdminPort == 0 {
		cfg.AdminPort = DefaultAdminPort
	}

	// From here on, the logger the configuration asks for.
	log, err := logging.New(Service, cfg.AppEnv, cfg.LogLevel)
	if err != nil {
		return fmt.Errorf("build logger: %w", err)
	}
	log, flush, err := errtrack.Wrap(log, cfg.Base, Service, Version)
	if err != nil {
		return fmt.Errorf("set up error tracking: %w", err)
	}
	defer flush()
	defer func() { _ = log.Sync() }()
	log.Info("config loaded", zap.Any("config", config.Masked(cfg)))

	pool, err := postgres.Connect(ctx, cfg.Database, Service, log)
	if err != nil {
		return fmt.Errorf("connect postgres: %w", err)
	}
	defer pool.Close()
	rdb := redisconn.Connect(ctx, cfg.Redis, log)
	defer func() { _ = rdb.Close() }()

	reg := metrics.NewRegistry()
	if err := metrics.RegisterPool(reg, pool); err != nil {
		return fmt.Errorf("register pool metrics: %w", err)
	}
	full, ready := health.Standard(pool, rdb)
	full = append(full, health.Check{Name: "river", Timeout: health.RiverTimeout, Run: health.River(pool, jobs.Schema)})
	h := health.New(full, ready)

	recipientConn, err := rpc.Dial(cfg.RecipientGRPCAddr)
	if err != nil {
		return fmt.Errorf("RECIPIENT_GRPC_ADDR: %w", err)
	}
	defer func() { _ = recipientConn.Close() }()

	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, recipientstatus.NewWorker(
		recipientv1.NewRecipientServiceClient(recipientConn), tenancy.NewSigner(cfg.JWTSecret), log,
	)); err != nil {
		return fmt.Errorf("register recipient status worker: %w", err)
	}
	client, err := runner.NewClient(pool, workers, log)
	if err != nil {
		return err
	}

	mux := admin.Mux(reg, h)
	jobstats.New(pool, jobs.Schema, log).Register(mux)
	adminSrv := admin.Server(mux)

	var lc net.ListenConfig
	adminLn, err := lc.Listen(ctx, "tcp", net.JoinHostPort("", strconv.Itoa(cfg.AdminPort)))
	if err != nil {
		return fmt.Errorf("listen on ADMIN_PORT %d: %w", cfg.AdminPort, err)
	}
	log.Info("listening", zap.Int("admin_port", cfg.AdminPort))

	if err := lifecycle.Run(ctx, log, lifecycle.Options{
		DrainDelay:      cfg.DrainDelay,
		ShutdownTimeout: cfg.ShutdownTimeout,
		OnDrain:         h.SetDraining,
	},
		runner.Component(client, log),
		lifecycle.NewHTTPServer("admin http", adminSrv, adminLn),
	); err != nil {
		return fmt.Errorf("run: %w", err)
	}
	return nil
}
