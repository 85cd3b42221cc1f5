// Package app wires the campaign service together (configuration, PostgreSQL, Redis, store,
// business rules, gRPC transport, admin listener) and runs it until its context ends or a
// signal arrives. It is main's run, kept here so that tests can start the whole service in
// process.
package app

import (
	"context"
	"fmt"

	"github.com/heraldmail/herald/libs/config"
	"github.com/heraldmail/herald/libs/process"
	campaignv1 "github.com/heraldmail/herald/proto/gen/go/herald/campaign/v1"
	"go.uber.org/zap"

	"github.com/heraldmail/herald/services/campaign/internal/campaign"
	"github.com/heraldmail/herald/services/campaign/internal/grpcapi"
	"github.com/heraldmail/herald/services/campaign/internal/store"
)

// Service is the process's name in logs, metrics and pg_stat_activity.
const Service = "campaign"

// DefaultAdminPort is ADMIN_PORT when it is not set.
const DefaultAdminPort = 9051

// Config is the campaign service's configuration.
type Config struct {
	process.Common
	// GRPCPort is where CampaignService listens.
	GRPCPort int `env:"GRPC_PORT" default:"50051" min:"1" max:"65535"`
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

	svc := campaign.NewService(store.New(p.Pool))
	srv, hs := p.GRPCServer()
	campaignv1.RegisterCampaignServiceServer(srv, grpcapi.New(svc, p.Log))
	hs.SetServing(campaignv1.CampaignService_ServiceDesc.ServiceName)
	grpcComps, err := p.ServeGRPC(ctx, cfg.GRPCPort, srv, hs)
	if err != nil {
		return err
	}
	return p.Run(ctx, grpcComps...)
}
