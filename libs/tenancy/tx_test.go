package tenancy_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/internal/testenv"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

func setting(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, name string) string {
	var v *string
	_ = q.QueryRow(ctx, `SELECT current_setting($1, true)`, name).Scan(&v)
	if v == nil {
		return ""
	}
	return *v
}

func TestInTxScopesTheTransactionOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.Pool(t, 1) // one connection: anything that leaked would be seen below
	tn := tenancy.Tenant{CompanyID: uuid.New(), WorkspaceID: uuid.New(), DomainID: uuid.New()}
	err := tenancy.InTx(ctx, pool, tn, func(tx pgx.Tx) error {
		require.Equal(t, tn.CompanyID.String(), setting(ctx, tx, "app.company_id"))
		require.Equal(t, tn.WorkspaceID.String(), setting(ctx, tx, "app.workspace_id"))
		require.Equal(t, tn.DomainID.String(), setting(ctx, tx, "app.domain_id"))
		return nil
	})
	require.NoError(t, err)
	require.Empty(t, setting(ctx, pool, "app.company_id"), "the tenant does not outlive the transaction")

	boom := errors.New("boom")
	err = tenancy.InTx(ctx, pool, tn, func(pgx.Tx) error { return boom })
	require.ErrorIs(t, err, boom)
	require.Empty(t, setting(ctx, pool, "app.company_id"))

	err = tenancy.InTx(ctx, pool, tenancy.Tenant{CompanyID: tn.CompanyID}, func(pgx.Tx) error { return nil })
	require.ErrorIs(t, err, tenancy.ErrInvalidTenant)
}

func TestInTxUnderConcurrencyNeverMixesTenants(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.Pool(t, 3)
	tenants := []tenancy.Tenant{
		{CompanyID: uuid.New(), WorkspaceID: uuid.New(), DomainID: uuid.New()},
		{CompanyID: uuid.New(), WorkspaceID: uuid.New(), DomainID: uuid.New()},
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				tn := tenants[(g+i)%2]
				err := tenancy.InTx(ctx, pool, tn, func(tx pgx.Tx) error {
					if got := setting(ctx, tx, "app.company_id"); got != tn.CompanyID.String() {
						return errors.New("saw another tenant's company id")
					}
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}
