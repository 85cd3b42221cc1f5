// Package recipienttest is an in-process stand-in for the recipient service, for tests of the
// worker's outgoing calls. It verifies bearer tokens with the same interceptors as the real
// service, records every UpdateRecipientStatus call with the verified caller, and answers as
// the test tells it to.
package recipienttest

import (
	"context"
	"net"
	"testing"

	"github.com/heraldmail/herald/libs/metrics"
	"github.com/heraldmail/herald/libs/rpc"
	"github.com/heraldmail/herald/libs/tenancy"
	recipientv1 "github.com/heraldmail/herald/proto/gen/go/herald/recipient/v1"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Call is one UpdateRecipientStatus call the server received.
type Call struct {
	// Principal is the caller, verified from its bearer token.
	Principal tenancy.Principal
	Request   *recipientv1.UpdateRecipientStatusRequest
}

// Respond decides the answer to a call: nil for success, or a status error.
type Respond func(Call) error

// Server is a running fake recipient service.
type Server struct {
	recipientv1.UnimplementedRecipientServiceServer
	// Addr is the host:port it listens on.
	Addr string
	// Calls receives every call, in order. It is buffered; a test that makes more calls than
	// its capacity must drain it.
	Calls   chan Call
	respond Respond
}

// Start serves a fake on 127.0.0.1:0 that accepts tokens signed with secret, until the test
// ends. respond may be nil: every call then succeeds.
func Start(t testing.TB, secret string, respond Respond) *Server {
	t.Helper()
	if respond == nil {
		respond = func(Call) error { return nil }
	}
	s := &Server{Calls: make(chan Call, 64), respond: respond}
	srv, hs := rpc.NewServer(rpc.ServerOptions{Log: zap.NewNop(), Registry: metrics.NewRegistry(), Verifier: tenancy.NewVerifier(secret)})
	recipientv1.RegisterRecipientServiceServer(srv, s)
	hs.SetServing(recipientv1.RecipientService_ServiceDesc.ServiceName)

	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("recipienttest: listen: %v", err)
	}
	s.Addr = ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-served; err != nil {
			t.Errorf("recipienttest: serve: %v", err)
		}
	})
	return s
}

// UpdateRecipientStatus implements recipientv1.RecipientServiceServer.
func (s *Server) UpdateRecipientStatus(ctx context.Context, req *recipientv1.UpdateRecipientStatusRequest) (*recipientv1.UpdateRecipientStatusResponse, error) {
	p, ok := tenancy.PrincipalFrom(ctx)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "no principal")
	}
	c := Call{Principal: p, Request: req}
	s.Calls <- c
	if err := s.respond(c); err != nil {
		return nil, err
	}
	return &recipientv1.UpdateRecipientStatusResponse{Recipient: &recipientv1.Recipient{
		Id:          req.GetRecipientId(),
		WorkspaceId: req.GetWorkspaceId(),
		DomainId:    req.GetDomainId(),
		Status:      req.GetStatus(),
	}}, nil
}
