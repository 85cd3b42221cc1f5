package grpcapi

import (
	"context"
	"fmt"

	recipientv1 "github.com/heraldmail/herald/proto/gen/go/herald/recipient/v1"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/heraldmail/herald/services/recipient/internal/recipient"
)

// CreateBulkOperation implements recipientv1.RecipientServiceServer.
func (s *Server) CreateBulkOperation(ctx context.Context, req *recipientv1.CreateBulkOperationRequest) (*recipientv1.CreateBulkOperationResponse, error) {
	t, err := scope(ctx, req.GetWorkspaceId(), req.GetDomainId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	f, err := filterFromProto("filter", req.GetFilter())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	in := recipient.NewBulkOperation{
		Action: bulkActions[req.GetAction()],
		Filter: f,
		Params: recipient.BulkParams{StatusReason: req.GetStatusReason()},
	}
	if req.GetStatus() != recipientv1.RecipientStatus_RECIPIENT_STATUS_UNSPECIFIED {
		st, ok := statusFromProto(req.GetStatus())
		if !ok {
			return nil, s.toStatus(ctx, &recipient.ValidationError{Field: "status", Reason: "must be one of RECIPIENT_STATUS_SUBSCRIBED, RECIPIENT_STATUS_UNSUBSCRIBED, RECIPIENT_STATUS_BOUNCED, RECIPIENT_STATUS_COMPLAINED"})
		}
		in.Params.Status = st
	}
	if req.GetAttributes() != nil {
		in.Params.Attributes = req.GetAttributes().AsMap()
	}
	op, err := s.svc.CreateBulk(ctx, t, in)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	pop, err := bulkToProto(op)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &recipientv1.CreateBulkOperationResponse{Operation: pop}, nil
}

// GetBulkOperation implements recipientv1.RecipientServiceServer.
func (s *Server) GetBulkOperation(ctx context.Context, req *recipientv1.GetBulkOperationRequest) (*recipientv1.GetBulkOperationResponse, error) {
	t, err := scope(ctx, req.GetWorkspaceId(), req.GetDomainId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	id, err := parseID("operation_id", req.GetOperationId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	op, err := s.svc.GetBulk(ctx, t, id)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	pop, err := bulkToProto(op)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &recipientv1.GetBulkOperationResponse{Operation: pop}, nil
}

// RunBulkOperationBatch implements recipientv1.RecipientServiceServer. Internal: the gateway
// does not route it, and a user's token is refused here too.
func (s *Server) RunBulkOperationBatch(ctx context.Context, req *recipientv1.RunBulkOperationBatchRequest) (*recipientv1.RunBulkOperationBatchResponse, error) {
	if err := requireService(ctx); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	t, err := scope(ctx, req.GetWorkspaceId(), req.GetDomainId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	id, err := parseID("operation_id", req.GetOperationId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	op, n, err := s.svc.RunBulkBatch(ctx, t, id, int(req.GetBatchSize()))
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	pop, err := bulkToProto(op)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &recipientv1.RunBulkOperationBatchResponse{Operation: pop, Applied: n}, nil
}

var bulkActions = map[recipientv1.BulkAction]recipient.BulkAction{
	recipientv1.BulkAction_BULK_ACTION_UPDATE_STATUS:     recipient.BulkUpdateStatus,
	recipientv1.BulkAction_BULK_ACTION_UPDATE_ATTRIBUTES: recipient.BulkUpdateAttributes,
	recipientv1.BulkAction_BULK_ACTION_DELETE:            recipient.BulkDelete,
}

var bulkStates = map[recipient.BulkState]recipientv1.BulkOperationState{
	recipient.BulkPending:   recipientv1.BulkOperationState_BULK_OPERATION_STATE_PENDING,
	recipient.BulkRunning:   recipientv1.BulkOperationState_BULK_OPERATION_STATE_RUNNING,
	recipient.BulkSucceeded: recipientv1.BulkOperationState_BULK_OPERATION_STATE_SUCCEEDED,
	recipient.BulkFailed:    recipientv1.BulkOperationState_BULK_OPERATION_STATE_FAILED,
}

func bulkToProto(op recipient.BulkOperation) (*recipientv1.BulkOperation, error) {
	out := &recipientv1.BulkOperation{
		Id:           op.ID.String(),
		WorkspaceId:  op.Tenant.WorkspaceID.String(),
		DomainId:     op.Tenant.DomainID.String(),
		Filter:       filterToProto(op.Filter),
		Status:       statusToProto(op.Params.Status),
		StatusReason: op.Params.StatusReason,
		State:        bulkStates[op.State],
		Matched:      op.Matched,
		Done:         op.Done,
		Percent:      op.Percent(),
		Error:        op.Error,
		CreateTime:   timestamppb.New(op.CreatedAt),
		UpdateTime:   timestamppb.New(op.UpdatedAt),
	}
	for p, a := range bulkActions {
		if a == op.Action {
			out.Action = p
		}
	}
	if op.Params.Attributes != nil {
		attrs, err := structpb.NewStruct(op.Params.Attributes)
		if err != nil {
			return nil, fmt.Errorf("encode attributes: %w", err)
		}
		out.Attributes = attrs
	}
	if !op.FinishedAt.IsZero() {
		out.FinishTime = timestamppb.New(op.FinishedAt)
	}
	return out, nil
}
