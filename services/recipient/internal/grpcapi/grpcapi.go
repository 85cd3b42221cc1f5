// Package grpcapi serves herald.recipient.v1.RecipientService: it turns requests into calls of
// the recipient business package and is the only place where errors become gRPC status codes
// (see toStatus).
package grpcapi

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/tenancy"
	recipientv1 "github.com/heraldmail/herald/proto/gen/go/herald/recipient/v1"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/heraldmail/herald/services/recipient/internal/fields"
	"github.com/heraldmail/herald/services/recipient/internal/recipient"
)

// Server implements recipientv1.RecipientServiceServer.
type Server struct {
	recipientv1.UnimplementedRecipientServiceServer
	svc    *recipient.Service
	fields *fields.Service
	log    *zap.Logger
}

// New returns a Server on svc (recipients and bulk operations) and fieldSvc (custom field
// definitions); log receives the internal errors that clients only see as "internal error".
func New(svc *recipient.Service, fieldSvc *fields.Service, log *zap.Logger) *Server {
	return &Server{svc: svc, fields: fieldSvc, log: log}
}

// CreateRecipient implements recipientv1.RecipientServiceServer.
func (s *Server) CreateRecipient(ctx context.Context, req *recipientv1.CreateRecipientRequest) (*recipientv1.CreateRecipientResponse, error) {
	t, err := scope(ctx, req.GetWorkspaceId(), req.GetDomainId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	r, err := s.svc.Create(ctx, t, recipient.NewRecipient{
		Email:      req.GetEmail(),
		Attributes: req.GetAttributes().AsMap(),
	})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	pr, err := toProto(r)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &recipientv1.CreateRecipientResponse{Recipient: pr}, nil
}

// GetRecipient implements recipientv1.RecipientServiceServer.
func (s *Server) GetRecipient(ctx context.Context, req *recipientv1.GetRecipientRequest) (*recipientv1.GetRecipientResponse, error) {
	t, err := scope(ctx, req.GetWorkspaceId(), req.GetDomainId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	id, err := parseID("recipient_id", req.GetRecipientId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	r, err := s.svc.Get(ctx, t, id)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	pr, err := toProto(r)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &recipientv1.GetRecipientResponse{Recipient: pr}, nil
}

// UpdateRecipientStatus implements recipientv1.RecipientServiceServer.
func (s *Server) UpdateRecipientStatus(ctx context.Context, req *recipientv1.UpdateRecipientStatusRequest) (*recipientv1.UpdateRecipientStatusResponse, error) {
	t, err := scope(ctx, req.GetWorkspaceId(), req.GetDomainId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	id, err := parseID("recipient_id", req.GetRecipientId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	st, ok := statusFromProto(req.GetStatus())
	if !ok {
		return nil, s.toStatus(ctx, &recipient.ValidationError{Field: "status", Reason: "must be one of RECIPIENT_STATUS_SUBSCRIBED, RECIPIENT_STATUS_UNSUBSCRIBED, RECIPIENT_STATUS_BOUNCED, RECIPIENT_STATUS_COMPLAINED"})
	}
	var event uuid.UUID
	if req.GetEventId() != "" {
		if event, err = parseID("event_id", req.GetEventId()); err != nil {
			return nil, s.toStatus(ctx, err)
		}
	}
	r, err := s.svc.UpdateStatus(ctx, t, id, recipient.StatusChange{Status: st, Reason: req.GetReason(), EventID: event})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	pr, err := toProto(r)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &recipientv1.UpdateRecipientStatusResponse{Recipient: pr}, nil
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
		return uuid.Nil, &recipient.ValidationError{Field: field, Reason: "must be a UUID such as 3f8e1b2a-5c4d-4e6f-8a9b-0c1d2e3f4a5b"}
	}
	return id, nil
}

// toStatus is the one mapping from errors to gRPC statuses. Messages a client sees say what
// to fix and never carry SQL or internal details; those are logged here instead.
func (s *Server) toStatus(ctx context.Context, err error) error {
	var (
		verr   *recipient.ValidationError
		fverr  *fields.ValidationError
		ferrs  fields.Errors
		ferr   *fields.FieldError
		change *fields.ChangeError
	)
	switch {
	case errors.As(err, &verr):
		return status.Error(codes.InvalidArgument, verr.Error())
	case errors.As(err, &fverr):
		return status.Error(codes.InvalidArgument, fverr.Error())
	case errors.As(err, &ferrs):
		return status.Error(codes.InvalidArgument, ferrs.Error())
	case errors.As(err, &ferr):
		return status.Error(codes.InvalidArgument, ferr.Error())
	case errors.As(err, &change):
		return status.Error(codes.FailedPrecondition, change.Error())
	case errors.Is(err, fields.ErrTooMany):
		return status.Error(codes.FailedPrecondition, fmt.Sprintf("%s (%d); retired fields count too", fields.ErrTooMany, fields.MaxDefinitions))
	case errors.Is(err, fields.ErrNotFound):
		return status.Error(codes.NotFound, fields.ErrNotFound.Error())
	case errors.Is(err, fields.ErrAlreadyExists):
		return status.Error(codes.AlreadyExists, fields.ErrAlreadyExists.Error())
	case errors.Is(err, recipient.ErrOperationNotFound):
		return status.Error(codes.NotFound, recipient.ErrOperationNotFound.Error())
	case errors.Is(err, recipient.ErrSuppressed):
		return status.Error(codes.FailedPrecondition, recipient.ErrSuppressed.Error())
	case errors.Is(err, errServiceOnly):
		return status.Error(codes.PermissionDenied, errServiceOnly.Error())
	case errors.Is(err, recipient.ErrNotFound), errors.Is(err, tenancy.ErrOutOfScope):
		// Another tenant's recipient, and a route outside the partition a narrowed token was
		// issued for, are reported the same way as a missing recipient.
		return status.Error(codes.NotFound, recipient.ErrNotFound.Error())
	case errors.Is(err, recipient.ErrAlreadyExists):
		return status.Error(codes.AlreadyExists, recipient.ErrAlreadyExists.Error())
	case errors.Is(err, tenancy.ErrInvalidTenant):
		return status.Error(codes.InvalidArgument, "workspace_id and domain_id must be UUIDs")
	case errors.Is(err, tenancy.ErrUnauthenticated):
		return status.Error(codes.Unauthenticated, "missing or invalid bearer token")
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return status.Error(codes.Canceled, "request cancelled")
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		return status.Error(codes.DeadlineExceeded, "request deadline exceeded")
	default:
		s.log.Error("recipient request failed", zap.Error(err))
		return status.Error(codes.Internal, "internal error")
	}
}

func toProto(r recipient.Recipient) (*recipientv1.Recipient, error) {
	attrs, err := structpb.NewStruct(r.Attributes)
	if err != nil {
		return nil, fmt.Errorf("encode attributes: %w", err)
	}
	pr := &recipientv1.Recipient{
		Id:           r.ID.String(),
		WorkspaceId:  r.Tenant.WorkspaceID.String(),
		DomainId:     r.Tenant.DomainID.String(),
		Email:        r.Email,
		Status:       statusToProto(r.Status),
		StatusReason: r.StatusReason,
		Attributes:   attrs,
		CreateTime:   timestamppb.New(r.CreatedAt),
		UpdateTime:   timestamppb.New(r.UpdatedAt),
	}
	if !r.StatusChangedAt.IsZero() {
		pr.StatusChangeTime = timestamppb.New(r.StatusChangedAt)
	}
	return pr, nil
}

func statusToProto(s recipient.Status) recipientv1.RecipientStatus {
	switch s {
	case recipient.StatusSubscribed:
		return recipientv1.RecipientStatus_RECIPIENT_STATUS_SUBSCRIBED
	case recipient.StatusUnsubscribed:
		return recipientv1.RecipientStatus_RECIPIENT_STATUS_UNSUBSCRIBED
	case recipient.StatusBounced:
		return recipientv1.RecipientStatus_RECIPIENT_STATUS_BOUNCED
	case recipient.StatusComplained:
		return recipientv1.RecipientStatus_RECIPIENT_STATUS_COMPLAINED
	}
	return recipientv1.RecipientStatus_RECIPIENT_STATUS_UNSPECIFIED
}

func statusFromProto(s recipientv1.RecipientStatus) (recipient.Status, bool) {
	switch s {
	case recipientv1.RecipientStatus_RECIPIENT_STATUS_SUBSCRIBED:
		return recipient.StatusSubscribed, true
	case recipientv1.RecipientStatus_RECIPIENT_STATUS_UNSUBSCRIBED:
		return recipient.StatusUnsubscribed, true
	case recipientv1.RecipientStatus_RECIPIENT_STATUS_BOUNCED:
		return recipient.StatusBounced, true
	case recipientv1.RecipientStatus_RECIPIENT_STATUS_COMPLAINED:
		return recipient.StatusComplained, true
	}
	return "", false
}
