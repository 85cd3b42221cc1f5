package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldmail/herald/services/recipient/internal/recipient"
)

// A create of an address racing its erasure is refused either way: as a duplicate while the
// recipient exists, as suppressed once it is erased; it never brings the address back.
func TestStore_Erase_raceWithCreate(t *testing.T) {
	t.Parallel()
	b := setupBulk(t)
	ctx := context.Background()
	hasher, err := recipient.NewEmailHasher(strings.Repeat("k", recipient.MinHashKeyLength))
	require.NoError(t, err)

	for i := range 20 {
		email := fmt.Sprintf("race%d@example.com", i)
		r, err := b.store.Create(ctx, b.tenant, recipient.NewRecipient{Email: email, Attributes: map[string]any{}, Suppressions: hasher.Candidates(email)})
		require.NoError(t, err)
		var wg sync.WaitGroup
		var eraseErr, createErr error
		wg.Go(func() { eraseErr = b.store.Erase(ctx, b.tenant, r.ID, hasher.Hash) })
		wg.Go(func() {
			_, createErr = b.store.Create(ctx, b.tenant, recipient.NewRecipient{Email: email, Attributes: map[string]any{}, Suppressions: hasher.Candidates(email)})
		})
		wg.Wait()
		require.NoError(t, eraseErr)
		require.Error(t, createErr)
		require.True(t, errors.Is(createErr, recipient.ErrAlreadyExists) || errors.Is(createErr, recipient.ErrSuppressed), "%v", createErr)

		var n int
		require.NoError(t, b.admin.QueryRow(ctx, `SELECT count(*) FROM recipient.recipients WHERE email = $1`, email).Scan(&n))
		require.Zero(t, n)
	}
}
