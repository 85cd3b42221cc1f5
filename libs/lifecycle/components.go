package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"google.golang.org/grpc"
)

// HTTPServer serves srv on ln.
type HTTPServer struct {
	name string
	srv  *http.Server
	ln   net.Listener
}

// NewHTTPServer returns a component that serves srv on ln (bound by the caller, so a port
// conflict fails at start-up rather than later).
func NewHTTPServer(name string, srv *http.Server, ln net.Listener) *HTTPServer {
	return &HTTPServer{name: name, srv: srv, ln: ln}
}

// Name implements Component.
func (h *HTTPServer) Name() string { return h.name }

// Serve implements Component.
func (h *HTTPServer) Serve(context.Context) error {
	if err := h.srv.Serve(h.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve http: %w", err)
	}
	return nil
}

// Shutdown implements Component: in-flight requests finish until ctx is done, then the
// remaining connections are closed.
func (h *HTTPServer) Shutdown(ctx context.Context) error {
	if err := h.srv.Shutdown(ctx); err != nil {
		_ = h.srv.Close()
		return fmt.Errorf("drain http: %w", err)
	}
	return nil
}

// GRPCServer serves a gRPC server on ln.
type GRPCServer struct {
	name string
	srv  *grpc.Server
	ln   net.Listener
}

// NewGRPCServer returns a component that serves srv on ln.
func NewGRPCServer(name string, srv *grpc.Server, ln net.Listener) *GRPCServer {
	return &GRPCServer{name: name, srv: srv, ln: ln}
}

// Name implements Component.
func (g *GRPCServer) Name() string { return g.name }

// Serve implements Component.
func (g *GRPCServer) Serve(context.Context) error {
	if err := g.srv.Serve(g.ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("serve grpc: %w", err)
	}
	return nil
}

// Shutdown implements Component: GracefulStop lets in-flight RPCs finish; when ctx ends first
// the server is stopped hard.
func (g *GRPCServer) Shutdown(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		g.srv.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		g.srv.Stop()
		<-done
		return fmt.Errorf("drain grpc: %w", ctx.Err())
	}
}

// Func adapts two functions into a Component.
type Func struct {
	ComponentName string
	ServeFunc     func(ctx context.Context) error
	ShutdownFunc  func(ctx context.Context) error
}

// Name implements Component.
func (f Func) Name() string { return f.ComponentName }

// Serve implements Component.
func (f Func) Serve(ctx context.Context) error { return f.ServeFunc(ctx) }

// Shutdown implements Component.
func (f Func) Shutdown(ctx context.Context) error { return f.ShutdownFunc(ctx) }
