package email_test

import (
	"strings"
	"testing"

	"github.com/heraldmail/herald/libs/email"
	"github.com/stretchr/testify/require"
)

func TestNormalize(t *testing.T) {
	t.Parallel()
	got, err := email.Normalize("  Ada.Lovelace@Example.COM ")
	require.NoError(t, err)
	require.Equal(t, "ada.lovelace@example.com", got)

	for _, bad := range []string{
		"", "   ", "not-an-email", "Ada <ada@example.com>", "<ada@example.com>",
		"a@example.com, b@example.com", "ada@localhost", "ada@.example.com", "ada@example.com.",
		strings.Repeat("a", 250) + "@example.com",
	} {
		_, err := email.Normalize(bad)
		var ierr *email.InvalidError
		require.ErrorAs(t, err, &ierr, "%q", bad)
		require.NotEmpty(t, ierr.Reason)
	}
}
