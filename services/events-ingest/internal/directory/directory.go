// Package directory asks the services that own campaigns and recipients whether one exists in
// a tenant's domain. events-ingest stores events by the ids its callers give and keeps no
// campaigns or recipients of its own, so before it answers about one (its statistics, its
// timeline) it asks the owner, with the caller's own token (libs/rpc forwards it): an id of
// another tenant is then not found, exactly like an id that does not exist.
package directory

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/tenancy"
	campaignv1 "github.com/heraldmail/herald/proto/gen/go/herald/campaign/v1"
	recipientv1 "github.com/heraldmail/herald/proto/gen/go/herald/recipient/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrNotFound is returned when the object does not exist in the tenant's domain.
var ErrNotFound = errors.New("not found")

// ErrUnavailable wraps a failure to get an answer from the owning service.
var ErrUnavailable = errors.New("owning service unavailable")

// Directory asks the campaign and recipient services.
type Directory struct {
	campaigns  campaignv1.CampaignServiceClient
	recipients recipientv1.RecipientServiceClient
}

// New returns a directory on the two services' clients.
func New(campaigns campaignv1.CampaignServiceClient, recipients recipientv1.RecipientServiceClient) *Directory {
	return &Directory{campaigns: campaigns, recipients: recipients}
}

// Campaign returns nil when the campaign exists in t's domain, ErrNotFound when it does not.
func (d *Directory) Campaign(ctx context.Context, t tenancy.Tenant, id uuid.UUID) error {
	_, err := d.campaigns.GetCampaign(ctx, &campaignv1.GetCampaignRequest{
		WorkspaceId: t.WorkspaceID.String(), DomainId: t.DomainID.String(), CampaignId: id.String(),
	})
	return answer(ctx, "campaign", err)
}

// Recipient returns nil when the recipient exists in t's domain, ErrNotFound when it does not
// (an erased recipient does not).
func (d *Directory) Recipient(ctx context.Context, t tenancy.Tenant, id uuid.UUID) error {
	_, err := d.recipients.GetRecipient(ctx, &recipientv1.GetRecipientRequest{
		WorkspaceId: t.WorkspaceID.String(), DomainId: t.DomainID.String(), RecipientId: id.String(),
	})
	return answer(ctx, "recipient", err)
}

// answer turns the owner's answer err to a look-up made with ctx into the directory's. When
// the caller gave up (ctx cancelled or past its deadline) the error wraps ctx's own: a gRPC
// status does not wrap the context error it stands for, and the caller giving up is not the
// owner's failure.
func answer(ctx context.Context, what string, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("look up the %s: %w", what, ctx.Err())
	}
	if status.Code(err) == codes.NotFound {
		return fmt.Errorf("%s %w", what, ErrNotFound)
	}
	return fmt.Errorf("look up the %s: %w: %w", what, ErrUnavailable, err)
}
