package e2e

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// TestSessionLifecycle signs up, logs in, reads /v1/me, rotates the refresh token and shows
// that a reused refresh token ends the session.
func TestSessionLifecycle(t *testing.T) {
	t.Parallel()
	s := shared(t)
	a := newAPI(t, s)
	tn := newTenant(t, s)

	var login struct {
		Tokens tokens `json:"tokens"`
	}
	code, raw := a.do(http.MethodPost, "/v1/auth/login", "", map[string]any{"email": tn.email, "password": e2ePassword()}, &login)
	require.Equal(t, http.StatusOK, code, "log in: %s", raw)

	var me struct {
		User    map[string]any `json:"user"`
		Company map[string]any `json:"company"`
	}
	code, raw = a.do(http.MethodGet, "/v1/me", login.Tokens.AccessToken, nil, &me)
	require.Equal(t, http.StatusOK, code, "me: %s", raw)
	require.Equal(t, tn.email, me.User["email"])
	require.Equal(t, tn.company.String(), me.Company["id"])

	var next struct {
		Tokens tokens `json:"tokens"`
	}
	code, raw = a.do(http.MethodPost, "/v1/auth/refresh", "", map[string]any{"refresh_token": login.Tokens.RefreshToken}, &next)
	require.Equal(t, http.StatusOK, code, "refresh: %s", raw)

	code, raw = a.do(http.MethodPost, "/v1/auth/refresh", "", map[string]any{"refresh_token": login.Tokens.RefreshToken}, nil)
	require.Equal(t, http.StatusUnauthorized, code, "reused refresh token: %s", raw)
	requireError(t, raw, "unauthenticated")
	code, raw = a.do(http.MethodPost, "/v1/auth/refresh", "", map[string]any{"refresh_token": next.Tokens.RefreshToken}, nil)
	require.Equal(t, http.StatusUnauthorized, code, "the family is revoked: %s", raw)
	requireError(t, raw, "unauthenticated")
}

// TestRolesReachTheServices drives the real services with a member's token and API keys: the
// gateway authorizes each route and the services accept the downscoped token it forwards.
func TestRolesReachTheServices(t *testing.T) {
	t.Parallel()
	s := shared(t)
	a := newAPI(t, s)
	tn := newTenant(t, s)
	r := createRecipient(t, a, tn)

	key := func(role string) string {
		var res struct {
			Secret string `json:"secret"`
		}
		code, raw := a.do(http.MethodPost, "/v1/workspaces/"+tn.workspace.String()+"/api-keys", tn.token,
			map[string]any{"name": role, "role": role}, &res)
		require.Equal(t, http.StatusOK, code, "create api key: %s", raw)
		watch.addAPIKey(role, res.Secret, a.last)
		return res.Secret
	}
	viewer, editor := key("ROLE_VIEWER"), key("ROLE_EDITOR")

	var got recipientResponse
	code, raw := a.do(http.MethodGet, tn.path("/recipients/"+r.ID), viewer, nil, &got)
	require.Equal(t, http.StatusOK, code, "viewer reads: %s", raw)
	require.Equal(t, r.ID, got.Recipient.ID)

	code, raw = a.do(http.MethodPost, tn.path("/recipients"), viewer, map[string]any{"email": "v@example.com"}, nil)
	require.Equal(t, http.StatusForbidden, code, "viewer writes: %s", raw)
	requireError(t, raw, "permission_denied")

	code, raw = a.do(http.MethodPost, tn.path("/recipients"), editor, map[string]any{"email": "e-" + uuid.NewString()[:8] + "@example.com"}, nil)
	require.Equal(t, http.StatusOK, code, "editor writes: %s", raw)

	// An invited member acts with their role too.
	var inv struct {
		InvitationToken string `json:"invitation_token"`
	}
	email := "member-" + uuid.NewString()[:8] + "@example.com"
	code, raw = a.do(http.MethodPost, "/v1/workspaces/"+tn.workspace.String()+"/members", tn.token,
		map[string]any{"email": email, "role": "ROLE_VIEWER"}, &inv)
	require.Equal(t, http.StatusOK, code, "invite: %s", raw)
	var acc struct {
		Tokens tokens `json:"tokens"`
	}
	code, raw = a.do(http.MethodPost, "/v1/auth/invitations:accept", "",
		map[string]any{"invitation_token": inv.InvitationToken, "password": e2ePassword()}, &acc)
	require.Equal(t, http.StatusOK, code, "accept: %s", raw)
	code, raw = a.do(http.MethodGet, tn.path("/campaigns/"+uuid.NewString()), acc.Tokens.AccessToken, nil, nil)
	require.Equal(t, http.StatusNotFound, code, "the member reaches the campaign service: %s", raw)
	requireError(t, raw, "not_found")

	// A domain of another company is not found, for a key as for a user.
	other := newTenant(t, s)
	code, raw = a.do(http.MethodGet, other.path("/recipients/"+r.ID), editor, nil, nil)
	require.Equal(t, http.StatusNotFound, code, "%s", raw)
	requireError(t, raw, "not_found")

	// Plan limits answer with a code a client can act on.
	for range 2 {
		createDomain(t, a, tn)
	}
	code, raw = a.do(http.MethodPost, "/v1/workspaces/"+tn.workspace.String()+"/domains", tn.token,
		map[string]any{"name": "over-" + uuid.NewString()[:8] + ".example.com"}, nil)
	require.Equal(t, http.StatusBadRequest, code, "%s", raw)
	e := requireError(t, raw, "plan_limit_exceeded")
	var details []map[string]any
	b, err := json.Marshal(e.Details)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &details))
	require.Equal(t, []map[string]any{{"limit": "domains", "max": float64(3)}}, details)
}
