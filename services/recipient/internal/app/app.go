// Package app wires the recipient service together (configuration, PostgreSQL, Redis, store,
// business rules, gRPC transport, admin listener) and runs it until its context ends or a
// signal arrives. It is main's run, kept here so that tests can start the whole service in
// process.
package app

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/heraldmail/herald/libs/config"
	"github.com/heraldmail/herald/libs/jobs"
	"github.com/heraldmail/herald/libs/process"
	"github.com/heraldmail/herald/libs/tenancy"
	recipientv1 "github.com/heraldmail/herald/proto/gen/go/herald/recipient/v1"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/heraldmail/herald/services/recipient/internal/fields"
	"github.com/heraldmail/herald/services/recipient/internal/grpcapi"
	"github.com/heraldmail/herald/services/recipient/internal/imports"
	"github.com/heraldmail/herald/services/recipient/internal/recipient"
	"github.com/heraldmail/herald/services/recipient/internal/store"
)

// Service is the process's name in logs, metrics and pg_stat_activity.
const Service = "recipient"

// DefaultAdminPort is ADMIN_PORT when it is not set.
const DefaultAdminPort = 9052

// Config is the recipient service's configuration.
type Config struct {
	process.Common
	// GRPCPort is where RecipientService listens.
	GRPCPort int `env:"GRPC_PORT" default:"50052" min:"1" max:"65535"`
	// ErasureHashKey keys the hashes kept of erased addresses (HMAC-SHA256). Required in
	// staging and production; elsewhere, when unset, a key is derived from JWT_SECRET.
	ErasureHashKey string `env:"ERASURE_HASH_KEY" secret:"true"`
	// ErasureHashKeyPrevious is the key before a rotation: hashes made with it are still
	// recognised.
	ErasureHashKeyPrevious string `env:"ERASURE_HASH_KEY_PREVIOUS" secret:"true"`
}

// Validate checks the erasure keys without echoing them.
func (c *Config) Validate() error {
	if c.ErasureHashKey == "" && (c.AppEnv == config.EnvProduction || c.AppEnv == "staging") {
		return &config.Error{Var: "ERASURE_HASH_KEY", Reason: "is required when APP_ENV is staging or production"}
	}
	if c.ErasureHashKey != "" && len(c.ErasureHashKey) < recipient.MinHashKeyLength {
		return &config.Error{Var: "ERASURE_HASH_KEY", Reason: "must be at least 32 bytes"}
	}
	if c.ErasureHashKeyPrevious != "" && len(c.ErasureHashKeyPrevious) < recipient.MinHashKeyLength {
		return &config.Error{Var: "ERASURE_HASH_KEY_PREVIOUS", Reason: "must be at least 32 bytes"}
	}
	return nil
}

// hasher builds the erasure hasher from the configuration.
func (c *Config) hasher() (*recipient.EmailHasher, error) {
	key := c.ErasureHashKey
	if key == "" {
		// Development and tests only (Validate refuses this elsewhere): a stable key that is
		// not the token secret itself.
		m := hmac.New(sha256.New, []byte(c.JWTSecret))
		m.Write([]byte("herald erasure hash key"))
		key = hex.EncodeToString(m.Sum(nil))
	}
	h, err := recipient.NewEmailHasher(key, c.ErasureHashKeyPrevious)
	if err != nil {
		return nil, fmt.Errorf("erasure hash key: %w", err)
	}
	return h, nil
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
	p, err := process.Start(ctx, process.Options{Name: Service, DefaultAdminPort: DefaultAdminPort}, cfg, &cfg.Common)
	if err != nil {
		return err
	}
	defer p.Close()

	hasher, err := cfg.hasher()
	if err != nil {
		return err
	}
	inserter, err := jobs.NewInserter(p.Pool)
	if err != nil {
		return err
	}
	fieldStore := store.NewFields(p.Pool)
	svc := recipient.NewService(store.New(p.Pool, inserter), fieldStore, hasher, time.Now)
	fieldSvc := fields.NewService(fieldStore, time.Now)
	srv, hs := p.GRPCServer()
	recipientv1.RegisterRecipientServiceServer(srv, grpcapi.New(svc, fieldSvc, p.Log))
	hs.SetServing(recipientv1.RecipientService_ServiceDesc.ServiceName)
	// CSV imports: the upload is stored and its job enqueued in one transaction; the rows are
	// held to the custom fields and the erased addresses like any other write.
	importSvc := imports.NewService(p.Pool, inserter, imports.Rules{
		Definitions: store.DefinitionsTx,
		Suppressed: func(ctx context.Context, tx pgx.Tx, t tenancy.Tenant, emails []string) (map[string]bool, error) {
			return store.SuppressedTx(ctx, tx, hasher, t, emails)
		},
	}, time.Now)
	recipientv1.RegisterImportServiceServer(srv, grpcapi.NewImportServer(importSvc, p.Log))
	hs.SetServing(recipientv1.ImportService_ServiceDesc.ServiceName)
	grpcComps, err := p.ServeGRPC(ctx, cfg.GRPCPort, srv, hs)
	if err != nil {
		return err
	}
	return p.Run(ctx, grpcComps...)
}
