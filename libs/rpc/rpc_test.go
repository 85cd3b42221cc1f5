package rpc_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/health"
	"github.com/heraldmail/herald/libs/rpc"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

const secret = "rpc-test-secret-0123456789abcdef0123456789"

type echo struct {
	testgrpc.UnimplementedTestServiceServer
}

// UnaryCall answers with the verified caller and panics on request, to exercise recovery.
func (echo) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	if req.GetFillUsername() && req.GetResponseSize() < 0 {
		panic("requested panic")
	}
	p, _ := tenancy.PrincipalFrom(ctx)
	return &testgrpc.SimpleResponse{Username: p.Subject + "@" + p.CompanyID.String()}, nil
}

func start(t *testing.T) (string, *rpc.Health, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	srv, hs := rpc.NewServer(rpc.ServerOptions{Log: zaptest.NewLogger(t), Registry: reg, Verifier: tenancy.NewVerifier(secret)})
	testgrpc.RegisterTestServiceServer(srv, echo{})
	hs.SetServing("grpc.testing.TestService")
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String(), hs, reg
}

func TestTokenIsRequiredAndForwarded(t *testing.T) {
	t.Parallel()
	addr, _, reg := start(t)
	cc, err := rpc.Dial(addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	client := testgrpc.NewTestServiceClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	_, err = client.UnaryCall(ctx, &testgrpc.SimpleRequest{})
	require.Equal(t, codes.Unauthenticated, status.Code(err))

	_, err = client.UnaryCall(tenancy.WithToken(ctx, "garbage"), &testgrpc.SimpleRequest{})
	require.Equal(t, codes.Unauthenticated, status.Code(err))

	company := uuid.New()
	tok, err := tenancy.NewSigner(secret).ServiceToken("worker", company)
	require.NoError(t, err)
	resp, err := client.UnaryCall(tenancy.WithToken(ctx, tok), &testgrpc.SimpleRequest{})
	require.NoError(t, err)
	require.Equal(t, "service:worker@"+company.String(), resp.GetUsername())

	// A verified principal's own token is forwarded when no other is set.
	p, err := tenancy.NewVerifier(secret).Verify(tok)
	require.NoError(t, err)
	resp, err = client.UnaryCall(tenancy.WithPrincipal(ctx, p), &testgrpc.SimpleRequest{})
	require.NoError(t, err)
	require.Equal(t, "service:worker@"+company.String(), resp.GetUsername())

	_, err = client.UnaryCall(tenancy.WithToken(ctx, tok), &testgrpc.SimpleRequest{FillUsername: true, ResponseSize: -1})
	require.Equal(t, codes.Internal, status.Code(err), "a panic becomes Internal and the server survives")
	_, err = client.UnaryCall(tenancy.WithToken(ctx, tok), &testgrpc.SimpleRequest{})
	require.NoError(t, err)

	n, err := testutil.GatherAndCount(reg, "herald_grpc_server_handled_total")
	require.NoError(t, err)
	require.Equal(t, 3, n, "one series per (method, code): Unauthenticated, OK, Internal")
}

func TestHealthNeedsNoTokenAndFollowsReadiness(t *testing.T) {
	t.Parallel()
	addr, hs, _ := start(t)
	cc, err := rpc.Dial(addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	hc := healthpb.NewHealthClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	for _, svc := range []string{"", "grpc.testing.TestService"} {
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		require.NoError(t, err)
		require.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.GetStatus())
	}

	var up = make(chan bool, 1)
	up <- false
	check := health.Check{Name: "database", Timeout: time.Second, Run: func(context.Context) (map[string]any, error) {
		v := <-up
		up <- v
		if !v {
			return nil, context.DeadlineExceeded
		}
		return nil, nil
	}}
	hh := health.New(nil, []health.Check{check})
	followCtx, stopFollow := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { hs.Follow(followCtx, hh, []health.Check{check}, 20*time.Millisecond); close(done) }()
	waitStatus := func(want healthpb.HealthCheckResponse_ServingStatus) {
		require.Eventually(t, func() bool {
			resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "grpc.testing.TestService"})
			return err == nil && resp.GetStatus() == want
		}, 5*time.Second, 10*time.Millisecond)
	}
	waitStatus(healthpb.HealthCheckResponse_NOT_SERVING)
	<-up
	up <- true
	waitStatus(healthpb.HealthCheckResponse_SERVING)
	stopFollow()
	<-done

	hs.Shutdown()
	resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, resp.GetStatus())
}
