// Package process is the skeleton every Herald process shares: it turns the common
// configuration into a logger with error tracking, the PostgreSQL pool, the Redis client, the
// metrics registry, the health handler and the feature flag provider, and runs the process's
// components together with the admin listener under one graceful lifecycle. Each service's
// run stays a short, explicit wiring of its own parts on top of it.
package process

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/heraldmail/herald/libs/admin"
	"github.com/heraldmail/herald/libs/config"
	"github.com/heraldmail/herald/libs/errtrack"
	"github.com/heraldmail/herald/libs/flags"
	"github.com/heraldmail/herald/libs/health"
	"github.com/heraldmail/herald/libs/lifecycle"
	"github.com/heraldmail/herald/libs/logging"
	"github.com/heraldmail/herald/libs/metrics"
	"github.com/heraldmail/herald/libs/postgres"
	"github.com/heraldmail/herald/libs/redisconn"
	"github.com/heraldmail/herald/libs/rpc"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// HealthFollowInterval is how often a gRPC server's health status is brought in step with the
// process's readiness.
const HealthFollowInterval = 5 * time.Second

// Common is the configuration every service process reads; services embed it in their own.
type Common struct {
	config.Base
	config.Database
	config.Redis
	config.Auth
	// Flags chooses the feature flag provider (FEATURE_FLAGS_PROVIDER, UNLEASH_URL,
	// UNLEASH_API_KEY).
	Flags flags.Config
}

// Process holds the shared plumbing of one running process.
type Process struct {
	Name     string
	Version  string
	Log      *zap.Logger
	Pool     *pgxpool.Pool
	Redis    *redis.Client
	Registry *prometheus.Registry
	Health   *health.Handler
	// Flags answers the process's feature flag checks, from the provider FEATURE_FLAGS_PROVIDER
	// chooses. It answers from memory and never fails; Run keeps it current.
	Flags flags.Provider

	flagStore *flags.Redis
	flagReg   *flags.Registry
	flagComp  lifecycle.Component
	common    *Common
	ready     []health.Check
	onDrain   []func()
	adminMux  *http.ServeMux
	closers   []func()
}

// Options are what differs between services at start-up.
type Options struct {
	// Name of the process in logs, metrics and pg_stat_activity.
	Name string
	// DefaultAdminPort applies when ADMIN_PORT is not set.
	DefaultAdminPort int
	// ExtraChecks, when set, returns checks that join the standard database and Redis checks
	// of /health (the worker's River check needs the pool).
	ExtraChecks func(pool *pgxpool.Pool) []health.Check
	// FlagOptions and UnleashOptions tune the feature flag provider (tests: fixture flags, a
	// key prefix, a short refresh interval).
	FlagOptions    []flags.Option
	UnleashOptions []flags.UnleashOption
}

// Start builds the plumbing from the service's loaded configuration: cfg is the service's whole
// configuration struct (logged once, secrets masked) and common points at the Common embedded
// in it. Close releases what Start opened.
func Start(ctx context.Context, opts Options, cfg any, common *Common) (*Process, error) {
	if common.AdminPort == 0 {
		common.AdminPort = opts.DefaultAdminPort
	}
	p := &Process{Name: opts.Name, Version: buildVersion(), common: common}
	log, err := logging.New(opts.Name, common.AppEnv, common.LogLevel)
	if err != nil {
		return nil, fmt.Errorf("build logger: %w", err)
	}
	log, flush, err := errtrack.Wrap(log, common.Base, opts.Name, p.Version)
	if err != nil {
		return nil, fmt.Errorf("set up error tracking: %w", err)
	}
	p.Log = log
	p.closers = append(p.closers, func() { _ = log.Sync() }, flush)
	log.Info("config loaded", zap.String("version", p.Version), zap.Any("config", config.Masked(cfg)))

	pool, err := postgres.Connect(ctx, common.Database, opts.Name, log)
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("connect postgresql: %w", err)
	}
	p.Pool = pool
	p.closers = append(p.closers, pool.Close)
	p.Redis = redisconn.Connect(ctx, common.Redis, log)
	p.closers = append(p.closers, func() { _ = p.Redis.Close() })

	p.Registry = metrics.NewRegistry()
	if err := metrics.RegisterPool(p.Registry, pool); err != nil {
		p.Close()
		return nil, fmt.Errorf("register pool metrics: %w", err)
	}
	full, ready := health.Standard(pool, p.Redis)
	p.ready = ready
	if opts.ExtraChecks != nil {
		full = append(full, opts.ExtraChecks(pool)...)
	}
	p.Health = health.New(full, ready)
	p.adminMux = admin.Mux(p.Registry, p.Health)
	p.OnDrain(p.Health.SetDraining)
	if err := p.startFlags(ctx, opts); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// startFlags builds the feature flag provider the configuration chooses. The Redis provider
// reads every value once now, so that the first checks see them (a Redis that does not answer
// is only logged: checks answer the registry defaults until it does); the Unleash SDK starts
// fetching in the background.
func (p *Process) startFlags(ctx context.Context, opts Options) error {
	cfg := p.common.Flags
	switch cfg.Provider {
	case flags.ProviderUnleash:
		u, err := flags.NewUnleash(cfg.UnleashURL, cfg.UnleashAPIKey, "herald-"+opts.Name, p.Registry, p.Log, opts.UnleashOptions...)
		if err != nil {
			return fmt.Errorf("feature flags: %w", err)
		}
		p.Flags, p.flagReg = u, u.Registry()
		// Checks keep their answers until every component has stopped (an in-flight request
		// still sees the flags): the SDK is closed with the process, not when Run shuts down.
		stop := make(chan struct{})
		var once sync.Once
		p.flagComp = lifecycle.Func{
			ComponentName: u.Name(),
			ServeFunc: func(context.Context) error {
				<-stop
				return nil
			},
			ShutdownFunc: func(context.Context) error {
				once.Do(func() { close(stop) })
				return nil
			},
		}
		p.closers = append(p.closers, func() {
			if err := u.Close(); err != nil {
				p.Log.Warn("close feature flags", zap.Error(err))
			}
		})
	default:
		r, err := flags.NewRedis(p.Redis, p.Registry, p.Log, opts.FlagOptions...)
		if err != nil {
			return fmt.Errorf("feature flags: %w", err)
		}
		_ = r.Refresh(ctx)
		p.Flags, p.flagStore, p.flagReg, p.flagComp = r, r, r.Registry(), r
	}
	p.Log.Info("feature flags", zap.String("provider", cfg.Provider))
	return nil
}

// FlagStore returns the Redis provider, whose Set and Clear change the flags, when the
// process runs it (FEATURE_FLAGS_PROVIDER=redis); with Unleash, flags are changed in Unleash
// and ok is false.
func (p *Process) FlagStore() (store *flags.Redis, ok bool) { return p.flagStore, p.flagStore != nil }

// FlagRegistry is the registry of the process's feature flag provider: the flags it knows.
func (p *Process) FlagRegistry() *flags.Registry { return p.flagReg }

// Close releases the pool, the Redis client and the logger, in reverse order of creation.
func (p *Process) Close() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		p.closers[i]()
	}
	p.closers = nil
}

// OnDrain adds f to what runs as soon as shutdown starts.
func (p *Process) OnDrain(f func()) { p.onDrain = append(p.onDrain, f) }

// OnClose adds f to what Close runs (before what Start opened is released).
func (p *Process) OnClose(f func()) { p.closers = append(p.closers, f) }

// AdminMux is the admin listener's mux, for process-specific internal routes.
func (p *Process) AdminMux() *http.ServeMux { return p.adminMux }

// Verifier checks tokens signed with JWT_SECRET.
func (p *Process) Verifier() *tenancy.Verifier { return tenancy.NewVerifier(p.common.JWTSecret) }

// GRPCServer returns a gRPC server with the standard interceptors. Register the service on it,
// mark it serving, then pass it to ServeGRPC.
func (p *Process) GRPCServer() (*grpc.Server, *rpc.Health) {
	srv, hs := rpc.NewServer(rpc.ServerOptions{Log: p.Log, Registry: p.Registry, Verifier: p.Verifier()})
	p.OnDrain(hs.Shutdown)
	return srv, hs
}

// ServeGRPC returns the components that serve srv on port and keep its health status in step
// with readiness. The port is bound now, so a conflict fails at start-up.
func (p *Process) ServeGRPC(ctx context.Context, port int, srv *grpc.Server, hs *rpc.Health) ([]lifecycle.Component, error) {
	ln, err := listen(ctx, port)
	if err != nil {
		return nil, fmt.Errorf("listen on GRPC_PORT %d: %w", port, err)
	}
	followCtx, stopFollow := context.WithCancel(context.WithoutCancel(ctx))
	p.OnClose(stopFollow)
	follow := lifecycle.Func{
		ComponentName: "grpc health",
		ServeFunc: func(context.Context) error {
			hs.Follow(followCtx, p.Health, p.ready, HealthFollowInterval)
			return nil
		},
		ShutdownFunc: func(context.Context) error {
			stopFollow()
			return nil
		},
	}
	return []lifecycle.Component{lifecycle.NewGRPCServer("grpc", srv, ln), follow}, nil
}

// Run binds the admin listener and runs it and the feature flag provider with comps until ctx
// ends or a signal arrives, then shuts everything down gracefully. It returns nil after a
// clean shutdown.
func (p *Process) Run(ctx context.Context, comps ...lifecycle.Component) error {
	ln, err := listen(ctx, p.common.AdminPort)
	if err != nil {
		return fmt.Errorf("listen on ADMIN_PORT %d: %w", p.common.AdminPort, err)
	}
	p.Log.Info("admin listening", zap.Int("admin_port", p.common.AdminPort))
	all := append([]lifecycle.Component{lifecycle.NewHTTPServer("admin http", admin.Server(p.adminMux), ln), p.flagComp}, comps...)
	if err := lifecycle.Run(ctx, p.Log, lifecycle.Options{
		DrainDelay:      p.common.DrainDelay,
		ShutdownTimeout: p.common.ShutdownTimeout,
		OnDrain: func() {
			for _, f := range p.onDrain {
				f()
			}
		},
	}, all...); err != nil {
		return fmt.Errorf("run: %w", err)
	}
	return nil
}

// Listen binds a TCP port on every interface.
func Listen(ctx context.Context, port int) (net.Listener, error) { return listen(ctx, port) }

func listen(ctx context.Context, port int) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort("", strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	return ln, nil
}

// buildVersion is the VCS revision the binary was built from, or "dev".
func buildVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return s.Value[:12]
		}
	}
	return "dev"
}
