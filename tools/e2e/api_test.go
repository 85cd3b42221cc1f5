package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/heraldmail/herald/libs/tenancy"
)

// tenant is a company signed up through the API, with its first workspace, a domain in it,
// and the owner's access token.
type tenant struct {
	company, workspace, domain uuid.UUID
	email                      string
	token                      string
	refresh                    string
}

// e2ePassword is the password of every account the tests sign up: a sentinel of the run,
// which the hygiene check looks for everywhere.
func e2ePassword() string { return watch.userPassword }

// tokens is the JSON of the tokens a login returns.
type tokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

// newTenant signs a company up through the gateway and adds a domain to its first workspace,
// as a client would.
func newTenant(t *testing.T, s *system) tenant {
	t.Helper()
	a := newAPI(t, s)
	email := "owner-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:16] + "@example.com"
	var res struct {
		Tokens    tokens            `json:"tokens"`
		Company   map[string]any    `json:"company"`
		Workspace map[string]string `json:"workspace"`
	}
	code, raw := a.do(http.MethodPost, "/v1/auth/signup", "", map[string]any{
		"company_name": "Acme", "email": email, "password": e2ePassword(), "name": "Ada",
	}, nil)
	require.Equal(t, http.StatusOK, code, "sign up: %s", raw)
	require.NoError(t, json.Unmarshal(raw, &res))
	tn := tenant{
		company:   uuid.MustParse(res.Company["id"].(string)),
		workspace: uuid.MustParse(res.Workspace["id"]),
		email:     email,
		token:     res.Tokens.AccessToken,
		refresh:   res.Tokens.RefreshToken,
	}
	tn.domain = createDomain(t, a, tn)
	return tn
}

// createDomain adds a domain with a unique name to the tenant's workspace.
func createDomain(t *testing.T, a *api, tn tenant) uuid.UUID {
	t.Helper()
	var res struct {
		Domain map[string]string `json:"domain"`
	}
	code, raw := a.do(http.MethodPost, "/v1/workspaces/"+tn.workspace.String()+"/domains", tn.token,
		map[string]any{"name": "mail-" + uuid.NewString()[:8] + ".example.com"}, nil)
	require.Equal(t, http.StatusOK, code, "create domain: %s", raw)
	require.NoError(t, json.Unmarshal(raw, &res))
	return uuid.MustParse(res.Domain["id"])
}

// path is the REST path of the tenant's domain followed by rest.
func (tn tenant) path(rest string) string {
	return "/v1/workspaces/" + tn.workspace.String() + "/domains/" + tn.domain.String() + rest
}

// api calls the gateway's REST API as a client. Every answer is recorded for the hygiene
// check.
type api struct {
	t    *testing.T
	base string
	http *http.Client
	// last is the id of the last answer recorded (see hygiene.addAPIKey).
	last int
}

// newAPI returns a client of the shared system's gateway.
func newAPI(t *testing.T, s *system) *api {
	t.Helper()
	c := newRecordingClient(30 * time.Second)
	t.Cleanup(c.CloseIdleConnections)
	return &api{t: t, base: s.gateway, http: c}
}

// do sends a request with token (none when empty) and a JSON body (none when nil), and
// decodes a JSON answer into out when out is not nil. It returns the status and raw body.
func (a *api) do(method, path, token string, body, out any) (int, []byte) {
	a.t.Helper()
	code, _, raw := a.request(method, path, token, body)
	if out != nil {
		require.NoError(a.t, json.Unmarshal(raw, out), "answer of %s %s: %s", method, path, raw)
	}
	return code, raw
}

// request sends a request with token (none when empty) and a JSON body (none when nil) and
// returns the status, headers and body of the answer.
func (a *api) request(method, path, token string, body any) (int, http.Header, []byte) {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(a.t, err)
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctx = context.WithValue(ctx, responseIDKey{}, &a.last)
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	require.NoError(a.t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := a.http.Do(req)
	require.NoError(a.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(a.t, err)
	return resp.StatusCode, resp.Header, raw
}

// restError is the gateway's error shape.
type restError struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Details   []any  `json:"details"`
	RequestID string `json:"request_id"`
}

// requireError checks that raw is the error shape with code, and that it gives nothing of
// the server's insides away.
func requireError(t *testing.T, raw []byte, code string) restError {
	t.Helper()
	var fields map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(raw, &fields), "error body: %s", raw)
	require.ElementsMatch(t, []string{"code", "message", "details", "request_id"}, keys(fields), "error body: %s", raw)
	var e restError
	require.NoError(t, json.Unmarshal(raw, &e))
	require.Equal(t, code, e.Code, "error body: %s", raw)
	require.NotEmpty(t, e.Message)
	require.NotNil(t, e.Details, "details is always a list")
	require.NotEmpty(t, e.RequestID)
	lower := strings.ToLower(e.Message)
	for _, leak := range []string{"sqlstate", "duplicate key", "constraint", "pgx", "goroutine", "panic", "rpc error"} {
		require.NotContains(t, lower, leak, "the message gives internals away: %s", e.Message)
	}
	return e
}

func keys(m map[string]json.RawMessage) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// recipient is the JSON of a recipient (snake_case field names).
type recipient struct {
	ID           string         `json:"id"`
	WorkspaceID  string         `json:"workspace_id"`
	DomainID     string         `json:"domain_id"`
	Email        string         `json:"email"`
	Status       string         `json:"status"`
	StatusReason string         `json:"status_reason"`
	Attributes   map[string]any `json:"attributes"`
	CreateTime   string         `json:"create_time"`
}

type recipientResponse struct {
	Recipient recipient `json:"recipient"`
}

// createRecipient creates a recipient with a unique address and returns it; its attribute is
// a custom field of the workspace, defined on first use.
func createRecipient(t *testing.T, a *api, tn tenant) recipient {
	t.Helper()
	code, raw := a.do(http.MethodPost, "/v1/workspaces/"+tn.workspace.String()+"/recipient-fields", tn.token,
		map[string]any{"key": "plan", "type": "FIELD_TYPE_TEXT"}, nil)
	require.Contains(t, []int{http.StatusOK, http.StatusConflict}, code, "define field: %s", raw)
	email := "ada+" + uuid.NewString()[:8] + "@example.com"
	var got recipientResponse
	code, raw = a.do(http.MethodPost, tn.path("/recipients"), tn.token,
		map[string]any{"email": email, "attributes": map[string]any{"plan": "pro"}}, nil)
	require.Equal(t, http.StatusOK, code, "create recipient: %s", raw)
	require.NoError(t, json.Unmarshal(raw, &got))
	require.Equal(t, email, got.Recipient.Email)
	return got.Recipient
}

func TestRecipientCreateAndGet(t *testing.T) {
	t.Parallel()
	s := shared(t)
	a := newAPI(t, s)
	tn := newTenant(t, s)

	created := createRecipient(t, a, tn)
	require.NotEmpty(t, created.ID)
	require.Equal(t, tn.workspace.String(), created.WorkspaceID)
	require.Equal(t, tn.domain.String(), created.DomainID)
	require.Equal(t, "RECIPIENT_STATUS_SUBSCRIBED", created.Status)
	require.Equal(t, map[string]any{"plan": "pro"}, created.Attributes)
	require.NotEmpty(t, created.CreateTime)

	var got recipientResponse
	code, raw := a.do(http.MethodGet, tn.path("/recipients/"+created.ID), tn.token, nil, &got)
	require.Equal(t, http.StatusOK, code, "get recipient: %s", raw)
	require.Equal(t, created, got.Recipient)
}

func TestRecipientDuplicateEmailConflicts(t *testing.T) {
	t.Parallel()
	s := shared(t)
	a := newAPI(t, s)
	tn := newTenant(t, s)

	first := createRecipient(t, a, tn)
	code, raw := a.do(http.MethodPost, tn.path("/recipients"), tn.token, map[string]any{"email": first.Email}, nil)
	require.Equal(t, http.StatusConflict, code, "duplicate email: %s", raw)
	requireError(t, raw, "already_exists")

	// The same address in another domain is another recipient.
	other := tn
	other.domain = createDomain(t, a, tn)
	code, raw = a.do(http.MethodPost, other.path("/recipients"), other.token, map[string]any{"email": first.Email}, nil)
	require.Equal(t, http.StatusOK, code, "same email in another domain: %s", raw)
}

func TestRecipientOfAnotherTenantIsNotFound(t *testing.T) {
	t.Parallel()
	s := shared(t)
	a := newAPI(t, s)
	owner := newTenant(t, s)
	intruder := newTenant(t, s)
	r := createRecipient(t, a, owner)

	// Tenant B's token on tenant A's route and id: B's company does not own it.
	code, raw := a.do(http.MethodGet, owner.path("/recipients/"+r.ID), intruder.token, nil, nil)
	require.Equal(t, http.StatusNotFound, code, "cross-tenant get: %s", raw)
	requireError(t, raw, "not_found")

	// Tenant B's own route with A's recipient id.
	code, raw = a.do(http.MethodGet, intruder.path("/recipients/"+r.ID), intruder.token, nil, nil)
	require.Equal(t, http.StatusNotFound, code, "cross-tenant get: %s", raw)
	requireError(t, raw, "not_found")

	// The answer is the same as for an id that does not exist at all.
	code, raw = a.do(http.MethodGet, owner.path("/recipients/"+uuid.NewString()), owner.token, nil, nil)
	require.Equal(t, http.StatusNotFound, code, "missing recipient: %s", raw)
	requireError(t, raw, "not_found")
}

func TestRequestsNeedAToken(t *testing.T) {
	t.Parallel()
	s := shared(t)
	a := newAPI(t, s)
	tn := newTenant(t, s)

	code, raw := a.do(http.MethodGet, tn.path("/recipients/"+uuid.NewString()), "", nil, nil)
	require.Equal(t, http.StatusUnauthorized, code, "%s", raw)
	requireError(t, raw, "unauthenticated")

	forged, err := tenancy.NewSigner(randomSecret()).Sign(uuid.NewString(), tn.company, tenancy.KindUser, time.Hour)
	require.NoError(t, err)
	code, raw = a.do(http.MethodGet, tn.path("/recipients/"+uuid.NewString()), forged, nil, nil)
	require.Equal(t, http.StatusUnauthorized, code, "%s", raw)
	requireError(t, raw, "unauthenticated")
}

// campaign is the JSON of a campaign.
type campaign struct {
	ID          string `json:"id"`
	WorkspaceID string `json:"workspace_id"`
	DomainID    string `json:"domain_id"`
	Name        string `json:"name"`
	Subject     string `json:"subject"`
	FromEmail   string `json:"from_email"`
	HTMLBody    string `json:"html_body"`
	TextBody    string `json:"text_body"`
	State       string `json:"state"`
}

type campaignResponse struct {
	Campaign campaign `json:"campaign"`
}

// createCampaign creates a draft campaign and returns it.
func createCampaign(t *testing.T, a *api, tn tenant) campaign {
	t.Helper()
	var got campaignResponse
	code, raw := a.do(http.MethodPost, tn.path("/campaigns"), tn.token, map[string]any{
		"name":       "Spring launch",
		"subject":    "Hello {{first_name}}",
		"from_email": "news@example.com",
		"html_body":  "<p>Hello {{first_name}}</p>",
		"text_body":  "Hello {{first_name}}",
	}, nil)
	require.Equal(t, http.StatusOK, code, "create campaign: %s", raw)
	require.NoError(t, json.Unmarshal(raw, &got))
	return got.Campaign
}

func TestCampaignCreateAndGet(t *testing.T) {
	t.Parallel()
	s := shared(t)
	a := newAPI(t, s)
	tn := newTenant(t, s)

	created := createCampaign(t, a, tn)
	require.NotEmpty(t, created.ID)
	require.Equal(t, "CAMPAIGN_STATE_DRAFT", created.State)
	require.Equal(t, "Spring launch", created.Name)
	require.Equal(t, tn.domain.String(), created.DomainID)

	var got campaignResponse
	code, raw := a.do(http.MethodGet, tn.path("/campaigns/"+created.ID), tn.token, nil, &got)
	require.Equal(t, http.StatusOK, code, "get campaign: %s", raw)
	require.Equal(t, created, got.Campaign)

	other := newTenant(t, s)
	code, raw = a.do(http.MethodGet, tn.path("/campaigns/"+created.ID), other.token, nil, nil)
	require.Equal(t, http.StatusNotFound, code, "cross-tenant get: %s", raw)
	requireError(t, raw, "not_found")
}

// ingestResponse is the answer of events:batch; zero counts are omitted from the JSON.
type ingestResponse struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
}

// TestBounceMarksRecipientBounced follows an event through the whole system: the gateway
// hands the batch to events-ingest, which stores it and enqueues a River job in the same
// transaction; the worker runs the job and calls the recipient service, which marks the
// recipient bounced.
func TestBounceMarksRecipientBounced(t *testing.T) {
	t.Parallel()
	s := shared(t)
	a := newAPI(t, s)
	tn := newTenant(t, s)
	r := createRecipient(t, a, tn)
	c := createCampaign(t, a, tn)
	bystander := createRecipient(t, a, tn)

	now := time.Now().UTC()
	event := func(typ, recipientID string, extra map[string]any) map[string]any {
		e := map[string]any{
			"id":           uuid.NewString(),
			"type":         typ,
			"campaign_id":  c.ID,
			"recipient_id": recipientID,
			"occur_time":   now.Format(time.RFC3339Nano),
		}
		for k, v := range extra {
			e[k] = v
		}
		return e
	}
	batch := map[string]any{"events": []map[string]any{
		event("EVENT_TYPE_SENT", r.ID, nil),
		event("EVENT_TYPE_SENT", bystander.ID, nil),
		event("EVENT_TYPE_DELIVERED", bystander.ID, nil),
		event("EVENT_TYPE_OPEN", bystander.ID, map[string]any{"user_agent": "e2e", "ip": "192.0.2.1"}),
		event("EVENT_TYPE_BOUNCE", r.ID, map[string]any{"bounce_class": "hard"}),
	}}

	var res ingestResponse
	code, raw := a.do(http.MethodPost, tn.path("/events:batch"), tn.token, batch, &res)
	require.Equal(t, http.StatusOK, code, "ingest: %s", raw)
	require.Equal(t, ingestResponse{Accepted: 5}, res)

	// Poll until the worker has applied the bounce.
	var got recipientResponse
	waitFor(t, 30*time.Second, "the recipient to be bounced", func() (bool, string) {
		code, raw := a.do(http.MethodGet, tn.path("/recipients/"+r.ID), tn.token, nil, &got)
		require.Equal(t, http.StatusOK, code, "get recipient: %s", raw)
		if got.Recipient.Status != "RECIPIENT_STATUS_BOUNCED" {
			require.Equal(t, "RECIPIENT_STATUS_SUBSCRIBED", got.Recipient.Status)
		}
		return got.Recipient.Status == "RECIPIENT_STATUS_BOUNCED", "status " + got.Recipient.Status
	})
	require.Equal(t, "bounce: hard", got.Recipient.StatusReason)

	// The same batch again: every event is a duplicate, nothing is stored twice.
	res = ingestResponse{}
	code, raw = a.do(http.MethodPost, tn.path("/events:batch"), tn.token, batch, &res)
	require.Equal(t, http.StatusOK, code, "ingest again: %s", raw)
	require.Equal(t, ingestResponse{Accepted: 0, Duplicates: 5}, res)

	// Events that change nothing left the other recipient alone.
	code, raw = a.do(http.MethodGet, tn.path("/recipients/"+bystander.ID), tn.token, nil, &got)
	require.Equal(t, http.StatusOK, code, "get recipient: %s", raw)
	require.Equal(t, "RECIPIENT_STATUS_SUBSCRIBED", got.Recipient.Status)
}
