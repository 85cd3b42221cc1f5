package recipient_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/heraldmail/herald/services/recipient/internal/fields"
	"github.com/heraldmail/herald/services/recipient/internal/recipient"
)

func TestService_CreateBulk(t *testing.T) {
	t.Parallel()
	svc, b := setup(t)
	ctx := context.Background()
	define(t, b, b.tenant,
		fields.NewDefinition{Key: "plan", Type: fields.TypeEnum, Options: []string{"free", "pro"}},
		fields.NewDefinition{Key: "score", Type: fields.TypeNumber})

	op, err := svc.CreateBulk(ctx, b.tenant, recipient.NewBulkOperation{
		Action: recipient.BulkUpdateAttributes,
		Filter: recipient.RawFilter{Attributes: []string{"score>=10"}},
		Params: recipient.BulkParams{Attributes: map[string]any{"plan": "pro", "score": nil}},
	})
	require.NoError(t, err)
	require.Equal(t, recipient.BulkPending, op.State)
	require.Equal(t, []recipient.Condition{{Key: "score", Op: recipient.OpGe, Value: 10.0}}, op.Filter.Attributes)
	require.Equal(t, map[string]any{"plan": "pro", "score": nil}, op.Params.Attributes)
	got, err := svc.GetBulk(ctx, b.tenant, op.ID)
	require.NoError(t, err)
	require.Equal(t, op, got)

	for name, in := range map[string]recipient.NewBulkOperation{
		"no action":            {},
		"status missing":       {Action: recipient.BulkUpdateStatus},
		"attributes missing":   {Action: recipient.BulkUpdateAttributes},
		"unknown attribute":    {Action: recipient.BulkUpdateAttributes, Params: recipient.BulkParams{Attributes: map[string]any{"nope": 1.0}}},
		"wrong type":           {Action: recipient.BulkUpdateAttributes, Params: recipient.BulkParams{Attributes: map[string]any{"score": "x"}}},
		"status on delete":     {Action: recipient.BulkDelete, Params: recipient.BulkParams{Status: recipient.StatusBounced}},
		"attributes on status": {Action: recipient.BulkUpdateStatus, Params: recipient.BulkParams{Status: recipient.StatusBounced, Attributes: map[string]any{"plan": "pro"}}},
		"bad filter":           {Action: recipient.BulkDelete, Filter: recipient.RawFilter{Attributes: []string{"plan>free"}}},
	} {
		_, err := svc.CreateBulk(ctx, b.tenant, in)
		require.Error(t, err, name)
		require.True(t, isInvalid(err), "%s: %v", name, err)
	}

	_, err = svc.GetBulk(ctx, b.tenant, uuid.New())
	require.ErrorIs(t, err, recipient.ErrOperationNotFound)
	other := b.tenant
	other.WorkspaceID = uuid.New()
	_, err = svc.GetBulk(ctx, other, op.ID)
	require.ErrorIs(t, err, recipient.ErrOperationNotFound)

	_, _, err = svc.RunBulkBatch(ctx, b.tenant, op.ID, recipient.MaxBatchSize+1)
	require.ErrorIs(t, err, recipient.ErrInvalid)
}

func isInvalid(err error) bool {
	return errors.Is(err, recipient.ErrInvalid) || errors.Is(err, fields.ErrInvalidAttributes)
}
