package recipient_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldmail/herald/services/recipient/internal/recipient"
	"github.com/heraldmail/herald/services/recipient/internal/store"
)

func TestEmailHasher(t *testing.T) {
	t.Parallel()
	oldKey, newKey := strings.Repeat("o", 32), strings.Repeat("n", 32)
	old, err := recipient.NewEmailHasher(oldKey)
	require.NoError(t, err)
	rotated, err := recipient.NewEmailHasher(newKey, oldKey)
	require.NoError(t, err)

	oldID, oldSum := old.Hash("ada@example.com")
	newID, newSum := rotated.Hash("ada@example.com")
	require.NotEqual(t, oldID, newID)
	require.NotEqual(t, oldSum, newSum)
	require.Len(t, newSum, 32)
	require.Equal(t, [][]byte{newSum, oldSum}, rotated.Candidates("ada@example.com"))

	_, err = recipient.NewEmailHasher("short")
	require.Error(t, err)
	_, err = recipient.NewEmailHasher(newKey, "short")
	require.Error(t, err)
}

// An erasure made before a key rotation still refuses the address after it.
func TestService_Erase_keyRotation(t *testing.T) {
	t.Parallel()
	svc, b := setup(t)
	ctx := context.Background()
	r := createRecipient(t, svc, b.tenant, recipientOpts{Email: "rotate@example.com"})
	require.NoError(t, svc.Erase(ctx, b.tenant, r.ID))
	_, err := svc.Get(ctx, b.tenant, r.ID)
	require.ErrorIs(t, err, recipient.ErrNotFound)
	require.ErrorIs(t, svc.Erase(ctx, b.tenant, r.ID), recipient.ErrNotFound)

	_, err = svc.Create(ctx, b.tenant, recipient.NewRecipient{Email: "ROTATE@example.com"})
	require.ErrorIs(t, err, recipient.ErrSuppressed)

	rotated, err := recipient.NewEmailHasher(strings.Repeat("n", 32), testHashKey)
	require.NoError(t, err)
	after := recipient.NewService(b.store, store.NewFields(b.pool), rotated, func() time.Time { return b.now })
	_, err = after.Create(ctx, b.tenant, recipient.NewRecipient{Email: "rotate@example.com"})
	require.ErrorIs(t, err, recipient.ErrSuppressed)

	// Without the old key the erasure is no longer recognised: the key must be kept.
	forgot, err := recipient.NewEmailHasher(strings.Repeat("n", 32))
	require.NoError(t, err)
	_, err = recipient.NewService(b.store, store.NewFields(b.pool), forgot, func() time.Time { return b.now }).
		Create(ctx, b.tenant, recipient.NewRecipient{Email: "rotate@example.com"})
	require.NoError(t, err)
}
