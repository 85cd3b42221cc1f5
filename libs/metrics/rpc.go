package metrics

import (
	"context"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// GRPCServer holds the RED metrics of a gRPC server.
type GRPCServer struct {
	handled  *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewGRPCServer registers herald_grpc_server_handled_total{service,method,code} and
// herald_grpc_server_handling_seconds{service,method}.
func NewGRPCServer(reg prometheus.Registerer) *GRPCServer {
	m := &GRPCServer{
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_grpc_server_handled_total",
			Help: "RPCs completed on the server, by status code.",
		}, []string{"service", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "herald_grpc_server_handling_seconds",
			Help:    "Time to handle an RPC on the server.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"service", "method"}),
	}
	reg.MustRegister(m.handled, m.duration)
	return m
}

func (m *GRPCServer) observe(fullMethod string, start time.Time, err error) {
	svc, method := splitMethod(fullMethod)
	m.handled.WithLabelValues(svc, method, status.Code(err).String()).Inc()
	m.duration.WithLabelValues(svc, method).Observe(time.Since(start).Seconds())
}

// Unary is the unary server interceptor.
func (m *GRPCServer) Unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := h(ctx, req)
		m.observe(info.FullMethod, start, err)
		return resp, err
	}
}

// Stream is the stream server interceptor.
func (m *GRPCServer) Stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		start := time.Now()
		err := h(srv, ss)
		m.observe(info.FullMethod, start, err)
		return err
	}
}

func splitMethod(full string) (string, string) {
	full = strings.TrimPrefix(full, "/")
	if i := strings.LastIndex(full, "/"); i >= 0 {
		return full[:i], full[i+1:]
	}
	return "unknown", full
}
