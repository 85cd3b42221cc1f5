// Package grpcapi serves herald.campaign.v1.CampaignService: it turns requests into calls of
// the campaign business package and is the only place where errors become gRPC status codes
// (see toStatus).
package grpcapi

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/tenancy"
	campaignv1 "github.com/heraldmail/herald/proto/gen/go/herald/campaign/v1"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/heraldmail/herald/services/campaign/internal/campaign"
)

// Server implements campaignv1.CampaignServiceServer.
type Server struct {
	campaignv1.UnimplementedCampaignServiceServer
	svc *campaign.Service
	log *zap.Logger
}

// New returns a Server on svc; log receives the internal errors that clients only see as
// "internal error".
func New(svc *campaign.Service, log *zap.Logger) *Server {
	return &Server{svc: svc, log: log}
}

// CreateCampaign implements campaignv1.CampaignServiceServer.
func (s *Server) CreateCampaign(ctx context.Context, req *campaignv1.CreateCampaignRequest) (*campaignv1.CreateCampaignResponse, error) {
	t, err := scope(ctx, req.GetWorkspaceId(), req.GetDomainId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	c, err := s.svc.Create(ctx, t, campaign.NewCampaign{
		Name:      req.GetName(),
		Subject:   req.GetSubject(),
		FromEmail: req.GetFromEmail(),
		HTMLBody:  req.GetHtmlBody(),
		TextBody:  req.GetTextBody(),
	})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &campaignv1.CreateCampaignResponse{Campaign: toProto(c)}, nil
}

// GetCampaign implements campaignv1.CampaignServiceServer.
func (s *Server) GetCampaign(ctx context.Context, req *campaignv1.GetCampaignRequest) (*campaignv1.GetCampaignResponse, error) {
	t, err := scope(ctx, req.GetWorkspaceId(), req.GetDomainId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	id, err := parseID("campaign_id", req.GetCampaignId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	c, err := s.svc.Get(ctx, t, id)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &campaignv1.GetCampaignResponse{Campaign: toProto(c)}, nil
}

// scope resolves the tenant of a request: the company from the verified token, the workspace
// and domain from the request.
func scope(ctx context.Context, workspaceID, domainID string) (tenancy.Tenant, error) {
	if _, err := parseID("workspace_id", workspaceID); err != nil {
		return tenancy.Tenant{}, err
	}
	if _, err := parseID("domain_id", domainID); err != nil {
		return tenancy.Tenant{}, err
	}
	t, err := tenancy.Scope(ctx, workspaceID, domainID)
	if err != nil {
		return tenancy.Tenant{}, fmt.Errorf("scope request: %w", err)
	}
	return t, nil
}

// parseID parses a UUID field of a request; the nil UUID is never an id.
func parseID(field, s string) (uuid.UUID, error) {
	id, err := uuid.Parse(s)
	if err != nil || id == uuid.Nil {
		return uuid.Nil, &campaign.ValidationError{Field: field, Reason: "must be a UUID such as 3f8e1b2a-5c4d-4e6f-8a9b-0c1d2e3f4a5b"}
	}
	return id, nil
}

// toStatus is the one mapping from errors to gRPC statuses. Messages a client sees say what
// to fix and never carry SQL or internal details; those are logged here instead.
func (s *Server) toStatus(ctx context.Context, err error) error {
	var verr *campaign.ValidationError
	switch {
	case errors.As(err, &verr):
		return status.Error(codes.InvalidArgument, verr.Error())
	case errors.Is(err, campaign.ErrNotFound), errors.Is(err, tenancy.ErrOutOfScope):
		// Another tenant's campaign, and a route outside the partition a narrowed token was
		// issued for, are reported the same way as a missing campaign.
		return status.Error(codes.NotFound, campaign.ErrNotFound.Error())
	case errors.Is(err, campaign.ErrInvalidTransition):
		// The message names the two states, which the client already knows.
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, tenancy.ErrInvalidTenant):
		return status.Error(codes.InvalidArgument, "workspace_id and domain_id must be UUIDs")
	case errors.Is(err, tenancy.ErrUnauthenticated):
		return status.Error(codes.Unauthenticated, "missing or invalid bearer token")
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return status.Error(codes.Canceled, "request cancelled")
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		return status.Error(codes.DeadlineExceeded, "request deadline exceeded")
	default:
		s.log.Error("campaign request failed", zap.Error(err))
		return status.Error(codes.Internal, "internal error")
	}
}

func toProto(c campaign.Campaign) *campaignv1.Campaign {
	return &campaignv1.Campaign{
		Id:          c.ID.String(),
		WorkspaceId: c.Tenant.WorkspaceID.String(),
		DomainId:    c.Tenant.DomainID.String(),
		Name:        c.Name,
		Subject:     c.Subject,
		FromEmail:   c.FromEmail,
		HtmlBody:    c.HTMLBody,
		TextBody:    c.TextBody,
		State:       stateToProto(c.State),
		CreateTime:  timestamppb.New(c.CreatedAt),
		UpdateTime:  timestamppb.New(c.UpdatedAt),
	}
}

func stateToProto(s campaign.State) campaignv1.CampaignState {
	switch s {
	case campaign.StateDraft:
		return campaignv1.CampaignState_CAMPAIGN_STATE_DRAFT
	case campaign.StateScheduled:
		return campaignv1.CampaignState_CAMPAIGN_STATE_SCHEDULED
	case campaign.StateSending:
		return campaignv1.CampaignState_CAMPAIGN_STATE_SENDING
	case campaign.StateSent:
		return campaignv1.CampaignState_CAMPAIGN_STATE_SENT
	case campaign.StatePaused:
		return campaignv1.CampaignState_CAMPAIGN_STATE_PAUSED
	case campaign.StateCancelled:
		return campaignv1.CampaignState_CAMPAIGN_STATE_CANCELLED
	}
	return campaignv1.CampaignState_CAMPAIGN_STATE_UNSPECIFIED
}
