package app

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/tenancy"
	campaignv1 "github.com/heraldmail/herald/proto/gen/go/herald/campaign/v1"
	eventsv1 "github.com/heraldmail/herald/proto/gen/go/herald/events/v1"
	recipientv1 "github.com/heraldmail/herald/proto/gen/go/herald/recipient/v1"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Recipient ids the fake recipient service treats specially.
const (
	knownRecipientID = "6f1d3c2a-8c39-4b8e-a3f4-0e9d2b7c5a11"
	slowRecipientID  = "0c7a9e55-2d4b-4f61-9a0e-3b5c8d1e7f22"
)

// calls records what the fakes received, so tests can see what the gateway forwarded.
type calls struct {
	mu            sync.Mutex
	authorization []string
	principals    []tenancy.Principal
	requestIDs    []string
}

func (c *calls) record(ctx context.Context, p tenancy.Principal) {
	md, _ := metadata.FromIncomingContext(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.authorization = append(c.authorization, md.Get("authorization")...)
	c.principals = append(c.principals, p)
	c.requestIDs = append(c.requestIDs, md.Get("x-request-id")...)
}

func (c *calls) seen() (auth []string, principals []tenancy.Principal, ids []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.authorization...), append([]tenancy.Principal(nil), c.principals...),
		append([]string(nil), c.requestIDs...)
}

// requireToken is the fakes' stand-in for the services' own token check: a call without a
// token signed with one of the secrets is refused, and a token narrowed to a workspace and
// domain reaches only those (tenancy.Scope), as in the real services.
func requireToken(c *calls, secrets ...string) grpc.UnaryServerInterceptor {
	v := tenancy.NewVerifier(secrets...)
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		got := md.Get("authorization")
		if len(got) == 0 {
			return nil, status.Error(codes.Unauthenticated, "missing bearer token")
		}
		p, err := v.Verify(strings.TrimPrefix(got[0], "Bearer "))
		if err != nil {
			return nil, status.Error(codes.Unauthenticated, "invalid bearer token")
		}
		c.record(ctx, p)
		ctx = tenancy.WithPrincipal(ctx, p)
		if r, ok := req.(interface {
			GetWorkspaceId() string
			GetDomainId() string
		}); ok {
			if _, err := tenancy.Scope(ctx, r.GetWorkspaceId(), r.GetDomainId()); err != nil {
				return nil, status.Error(codes.NotFound, "out of scope")
			}
		}
		return h(ctx, req)
	}
}

// fakeRecipients creates recipients, knows one, and answers for the slow id only once
// released.
type fakeRecipients struct {
	recipientv1.UnimplementedRecipientServiceServer
	slowStarted chan struct{}
	release     chan struct{}
}

func (f *fakeRecipients) CreateRecipient(_ context.Context, req *recipientv1.CreateRecipientRequest) (*recipientv1.CreateRecipientResponse, error) {
	if req.GetEmail() == "" {
		return nil, status.Error(codes.InvalidArgument, "email is required")
	}
	return &recipientv1.CreateRecipientResponse{Recipient: &recipientv1.Recipient{
		Id:          uuid.NewString(),
		WorkspaceId: req.GetWorkspaceId(),
		DomainId:    req.GetDomainId(),
		Email:       req.GetEmail(),
		Status:      recipientv1.RecipientStatus_RECIPIENT_STATUS_SUBSCRIBED,
	}}, nil
}

func (f *fakeRecipients) GetRecipient(ctx context.Context, req *recipientv1.GetRecipientRequest) (*recipientv1.GetRecipientResponse, error) {
	switch req.GetRecipientId() {
	case knownRecipientID:
	case slowRecipientID:
		close(f.slowStarted)
		select {
		case <-f.release:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	default:
		return nil, status.Error(codes.NotFound, "recipient not found")
	}
	return &recipientv1.GetRecipientResponse{Recipient: &recipientv1.Recipient{
		Id:          req.GetRecipientId(),
		WorkspaceId: req.GetWorkspaceId(),
		DomainId:    req.GetDomainId(),
		Email:       "known@example.com",
		Status:      recipientv1.RecipientStatus_RECIPIENT_STATUS_SUBSCRIBED,
	}}, nil
}

type fakeCampaigns struct {
	campaignv1.UnimplementedCampaignServiceServer
}

func (fakeCampaigns) GetCampaign(_ context.Context, req *campaignv1.GetCampaignRequest) (*campaignv1.GetCampaignResponse, error) {
	return &campaignv1.GetCampaignResponse{Campaign: &campaignv1.Campaign{
		Id:          req.GetCampaignId(),
		WorkspaceId: req.GetWorkspaceId(),
		DomainId:    req.GetDomainId(),
		Name:        "Spring sale",
		State:       campaignv1.CampaignState_CAMPAIGN_STATE_DRAFT,
	}}, nil
}

type fakeEvents struct {
	eventsv1.UnimplementedEventsIngestServiceServer
}

func (fakeEvents) IngestEvents(_ context.Context, req *eventsv1.IngestEventsRequest) (*eventsv1.IngestEventsResponse, error) {
	return &eventsv1.IngestEventsResponse{Accepted: int32(len(req.GetEvents()))}, nil
}

// backends are the three fake services the gateway proxies to.
type backends struct {
	recipientAddr, campaignAddr, eventsAddr string
	recipients                              *fakeRecipients
	calls                                   *calls
}

// startBackends serves the fakes on loopback ports until the test ends; each accepts only
// calls that carry a token signed with one of secrets.
func startBackends(t *testing.T, secrets ...string) *backends {
	t.Helper()
	b := &backends{
		recipients: &fakeRecipients{slowStarted: make(chan struct{}), release: make(chan struct{})},
		calls:      &calls{},
	}
	serve := func(register func(*grpc.Server)) string {
		var lc net.ListenConfig
		ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
		require.NoError(t, err)
		srv := grpc.NewServer(grpc.ChainUnaryInterceptor(requireToken(b.calls, secrets...)))
		register(srv)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = srv.Serve(ln)
		}()
		t.Cleanup(func() {
			srv.Stop()
			<-done
		})
		return ln.Addr().String()
	}
	b.recipientAddr = serve(func(s *grpc.Server) { recipientv1.RegisterRecipientServiceServer(s, b.recipients) })
	b.campaignAddr = serve(func(s *grpc.Server) { campaignv1.RegisterCampaignServiceServer(s, fakeCampaigns{}) })
	b.eventsAddr = serve(func(s *grpc.Server) { eventsv1.RegisterEventsIngestServiceServer(s, fakeEvents{}) })
	return b
}
