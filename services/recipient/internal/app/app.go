// Package app wires the recipient service together (configuration, PostgreSQL, Redis, store,
// business rules, gRPC transport, admin listener) and runs it until its context ends or a
// signal arrives. It is main's run, kept here so that tests can start the whole service in
// process.
package app

import (
	"context"
	"fmt"
	"net"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/heraldmail/herald/libs/admin"
	"github.com/heraldmail/herald/libs/config"
	"github.com/heraldmail/herald/libs/errtrack"
	"github.com/heraldmail/herald/libs/health"
	"github.com/heraldmail/herald/libs/lifecycle"
	"github.com/heraldmail/herald/libs/logging"
	"github.com/heraldmail/herald/libs/metrics"
	"github.com/heraldmail/herald/libs/postgres"
	"github.com/heraldmail/herald/libs/redisconn"
	"github.com/heraldmail/herald/libs/rpc"
	"github.com/heraldmail/herald/libs/tenancy"
	recipientv1 "github.com/heraldmail/herald/proto/gen/go/herald/recipient/v1"
	"go.uber.org/zap"

	"github.com/heraldmail/herald/services/recipient/internal/grpcapi"
	"github.com/heraldmail/herald/services/recipient/internal/recipient"
	"github.com/heraldmail/herald/services/recipient/internal/store"
)

// Service is the process's name in logs, metrics and pg_stat_activity.
const Service = "recipient"

// DefaultAdminPort is ADMIN_PORT when it is not set.
const DefaultAdminPort = 9052

// healthEvery is how often the gRPC health status follows readiness.
const healthEvery = 5 * time.Second

// Config is the recipient service's configuration.
type Config struct {
	config.Base
	config.Database
	config.Redis
	config.Auth
	// GRPCPort is where RecipientService listens.
	GRPCPort int `env:"GRPC_PORT" default:"50052" min:"1" max:"65535"`
}

// LoadConfig reads the configuration from env and applies the service's defaults.
func LoadConfig(env config.Source) (Config, error) {
	var cfg Config
	if err := config.Load(&cfg, env); err != nil {
		return Config{}, fmt.Errorf("load configuration: %w", err)
	}
	if cfg.AdminPort == 0 {
		cfg.AdminPort = DefaultAdminPort
	}
	return cfg, nil
}

// Run starts the service and blocks until ctx is cancelled or SIGTERM/SIGINT arrives, then
// shuts down gracefully; it returns nil after a clean shutdown. boot is the logger main built
// before the configuration was read; once it is read, Run logs through its own.
func Run(ctx context.Context, boot *zap.Logger, env config.Source) error {
	boot.Debug("starting", zap.String("service", Service))
	cfg, err := LoadConfig(env)
	if err != nil {
		return err
	}
	log, err := logging.New(Service, cfg.AppEnv, cfg.LogLevel)
	if err != nil {
		return fmt.Errorf("build logger: %w", err)
	}
	defer func() { _ = log.Sync() }()
	version := buildVersion()
	log, flush, err := errtrack.Wrap(log, cfg.Base, Service, version)
	if err != nil {
		return fmt.Errorf("error tracking: %w", err)
	}
	defer flush()
	log.Info("config loaded", zap.String("version", version), zap.Any("config", config.Masked(cfg)))

	pool, err := postgres.Connect(ctx, cfg.Database, Service, log)
	if err != nil {
		return fmt.Errorf("connect postgresql: %w", err)
	}
	defer pool.Close()
	rdb := redisconn.Connect(ctx, cfg.Redis, log)
	defer func() { _ = rdb.Close() }()

	reg := metrics.NewRegistry()
	if err := metrics.RegisterPool(reg, pool); err != nil {
		return fmt.Errorf("register pool metrics: %w", err)
	}
	full, ready := health.Standard(pool, rdb)
	hh := health.New(full, ready)

	svc := recipient.NewService(store.New(pool), time.Now)
	srv, hs := rpc.NewServer(rpc.ServerOptions{Log: log, Registry: reg, Verifier: tenancy.NewVerifier(cfg.JWTSecret)})
	recipientv1.RegisterRecipientServiceServer(srv, grpcapi.New(svc, log))
	hs.SetServing(recipientv1.RecipientService_ServiceDesc.ServiceName)

	var lc net.ListenConfig
	grpcLn, err := lc.Listen(ctx, "tcp", ":"+strconv.Itoa(cfg.GRPCPort))
	if err != nil {
		return fmt.Errorf("listen on GRPC_PORT: %w", err)
	}
	adminLn, err := lc.Listen(ctx, "tcp", ":"+strconv.Itoa(cfg.AdminPort))
	if err != nil {
		_ = grpcLn.Close()
		return fmt.Errorf("listen on ADMIN_PORT: %w", err)
	}

	// The follower stops through its Shutdown: lifecycle cancels the serve context only after
	// every Serve has returned.
	followCtx, stopFollow := context.WithCancel(context.WithoutCancel(ctx))
	defer stopFollow()
	follow := lifecycle.Func{
		ComponentName: "grpc-health",
		ServeFunc: func(context.Context) error {
			hs.Follow(followCtx, hh, ready, healthEvery)
			return nil
		},
		ShutdownFunc: func(context.Context) error {
			stopFollow()
			return nil
		},
	}

	return lifecycle.Run(ctx, log, lifecycle.Options{
		DrainDelay:      cfg.DrainDelay,
		ShutdownTimeout: cfg.ShutdownTimeout,
		OnDrain: func() {
			hh.SetDraining()
			hs.Shutdown()
		},
	},
		lifecycle.NewGRPCServer("grpc", srv, grpcLn),
		lifecycle.NewHTTPServer("admin", admin.Server(admin.Mux(reg, hh)), adminLn),
		follow,
	)
}

// buildVersion is the VCS revision the binary was built from, or "dev".
func buildVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && s.Value != "" {
			return s.Value
		}
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	return "dev"
}
