package app

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// testPassword is the password of every account the tests make.
const testPassword = "correct horse battery staple"

// tokens is the JSON of identityv1.Tokens.
type tokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
}

// tenant is a company made through the API: its owner's tokens, its first workspace and a
// domain in it.
type tenant struct {
	email     string
	userID    string
	companyID string
	workspace string
	domain    string
	tokens    tokens
}

// bearer is the owner's Authorization header.
func (tn tenant) bearer() string { return tn.tokens.AccessToken }

// call sends a JSON request with a bearer credential (none when empty) and decodes a JSON
// answer into out when out is not nil and the status is 200.
func (g *gateway) call(t *testing.T, method, path, credential string, body, out any) response {
	t.Helper()
	var rd *bytes.Reader
	header := map[string]string{}
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
		header["Content-Type"] = "application/json"
	}
	if credential != "" {
		header["Authorization"] = "Bearer " + credential
	}
	var r response
	if rd != nil {
		r = g.do(t, method, g.public+path, rd, header)
	} else {
		r = g.do(t, method, g.public+path, nil, header)
	}
	if out != nil && r.status == http.StatusOK {
		require.NoError(t, json.Unmarshal(r.body, out), "answer of %s %s: %s", method, path, r.body)
	}
	return r
}

// uniqueEmail returns an address no other test uses.
func uniqueEmail(name string) string {
	return name + "-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12] + "@example.com"
}

// signUp makes a company through the API, with a domain in its first workspace.
func signUp(t *testing.T, g *gateway) tenant {
	t.Helper()
	email := uniqueEmail("owner")
	var res struct {
		Tokens    tokens            `json:"tokens"`
		User      map[string]any    `json:"user"`
		Company   map[string]any    `json:"company"`
		Workspace map[string]string `json:"workspace"`
	}
	r := g.call(t, http.MethodPost, "/v1/auth/signup", "", map[string]any{
		"company_name": "Acme", "email": email, "password": testPassword, "name": "Ada",
	}, &res)
	require.Equal(t, http.StatusOK, r.status, "sign up: %s", r.body)
	tn := tenant{
		email: email, userID: res.User["id"].(string), companyID: res.Company["id"].(string),
		workspace: res.Workspace["id"], tokens: res.Tokens,
	}
	tn.domain = createDomain(t, g, tn.bearer(), tn.workspace)
	return tn
}

// createDomain adds a domain with a unique name to the workspace.
func createDomain(t *testing.T, g *gateway, credential, workspace string) string {
	t.Helper()
	var res struct {
		Domain map[string]string `json:"domain"`
	}
	r := g.call(t, http.MethodPost, "/v1/workspaces/"+workspace+"/domains", credential,
		map[string]any{"name": "mail-" + uuid.NewString()[:8] + ".example.com"}, &res)
	require.Equal(t, http.StatusOK, r.status, "create domain: %s", r.body)
	return res.Domain["id"]
}

// logIn logs in and returns the tokens.
func logIn(t *testing.T, g *gateway, email string) tokens {
	t.Helper()
	var res struct {
		Tokens tokens `json:"tokens"`
	}
	r := g.call(t, http.MethodPost, "/v1/auth/login", "", map[string]any{"email": email, "password": testPassword}, &res)
	require.Equal(t, http.StatusOK, r.status, "log in: %s", r.body)
	return res.Tokens
}

// member is a user invited into a workspace who accepted the invitation.
type member struct {
	userID string
	email  string
	tokens tokens
}

// addMember invites a user with role ("ROLE_ADMIN", ...) into the workspace and accepts the
// invitation for them.
func addMember(t *testing.T, g *gateway, credential, workspace, role string) member {
	t.Helper()
	email := uniqueEmail(strings.ToLower(strings.TrimPrefix(role, "ROLE_")))
	var inv struct {
		Member struct {
			User    map[string]string `json:"user"`
			Pending bool              `json:"pending"`
		} `json:"member"`
		InvitationToken string `json:"invitation_token"`
	}
	r := g.call(t, http.MethodPost, "/v1/workspaces/"+workspace+"/members", credential,
		map[string]any{"email": email, "role": role}, &inv)
	require.Equal(t, http.StatusOK, r.status, "invite: %s", r.body)
	require.True(t, inv.Member.Pending)
	require.NotEmpty(t, inv.InvitationToken)
	var acc struct {
		Tokens tokens `json:"tokens"`
	}
	r = g.call(t, http.MethodPost, "/v1/auth/invitations:accept", "",
		map[string]any{"invitation_token": inv.InvitationToken, "password": testPassword, "name": "Member"}, &acc)
	require.Equal(t, http.StatusOK, r.status, "accept: %s", r.body)
	return member{userID: inv.Member.User["id"], email: email, tokens: acc.Tokens}
}
