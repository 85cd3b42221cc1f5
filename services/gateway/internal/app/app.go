// Package app wires the gateway: configuration, logging, the PostgreSQL pool (identity) and
// Redis client (rate limits, feature flags), the identity service served in process, authentication and
// authorization, the gRPC client connections to the services, the public REST server and the
// admin server, all run under one graceful lifecycle. It also runs the operator command.
package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/heraldmail/herald/libs/config"
	"github.com/heraldmail/herald/libs/flags"
	"github.com/heraldmail/herald/libs/lifecycle"
	"github.com/heraldmail/herald/libs/process"
	"github.com/heraldmail/herald/libs/ratelimit"
	"github.com/heraldmail/herald/libs/rpc"
	"github.com/heraldmail/herald/libs/tenancy"
	campaignv1 "github.com/heraldmail/herald/proto/gen/go/herald/campaign/v1"
	eventsv1 "github.com/heraldmail/herald/proto/gen/go/herald/events/v1"
	identityv1 "github.com/heraldmail/herald/proto/gen/go/herald/identity/v1"
	recipientv1 "github.com/heraldmail/herald/proto/gen/go/herald/recipient/v1"
	"github.com/heraldmail/herald/proto/gen/openapi"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/heraldmail/herald/services/gateway/internal/authz"
	"github.com/heraldmail/herald/services/gateway/internal/clientip"
	"github.com/heraldmail/herald/services/gateway/internal/flagadmin"
	"github.com/heraldmail/herald/services/gateway/internal/identity"
	"github.com/heraldmail/herald/services/gateway/internal/identityapi"
	"github.com/heraldmail/herald/services/gateway/internal/identitystore"
	"github.com/heraldmail/herald/services/gateway/internal/importapi"
	"github.com/heraldmail/herald/services/gateway/internal/limits"
	"github.com/heraldmail/herald/services/gateway/internal/rest"
)

// Service is the process name in logs, metrics and pg_stat_activity.
const Service = "gateway"

// rateLimitPrefix starts the Redis keys of the rate limit buckets.
const rateLimitPrefix = "herald:ratelimit:"

// Run runs the gateway until ctx is cancelled or a SIGTERM/SIGINT arrives, then shuts it down
// gracefully. It returns nil after a clean shutdown. boot is the logger used until the
// configuration names the real one.
func Run(ctx context.Context, boot *zap.Logger, env config.Source) error {
	return run(ctx, boot, env)
}

// run is Run with changes to the process options (the tests' fixture flags and key prefix).
func run(ctx context.Context, boot *zap.Logger, env config.Source, tune ...func(*process.Options)) error {
	boot.Debug("starting", zap.String("service", Service))
	var cfg Config
	if err := config.Load(&cfg, env); err != nil {
		return fmt.Errorf("load config: %w", err)
	}
	opts := process.Options{Name: Service, DefaultAdminPort: DefaultAdminPort}
	for _, f := range tune {
		f(&opts)
	}
	p, err := process.Start(ctx, opts, cfg, &cfg.Common)
	if err != nil {
		return err
	}
	defer p.Close()
	log, pool, rdb, reg, h := p.Log, p.Pool, p.Redis, p.Registry, p.Health

	lims, err := limits.New(limits.Options{
		Limiter: ratelimit.New(rdb, rateLimitPrefix, reg, log),
		API:     ratelimit.Limit{Name: limits.NameAPI, Rate: cfg.RateLimitPerSecond, Burst: cfg.RateLimitBurst},
		Log:     log,
	})
	if err != nil {
		return err
	}
	signer := tenancy.NewSigner(cfg.JWTSecret)
	store := identitystore.New(pool)
	svc, err := identity.NewService(store, identity.Options{
		Signer:     signer,
		AccessTTL:  cfg.JWTExpiry,
		RefreshTTL: cfg.RefreshTokenExpiry,
		Throttle:   lims,
	})
	if err != nil {
		return err
	}
	auth, err := authz.New(authz.Options{
		Service:  svc,
		Verifier: tenancy.NewVerifier(cfg.JWTSecret, cfg.JWTSecretPrevious),
		Signer:   signer,
		Log:      log,
		Deny:     rest.WriteStatus(log, cfg.HTTPBodyLimit),
	})
	if err != nil {
		return err
	}
	clients, err := clientip.New(cfg.TrustedProxies)
	if err != nil {
		return fmt.Errorf("TRUSTED_PROXIES: %w", err)
	}

	flagAdmin, err := flagadmin.New(store, flagStore(p), svc, reg, log)
	if err != nil {
		return err
	}

	conns, err := dialServices(cfg)
	if err != nil {
		return err
	}
	defer conns.close(log)

	trackingMux, err := trackingRoutes(cfg.Tracking, eventsv1.NewEventsIngestServiceClient(conns.events), signer, log, reg)
	if err != nil {
		return err
	}

	api := rest.NewAPIMux(log, cfg.HTTPBodyLimit, auth.Middleware)
	if err := identityv1.RegisterIdentityServiceHandlerServer(ctx, api, identityapi.New(svc, flagAdmin, log)); err != nil {
		return fmt.Errorf("register identity routes: %w", err)
	}
	if err := conns.register(ctx, api); err != nil {
		return err
	}
	// After the generated routes: the import upload and download replace theirs.
	if err := importapi.Register(ctx, api, conns.recipient, log); err != nil {
		return err
	}
	public := rest.NewServer(rest.NewHandler(rest.Options{
		Log:             log,
		Registry:        reg,
		Health:          h,
		Auth:            auth,
		Limiter:         lims,
		ClientIP:        clients.Middleware,
		FrontendURL:     cfg.FrontendURL,
		BodyLimit:       cfg.HTTPBodyLimit,
		RouteBodyLimits: RouteBodyLimits(),
		StreamRoutes:    importapi.StreamRoutes(),
		OpenAPI:         openapi.JSON(),
		Public:          trackingMux,
	}, api))
	publicLn, err := process.Listen(ctx, cfg.Port)
	if err != nil {
		return fmt.Errorf("listen on PORT %d: %w", cfg.Port, err)
	}
	log.Info("listening", zap.Int("port", cfg.Port))
	// Clients reconnect, through the load balancer, to an instance that stays.
	p.OnDrain(func() { public.SetKeepAlivesEnabled(false) })
	return p.Run(ctx, lifecycle.NewHTTPServer("public http", public, publicLn))
}

// flagStore is what the flag administration reads and changes: the process's Redis provider,
// or, when the flags come from Unleash, the registry alone, with changes refused.
func flagStore(p *process.Process) flagadmin.Provider {
	if store, ok := p.FlagStore(); ok {
		return store
	}
	return managedInUnleash{reg: p.FlagRegistry()}
}

// managedInUnleash is the flag administration's provider when the flags come from Unleash: the
// listing shows every registered flag with no explicit value (Unleash's strategies decide,
// not per-level values), and every change is refused with flags.ErrManagedInUnleash.
type managedInUnleash struct{ reg *flags.Registry }

// Registry implements flagadmin.Provider.
func (m managedInUnleash) Registry() *flags.Registry { return m.reg }

// State implements flagadmin.Provider: a registered flag with no explicit value.
func (m managedInUnleash) State(_ context.Context, f flags.Flag) (flags.State, error) {
	def, ok := m.reg.Lookup(f)
	if !ok {
		return flags.State{}, fmt.Errorf("flag %s: %w", f, flags.ErrUnknownFlag)
	}
	return flags.State{Definition: def, Companies: map[uuid.UUID]bool{}, Workspaces: map[uuid.UUID]bool{}}, nil
}

// Set implements flagadmin.Provider: always flags.ErrManagedInUnleash.
func (managedInUnleash) Set(context.Context, flags.Flag, flags.Target, bool) error {
	return flags.ErrManagedInUnleash
}

// Clear implements flagadmin.Provider: always flags.ErrManagedInUnleash.
func (managedInUnleash) Clear(context.Context, flags.Flag, flags.Target) error {
	return flags.ErrManagedInUnleash
}

// serviceConns are the client connections to the services behind the API.
type serviceConns struct {
	recipient, campaign, events *grpc.ClientConn
}

func dialServices(cfg Config) (*serviceConns, error) {
	var c serviceConns
	var err error
	if c.recipient, err = rpc.Dial(cfg.RecipientGRPCAddr); err != nil {
		return nil, fmt.Errorf("RECIPIENT_GRPC_ADDR: %w", err)
	}
	if c.campaign, err = rpc.Dial(cfg.CampaignGRPCAddr); err != nil {
		_ = c.recipient.Close()
		return nil, fmt.Errorf("CAMPAIGN_GRPC_ADDR: %w", err)
	}
	if c.events, err = rpc.Dial(cfg.EventsGRPCAddr); err != nil {
		_ = c.recipient.Close()
		_ = c.campaign.Close()
		return nil, fmt.Errorf("EVENTS_GRPC_ADDR: %w", err)
	}
	return &c, nil
}

// register routes the API's paths to the services.
func (c *serviceConns) register(ctx context.Context, mux *runtime.ServeMux) error {
	if err := recipientv1.RegisterRecipientServiceHandler(ctx, mux, c.recipient); err != nil {
		return fmt.Errorf("register recipient routes: %w", err)
	}
	if err := campaignv1.RegisterCampaignServiceHandler(ctx, mux, c.campaign); err != nil {
		return fmt.Errorf("register campaign routes: %w", err)
	}
	if err := eventsv1.RegisterEventsIngestServiceHandler(ctx, mux, c.events); err != nil {
		return fmt.Errorf("register events routes: %w", err)
	}
	if err := eventsv1.RegisterEventStatsServiceHandler(ctx, mux, c.events); err != nil {
		return fmt.Errorf("register event statistics routes: %w", err)
	}
	return nil
}

func (c *serviceConns) close(log *zap.Logger) {
	if err := errors.Join(c.recipient.Close(), c.campaign.Close(), c.events.Close()); err != nil {
		log.Warn("close service connections", zap.Error(err))
	}
}
