// Package app wires events-ingest: configuration, the shared process plumbing (logging,
// PostgreSQL, Redis, metrics, health), the events store, the write buffer (events.Batcher) and
// service, the statistics reader with its clients of the campaign and recipient services, and
// the gRPC server, all run under one graceful lifecycle.
package app

import (
	"context"
	"fmt"
	"time"

	"github.com/heraldmail/herald/libs/config"
	"github.com/heraldmail/herald/libs/jobs"
	"github.com/heraldmail/herald/libs/lifecycle"
	"github.com/heraldmail/herald/libs/process"
	"github.com/heraldmail/herald/libs/rpc"
	campaignv1 "github.com/heraldmail/herald/proto/gen/go/herald/campaign/v1"
	recipientv1 "github.com/heraldmail/herald/proto/gen/go/herald/recipient/v1"
	"github.com/heraldmail/herald/services/events-ingest/internal/directory"
	"github.com/heraldmail/herald/services/events-ingest/internal/events"
	"github.com/heraldmail/herald/services/events-ingest/internal/grpcapi"
	"github.com/heraldmail/herald/services/events-ingest/internal/stats"
	"github.com/heraldmail/herald/services/events-ingest/internal/store"
	"go.uber.org/zap"
)

// Service is the process name in logs, metrics and pg_stat_activity.
const Service = "events-ingest"

// Run runs events-ingest until ctx is cancelled or a SIGTERM/SIGINT arrives, then shuts it
// down gracefully. It returns nil after a clean shutdown.
func Run(ctx context.Context, boot *zap.Logger, env config.Source) error {
	boot.Debug("starting", zap.String("service", Service))
	var cfg Config
	if err := config.Load(&cfg, env); err != nil {
		return fmt.Errorf("load config: %w", err)
	}
	p, err := process.Start(ctx, process.Options{Name: Service, DefaultAdminPort: DefaultAdminPort}, cfg, &cfg.Common)
	if err != nil {
		return err
	}
	defer p.Close()

	inserter, err := jobs.NewInserter(p.Pool)
	if err != nil {
		return err
	}
	storeMetrics, err := store.NewMetrics(p.Registry)
	if err != nil {
		return err
	}
	st := store.New(p.Pool, inserter, store.WithFlags(p.Flags), store.WithMetrics(storeMetrics))
	batcher, err := events.NewBatcher(st, cfg.Ingest.batcher(), p.Registry)
	if err != nil {
		return err
	}
	// The buffer drains on shutdown alongside the gRPC server: it stops taking events (callers
	// still streaming get UNAVAILABLE and resend what is unacknowledged elsewhere), writes what
	// it holds and answers every waiting caller.
	buffer := lifecycle.Func{
		ComponentName: "ingest buffer",
		ServeFunc: func(context.Context) error {
			<-batcher.Stopped()
			return nil
		},
		ShutdownFunc: batcher.Close,
	}
	// Should start-up fail below, the writers still stop.
	p.OnClose(func() { _ = batcher.Close(context.Background()) })
	svc := events.NewService(batcher, time.Now)
	campaignConn, err := rpc.Dial(cfg.CampaignGRPCAddr)
	if err != nil {
		return fmt.Errorf("CAMPAIGN_GRPC_ADDR: %w", err)
	}
	p.OnClose(func() { _ = campaignConn.Close() })
	recipientConn, err := rpc.Dial(cfg.RecipientGRPCAddr)
	if err != nil {
		return fmt.Errorf("RECIPIENT_GRPC_ADDR: %w", err)
	}
	p.OnClose(func() { _ = recipientConn.Close() })
	dir := directory.New(campaignv1.NewCampaignServiceClient(campaignConn), recipientv1.NewRecipientServiceClient(recipientConn))

	srv, hs := p.GRPCServer()
	grpcapi.Register(srv, grpcapi.New(svc, p.Log))
	// A recipient's timeline is read from the table the store writes the tenant's events to.
	grpcapi.RegisterStats(srv, grpcapi.NewStats(stats.New(p.Pool, st.Partitioned), dir, time.Now, p.Log))
	hs.SetServing(grpcapi.ServiceName, grpcapi.StatsServiceName)
	grpcComps, err := p.ServeGRPC(ctx, cfg.GRPCPort, srv, hs)
	if err != nil {
		return err
	}
	return p.Run(ctx, append(grpcComps, buffer)...)
}
