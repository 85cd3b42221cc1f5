// Package rpc builds the gRPC servers and clients of every service with the same interceptor
// chain: panic recovery, RED metrics, request logging and token verification, plus the
// grpc.health.v1 service kept in step with the process's own readiness.
package rpc

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/heraldmail/herald/libs/health"
	"github.com/heraldmail/herald/libs/metrics"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
)

// ServerOptions are what NewServer wires in.
type ServerOptions struct {
	Log      *zap.Logger
	Registry prometheus.Registerer
	Verifier *tenancy.Verifier
}

// NewServer returns a gRPC server with the standard interceptors and a registered health
// service. Register the service implementations on it, then call Health.SetServing.
func NewServer(o ServerOptions) (*grpc.Server, *Health) {
	m := metrics.NewGRPCServer(o.Registry)
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(
			m.Unary(),
			logUnary(o.Log),
			recoverUnary(o.Log),
			tenancy.UnaryServerInterceptor(o.Verifier),
		),
		grpc.ChainStreamInterceptor(
			m.Stream(),
			logStream(o.Log),
			recoverStream(o.Log),
			tenancy.StreamServerInterceptor(o.Verifier),
		),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionAge: 5 * time.Minute, MaxConnectionAgeGrace: 30 * time.Second}),
		grpc.MaxRecvMsgSize(8<<20),
	)
	hs := grpchealth.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	return srv, &Health{server: hs}
}

// Health is the grpc.health.v1 status of a server: "" (the whole server) and each service.
type Health struct {
	server   *grpchealth.Server
	services []string
}

// SetServing marks the whole server and the named services as serving.
func (h *Health) SetServing(services ...string) {
	h.services = append(h.services, services...)
	h.set(healthpb.HealthCheckResponse_SERVING)
}

func (h *Health) set(s healthpb.HealthCheckResponse_ServingStatus) {
	h.server.SetServingStatus("", s)
	for _, name := range h.services {
		h.server.SetServingStatus(name, s)
	}
}

// Shutdown marks everything NOT_SERVING for good (called when the process starts draining).
func (h *Health) Shutdown() { h.server.Shutdown() }

// Follow keeps the gRPC status in step with the process's readiness checks until ctx ends:
// NOT_SERVING while any dependency is down.
func (h *Health) Follow(ctx context.Context, hh *health.Handler, checks []health.Check, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if !hh.Draining() {
			if hh.Evaluate(ctx, checks).OK() {
				h.set(healthpb.HealthCheckResponse_SERVING)
			} else {
				h.set(healthpb.HealthCheckResponse_NOT_SERVING)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Dial returns a client connection to an internal service that forwards the caller's token.
// Connections are lazy: a service that is down at start-up is retried on use.
func Dial(target string) (*grpc.ClientConn, error) {
	cc, err := grpc.NewClient(target,
		// Internal traffic stays on the private network; transport encryption between pods is
		// the service mesh's job.
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(tenancy.UnaryClientInterceptor()),
		grpc.WithChainStreamInterceptor(tenancy.StreamClientInterceptor()),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
	)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", target, err)
	}
	return cc, nil
}

func recoverUnary(log *zap.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				log.Error("panic in rpc", zap.String("method", info.FullMethod), zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
				err = status.Error(codes.Internal, "internal error")
			}
		}()
		return h(ctx, req)
	}
}

func recoverStream(log *zap.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
		defer func() {
			if r := recover(); r != nil {
				log.Error("panic in rpc", zap.String("method", info.FullMethod), zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
				err = status.Error(codes.Internal, "internal error")
			}
		}()
		return h(srv, ss)
	}
}

func logCall(log *zap.Logger, method string, start time.Time, err error) {
	code := status.Code(err)
	fields := []zap.Field{zap.String("method", method), zap.String("code", code.String()), zap.Duration("duration", time.Since(start))}
	switch code {
	case codes.OK, codes.NotFound, codes.InvalidArgument, codes.AlreadyExists, codes.FailedPrecondition, codes.Unauthenticated, codes.PermissionDenied, codes.Canceled, codes.ResourceExhausted:
		log.Debug("rpc", fields...)
	default:
		log.Error("rpc", append(fields, zap.Error(err))...)
	}
}

func logUnary(log *zap.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := h(ctx, req)
		logCall(log, info.FullMethod, start, err)
		return resp, err
	}
}

func logStream(log *zap.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		start := time.Now()
		err := h(srv, ss)
		logCall(log, info.FullMethod, start, err)
		return err
	}
}
