package directory_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/tenancy"
	campaignv1 "github.com/heraldmail/herald/proto/gen/go/herald/campaign/v1"
	recipientv1 "github.com/heraldmail/herald/proto/gen/go/herald/recipient/v1"
	"github.com/heraldmail/herald/services/events-ingest/internal/directory"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// owners stand in for the campaign and recipient services: they answer every lookup with
// err, and record the request.
type owners struct {
	campaignv1.CampaignServiceClient
	recipientv1.RecipientServiceClient
	err          error
	campaignReq  *campaignv1.GetCampaignRequest
	recipientReq *recipientv1.GetRecipientRequest
}

func (o *owners) GetCampaign(_ context.Context, in *campaignv1.GetCampaignRequest, _ ...grpc.CallOption) (*campaignv1.GetCampaignResponse, error) {
	o.campaignReq = in
	return &campaignv1.GetCampaignResponse{}, o.err
}

func (o *owners) GetRecipient(_ context.Context, in *recipientv1.GetRecipientRequest, _ ...grpc.CallOption) (*recipientv1.GetRecipientResponse, error) {
	o.recipientReq = in
	return &recipientv1.GetRecipientResponse{}, o.err
}

func TestLookups(t *testing.T) {
	t.Parallel()
	tn := tenancy.Tenant{CompanyID: uuid.New(), WorkspaceID: uuid.New(), DomainID: uuid.New()}
	id := uuid.New()
	o := &owners{}
	d := directory.New(o, o)
	ctx := context.Background()

	require.NoError(t, d.Campaign(ctx, tn, id))
	require.Equal(t, []string{tn.WorkspaceID.String(), tn.DomainID.String(), id.String()},
		[]string{o.campaignReq.GetWorkspaceId(), o.campaignReq.GetDomainId(), o.campaignReq.GetCampaignId()})
	require.NoError(t, d.Recipient(ctx, tn, id))
	require.Equal(t, id.String(), o.recipientReq.GetRecipientId())

	o.err = status.Error(codes.NotFound, "campaign not found")
	err := d.Campaign(ctx, tn, id)
	require.ErrorIs(t, err, directory.ErrNotFound)
	require.Equal(t, "campaign not found", err.Error())
	err = d.Recipient(ctx, tn, id)
	require.ErrorIs(t, err, directory.ErrNotFound)
	require.Equal(t, "recipient not found", err.Error())

	for _, c := range []codes.Code{codes.Unavailable, codes.Internal, codes.PermissionDenied} {
		o.err = status.Error(c, "down")
		err = d.Campaign(ctx, tn, id)
		require.ErrorIs(t, err, directory.ErrUnavailable, c.String())
		require.False(t, errors.Is(err, directory.ErrNotFound))
	}
	// The caller giving up is not the owner's failure: the error is the context's.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	o.err = status.Error(codes.Canceled, "context canceled")
	err = d.Recipient(cancelled, tn, id)
	require.ErrorIs(t, err, context.Canceled)
	require.False(t, errors.Is(err, directory.ErrUnavailable))
	expired, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel()
	o.err = status.Error(codes.DeadlineExceeded, "context deadline exceeded")
	err = d.Campaign(expired, tn, id)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.False(t, errors.Is(err, directory.ErrUnavailable))
}
