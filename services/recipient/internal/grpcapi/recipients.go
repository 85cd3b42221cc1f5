package grpcapi

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/tenancy"
	recipientv1 "github.com/heraldmail/herald/proto/gen/go/herald/recipient/v1"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/heraldmail/herald/services/recipient/internal/fields"
	"github.com/heraldmail/herald/services/recipient/internal/recipient"
)

// errServiceOnly is an internal RPC called with a user's token: only internal callers (service
// tokens) reach it.
var errServiceOnly = errors.New("this operation is internal")

// UpdateRecipient implements recipientv1.RecipientServiceServer.
func (s *Server) UpdateRecipient(ctx context.Context, req *recipientv1.UpdateRecipientRequest) (*recipientv1.UpdateRecipientResponse, error) {
	t, id, err := scopeRecipient(ctx, req.GetWorkspaceId(), req.GetDomainId(), req.GetRecipientId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	ch := recipient.Change{StatusReason: req.GetStatusReason()}
	if req.GetAttributes() != nil {
		ch.Attributes = req.GetAttributes().AsMap()
	}
	if req.GetStatus() != recipientv1.RecipientStatus_RECIPIENT_STATUS_UNSPECIFIED {
		st, ok := statusFromProto(req.GetStatus())
		if !ok {
			return nil, s.toStatus(ctx, &recipient.ValidationError{Field: "status", Reason: "must be one of RECIPIENT_STATUS_SUBSCRIBED, RECIPIENT_STATUS_UNSUBSCRIBED, RECIPIENT_STATUS_BOUNCED, RECIPIENT_STATUS_COMPLAINED"})
		}
		ch.Status = st
	}
	r, err := s.svc.Update(ctx, t, id, ch)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	pr, err := toProto(r)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &recipientv1.UpdateRecipientResponse{Recipient: pr}, nil
}

// DeleteRecipient implements recipientv1.RecipientServiceServer.
func (s *Server) DeleteRecipient(ctx context.Context, req *recipientv1.DeleteRecipientRequest) (*recipientv1.DeleteRecipientResponse, error) {
	t, id, err := scopeRecipient(ctx, req.GetWorkspaceId(), req.GetDomainId(), req.GetRecipientId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	if err := s.svc.Delete(ctx, t, id); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &recipientv1.DeleteRecipientResponse{}, nil
}

// EraseRecipient implements recipientv1.RecipientServiceServer.
func (s *Server) EraseRecipient(ctx context.Context, req *recipientv1.EraseRecipientRequest) (*recipientv1.EraseRecipientResponse, error) {
	t, id, err := scopeRecipient(ctx, req.GetWorkspaceId(), req.GetDomainId(), req.GetRecipientId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	if err := s.svc.Erase(ctx, t, id); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &recipientv1.EraseRecipientResponse{}, nil
}

// ListRecipients implements recipientv1.RecipientServiceServer.
func (s *Server) ListRecipients(ctx context.Context, req *recipientv1.ListRecipientsRequest) (*recipientv1.ListRecipientsResponse, error) {
	t, err := scope(ctx, req.GetWorkspaceId(), req.GetDomainId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	f, err := filterFromProto("filter", req.GetFilter())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	res, err := s.svc.List(ctx, t, recipient.ListRequest{Filter: f, PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken()})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	out := &recipientv1.ListRecipientsResponse{
		Recipients:     make([]*recipientv1.Recipient, 0, len(res.Recipients)),
		NextPageToken:  res.NextPageToken,
		TotalSize:      res.Total,
		TotalSizeExact: res.TotalExact,
	}
	for _, r := range res.Recipients {
		pr, err := toProto(r)
		if err != nil {
			return nil, s.toStatus(ctx, err)
		}
		out.Recipients = append(out.Recipients, pr)
	}
	return out, nil
}

// scopeRecipient resolves the tenant and the recipient id of a request.
func scopeRecipient(ctx context.Context, workspaceID, domainID, recipientID string) (tenancy.Tenant, uuid.UUID, error) {
	t, err := scope(ctx, workspaceID, domainID)
	if err != nil {
		return tenancy.Tenant{}, uuid.Nil, err
	}
	id, err := parseID("recipient_id", recipientID)
	if err != nil {
		return tenancy.Tenant{}, uuid.Nil, err
	}
	return t, id, nil
}

// scopeWorkspace resolves the workspace of a workspace-wide request (field definitions): the
// company from the verified token, the workspace from the request. A token narrowed to
// another workspace is out of scope.
func scopeWorkspace(ctx context.Context, workspaceID string) (fields.Workspace, error) {
	ws, err := parseID("workspace_id", workspaceID)
	if err != nil {
		return fields.Workspace{}, err
	}
	p, ok := tenancy.PrincipalFrom(ctx)
	if !ok || p.CompanyID == uuid.Nil {
		return fields.Workspace{}, tenancy.ErrUnauthenticated
	}
	if p.WorkspaceID != uuid.Nil && p.WorkspaceID != ws {
		return fields.Workspace{}, tenancy.ErrOutOfScope
	}
	return fields.Workspace{CompanyID: p.CompanyID, WorkspaceID: ws}, nil
}

// requireService refuses a call whose principal is not an internal service.
func requireService(ctx context.Context) error {
	p, ok := tenancy.PrincipalFrom(ctx)
	if !ok {
		return tenancy.ErrUnauthenticated
	}
	if p.Kind != tenancy.KindService {
		return errServiceOnly
	}
	return nil
}

func filterFromProto(field string, f *recipientv1.RecipientFilter) (recipient.RawFilter, error) {
	var raw recipient.RawFilter
	if f == nil {
		return raw, nil
	}
	if f.GetStatus() != recipientv1.RecipientStatus_RECIPIENT_STATUS_UNSPECIFIED {
		st, ok := statusFromProto(f.GetStatus())
		if !ok {
			return raw, &recipient.ValidationError{Field: field + ".status", Reason: "must be one of RECIPIENT_STATUS_SUBSCRIBED, RECIPIENT_STATUS_UNSUBSCRIBED, RECIPIENT_STATUS_BOUNCED, RECIPIENT_STATUS_COMPLAINED"}
		}
		raw.Status = st
	}
	raw.EmailPrefix = f.GetEmailPrefix()
	var err error
	if raw.CreatedAfter, err = optionalTime(field+".created_after", f.GetCreatedAfter()); err != nil {
		return raw, err
	}
	if raw.CreatedBefore, err = optionalTime(field+".created_before", f.GetCreatedBefore()); err != nil {
		return raw, err
	}
	raw.Attributes = f.GetAttributes()
	return raw, nil
}

func filterToProto(f recipient.Filter) *recipientv1.RecipientFilter {
	out := &recipientv1.RecipientFilter{Status: statusToProto(f.Status), EmailPrefix: f.EmailPrefix}
	if !f.CreatedAfter.IsZero() {
		out.CreatedAfter = timestamppb.New(f.CreatedAfter)
	}
	if !f.CreatedBefore.IsZero() {
		out.CreatedBefore = timestamppb.New(f.CreatedBefore)
	}
	for _, c := range f.Attributes {
		out.Attributes = append(out.Attributes, fmt.Sprintf("%s%s%v", c.Key, c.Op, c.Value))
	}
	return out
}
