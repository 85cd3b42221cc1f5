package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/heraldmail/herald/services/recipient/internal/recipient"
)

// The domain's counters stay equal to its rows while recipients are created, changed and
// deleted concurrently, including while the first reader writes the baseline.
func TestStore_domainCounts(t *testing.T) {
	t.Parallel()
	b := setupBulk(t)
	ctx := context.Background()
	seed(t, b.admin, b.tenant, 200)

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 6 {
		wg.Go(func() {
			for i := range 15 {
				r, err := b.store.Create(ctx, b.tenant, recipient.NewRecipient{Email: fmt.Sprintf("c%d-%d@example.com", w, i), Attributes: map[string]any{}})
				if err != nil {
					errs <- err
					return
				}
				switch i % 3 {
				case 0:
					_, err = b.store.Update(ctx, b.tenant, r.ID, func(cur recipient.Recipient) (recipient.Recipient, bool, error) {
						cur.Status = recipient.StatusBounced
						return cur, true, nil
					})
				case 1:
					err = b.store.Delete(ctx, b.tenant, r.ID)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for range 4 {
		wg.Go(func() {
			if _, err := b.store.List(ctx, b.tenant, recipient.Query{Limit: 1}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	var total, bounced int64
	require.NoError(t, b.admin.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE status = 'bounced')
		FROM recipient.recipients WHERE domain_id = $1`, b.tenant.DomainID).Scan(&total, &bounced))
	require.Equal(t, int64(200+6*10), total)
	p, err := b.store.List(ctx, b.tenant, recipient.Query{Limit: 1})
	require.NoError(t, err)
	require.Equal(t, total, p.Total)
	require.True(t, p.TotalExact)
	p, err = b.store.List(ctx, b.tenant, recipient.Query{Limit: 1, Filter: recipient.Filter{Status: recipient.StatusBounced}})
	require.NoError(t, err)
	require.Equal(t, bounced, p.Total)

	// Another domain's counters are its own.
	other := b.tenant
	other.DomainID = uuid.New()
	p, err = b.store.List(ctx, other, recipient.Query{Limit: 1})
	require.NoError(t, err)
	require.Zero(t, p.Total)
}
