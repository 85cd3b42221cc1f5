// Package app wires events-ingest: configuration, logging, the PostgreSQL pool and Redis
// client, the events store and service, the gRPC server and the admin server, all run under one
// graceful lifecycle.
package app

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

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
	"github.com/heraldmail/herald/services/events-ingest/internal/events"
	"github.com/heraldmail/herald/services/events-ingest/internal/grpcapi"
	"github.com/heraldmail/herald/services/events-ingest/internal/store"
	"go.uber.org/zap"
)

// Service is the process name in logs, metrics and pg_stat_activity.
const Service = "events-ingest"

// Version is the release reported to error tracking.
const Version = "dev"

// healthFollowInterval is how often the gRPC health status is brought in step with readiness.
const healthFollowInterval = 5 * time.Second

// Run runs events-ingest until ctx is cancelled or a SIGTERM/SIGINT arrives, then shuts it
// down gracefully. It returns nil after a clean shutdown.
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
	h := health.New(full, ready)

	inserter, err := jobs.NewInserter(pool)
	if err != nil {
		return err
	}
	svc := events.NewService(store.New(pool, inserter), time.Now)
	srv, hs := rpc.NewServer(rpc.ServerOptions{Log: log, Registry: reg, Verifier: tenancy.NewVerifier(cfg.JWTSecret)})
	grpcapi.Register(srv, grpcapi.New(svc, log))
	hs.SetServing(grpcapi.ServiceName)
	adminSrv := admin.Server(admin.Mux(reg, h))

	var lc net.ListenConfig
	grpcLn, err := lc.Listen(ctx, "tcp", net.JoinHostPort("", strconv.Itoa(cfg.GRPCPort)))
	if err != nil {
		return fmt.Errorf("listen on GRPC_PORT %d: %w", cfg.GRPCPort, err)
	}
	adminLn, err := lc.Listen(ctx, "tcp", net.JoinHostPort("", strconv.Itoa(cfg.AdminPort)))
	if err != nil {
		_ = grpcLn.Close()
		return fmt.Errorf("listen on ADMIN_PORT %d: %w", cfg.AdminPort, err)
	}
	log.Info("listening", zap.Int("grpc_port", cfg.GRPCPort), zap.Int("admin_port", cfg.AdminPort))

	if err := lifecycle.Run(ctx, log, lifecycle.Options{
		DrainDelay:      cfg.DrainDelay,
		ShutdownTimeout: cfg.ShutdownTimeout,
		OnDrain: func() {
			h.SetDraining()
			hs.Shutdown()
		},
	},
		lifecycle.NewGRPCServer("grpc", srv, grpcLn),
		lifecycle.NewHTTPServer("admin http", adminSrv, adminLn),
		followHealth(hs, h, ready),
	); err != nil {
		return fmt.Errorf("run: %w", err)
	}
	return nil
}

// followHealth keeps the gRPC health status in step with readiness until shutdown.
func followHealth(hs *rpc.Health, h *health.Handler, ready []health.Check) lifecycle.Component {
	stop := make(chan struct{})
	return lifecycle.Func{
		ComponentName: "grpc health",
		ServeFunc: func(ctx context.Context) error {
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			go func() {
				select {
				case <-stop:
					cancel()
				case <-ctx.Done():
				}
			}()
			hs.Follow(ctx, h, ready, healthFollowInterval)
			return nil
		},
		ShutdownFunc: func(context.Context) error {
			close(stop)
			return nil
		},
	}
}
