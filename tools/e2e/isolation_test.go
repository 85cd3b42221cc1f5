package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// The isolation suite reads the API's routes from the OpenAPI document the gateway serves, and
// for every route that names an object (a path parameter) and every method on it, asks for
// tenant A's object with tenant B's credentials. So a new route is covered the day it is
// added: the suite fails until its path parameters have a fixture and its body a factory.

// isoObjects are the ids of one object of every kind a route can name, in one tenant.
type isoObjects struct {
	workspace, domain, recipient, campaign, member, apiKey string
	// importID is a CSV import of the domain, ended.
	importID string
	// fieldKey is a custom field of the workspace; operation a bulk operation of the domain.
	fieldKey, operation string
}

// isolationFixtures maps every path parameter of the API to the object of a tenant that fills
// it. A route with a parameter missing here fails the suite: create the object in
// newIsoTenant and name it here.
func isolationFixtures() map[string]func(isoObjects) string {
	return map[string]func(isoObjects) string{
		"workspace_id": func(o isoObjects) string { return o.workspace },
		"domain_id":    func(o isoObjects) string { return o.domain },
		"recipient_id": func(o isoObjects) string { return o.recipient },
		"campaign_id":  func(o isoObjects) string { return o.campaign },
		"user_id":      func(o isoObjects) string { return o.member },
		"api_key_id":   func(o isoObjects) string { return o.apiKey },
		"import_id":    func(o isoObjects) string { return o.importID },
		"field_key":    func(o isoObjects) string { return o.fieldKey },
		"operation_id": func(o isoObjects) string { return o.operation },
		// Flags are named, not owned: a tenant's "object" on a flag route is the workspace
		// of the body or the query, which the route must not find from another tenant.
		"flag": func(isoObjects) string { return "isolation_flag" },
	}
}

// isolationBodies maps the operationId of every operation that takes a body (and names an
// object) to a body that would be valid for the tenant that owns the objects. An operation
// missing here fails the suite.
func isolationBodies() map[string]func(tn *isoTenant) any {
	return map[string]func(*isoTenant) any{
		"IdentityService_UpdateWorkspace": func(tn *isoTenant) any {
			return map[string]any{"name": "renamed-" + tn.marker}
		},
		"IdentityService_CreateApiKey": func(tn *isoTenant) any {
			return map[string]any{"name": "another-key-" + tn.marker, "role": "ROLE_ADMIN"}
		},
		"IdentityService_CreateDomain": func(tn *isoTenant) any {
			return map[string]any{"name": "another-" + tn.marker + ".example.com"}
		},
		"IdentityService_InviteMember": func(tn *isoTenant) any {
			return map[string]any{"email": "invited-" + tn.marker + "@example.com", "role": "ROLE_VIEWER"}
		},
		"IdentityService_UpdateMember": func(*isoTenant) any {
			return map[string]any{"role": "ROLE_VIEWER"}
		},
		"IdentityService_SetFlag": func(tn *isoTenant) any {
			return map[string]any{"scope": "FLAG_SCOPE_WORKSPACE", "workspace_id": tn.ids.workspace, "enabled": true}
		},
		"CampaignService_CreateCampaign": func(tn *isoTenant) any {
			return campaignBody("another-campaign-" + tn.marker)
		},
		"RecipientService_CreateRecipient": func(tn *isoTenant) any {
			return map[string]any{"email": "another-" + tn.marker + "@example.com"}
		},
		// The upload's body is the CSV file; any body does, as no request gets that far.
		"ImportService_CreateImport": func(tn *isoTenant) any {
			return "email\nimported-again-" + tn.marker + "@example.com\n"
		},
		"ImportService_CancelImport": func(*isoTenant) any { return map[string]any{} },
		"RecipientService_UpdateRecipientStatus": func(*isoTenant) any {
			return map[string]any{"status": "RECIPIENT_STATUS_UNSUBSCRIBED", "reason": "asked to"}
		},
		"RecipientService_UpdateRecipient": func(tn *isoTenant) any {
			return map[string]any{"attributes": map[string]any{tn.ids.fieldKey: "changed-" + tn.marker}}
		},
		"RecipientService_EraseRecipient": func(*isoTenant) any { return map[string]any{} },
		"RecipientService_CreateFieldDefinition": func(*isoTenant) any {
			return map[string]any{"key": "another_field", "type": "FIELD_TYPE_TEXT"}
		},
		"RecipientService_UpdateFieldDefinition": func(tn *isoTenant) any {
			return map[string]any{"label": "relabelled-" + tn.marker, "update_mask": "label"}
		},
		"RecipientService_RetireFieldDefinition": func(*isoTenant) any { return map[string]any{} },
		"RecipientService_CreateBulkOperation": func(*isoTenant) any {
			return map[string]any{"action": "BULK_ACTION_DELETE", "filter": map[string]any{"email_prefix": "no-such-address-"}}
		},
		"EventsIngestService_IngestEvents": func(tn *isoTenant) any {
			return map[string]any{"events": []map[string]any{{
				"id":           uuid.NewString(),
				"type":         "EVENT_TYPE_BOUNCE",
				"campaign_id":  tn.ids.campaign,
				"recipient_id": tn.ids.recipient,
				"occur_time":   time.Now().UTC().Format(time.RFC3339Nano),
				"bounce_class": "hard",
			}}}
		},
	}
}

func campaignBody(name string) map[string]any {
	return map[string]any{
		"name":       name,
		"subject":    "Subject of " + name,
		"from_email": "news@example.com",
		"html_body":  "<p>Hello {{first_name}}</p>",
		"text_body":  "Hello {{first_name}}",
	}
}

// isoTenant is a company of the isolation suite with one object of every kind, and what a
// response to another company must never show of it.
type isoTenant struct {
	label string
	// marker is in every name and address of the tenant (company, workspace, domain, users,
	// recipient, campaign, API key), so one search finds any of them.
	marker string
	token  string // the owner's access token
	apiKey string // an admin API key of the workspace
	ids    isoObjects
	// secrets are the tenant's ids and other identifiers, by what they are.
	secrets map[string]string
}

// newIsoTenant signs a company up and gives it a domain, a recipient, a campaign, a second
// member (who accepts the invitation) and an API key, all through the API.
func newIsoTenant(t *testing.T, s *system, label string) *isoTenant {
	t.Helper()
	a := newAPI(t, s)
	marker := "iso-" + label + "-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:16]
	tn := &isoTenant{label: label, marker: marker, secrets: map[string]string{}}

	var signup struct {
		Tokens    tokens            `json:"tokens"`
		User      map[string]any    `json:"user"`
		Company   map[string]any    `json:"company"`
		Workspace map[string]string `json:"workspace"`
	}
	code, raw := a.do(http.MethodPost, "/v1/auth/signup", "", map[string]any{
		"company_name": "company-" + marker, "workspace_name": "workspace-" + marker,
		"email": "owner-" + marker + "@example.com", "password": e2ePassword(), "name": "owner-" + marker,
	}, &signup)
	require.Equal(t, http.StatusOK, code, "sign up: %s", raw)
	tn.token = signup.Tokens.AccessToken
	tn.ids.workspace = signup.Workspace["id"]
	tn.secrets["company id"] = signup.Company["id"].(string)
	tn.secrets["owner's user id"] = signup.User["id"].(string)
	ws := "/v1/workspaces/" + tn.ids.workspace

	var domain struct {
		Domain map[string]string `json:"domain"`
	}
	code, raw = a.do(http.MethodPost, ws+"/domains", tn.token, map[string]any{"name": marker + ".example.com"}, &domain)
	require.Equal(t, http.StatusOK, code, "create domain: %s", raw)
	tn.ids.domain = domain.Domain["id"]
	dom := ws + "/domains/" + tn.ids.domain

	// The recipient's attribute is a custom field of the workspace. Its key is the tenant's
	// own, so that tenant B's route with A's key names nothing of B's.
	var field struct {
		Field map[string]any `json:"field"`
	}
	code, raw = a.do(http.MethodPost, ws+"/recipient-fields", tn.token, map[string]any{
		"key": "note_" + marker[len(marker)-16:], "label": "label-" + marker, "type": "FIELD_TYPE_TEXT",
	}, &field)
	require.Equal(t, http.StatusOK, code, "create field: %s", raw)
	tn.ids.fieldKey, _ = field.Field["key"].(string)

	var rcpt recipientResponse
	code, raw = a.do(http.MethodPost, dom+"/recipients", tn.token, map[string]any{
		"email": "recipient-" + marker + "@example.com", "attributes": map[string]any{tn.ids.fieldKey: "note-" + marker},
	}, &rcpt)
	require.Equal(t, http.StatusOK, code, "create recipient: %s", raw)
	tn.ids.recipient = rcpt.Recipient.ID

	tn.ids.importID = isoImport(t, a, tn, dom)

	// A bulk operation that matches nothing of the domain.
	var op struct {
		Operation map[string]any `json:"operation"`
	}
	code, raw = a.do(http.MethodPost, dom+"/bulk-operations", tn.token, map[string]any{
		"action": "BULK_ACTION_DELETE", "filter": map[string]any{"email_prefix": "nobody-" + marker},
	}, &op)
	require.Equal(t, http.StatusOK, code, "create bulk operation: %s", raw)
	tn.ids.operation, _ = op.Operation["id"].(string)

	var camp campaignResponse
	code, raw = a.do(http.MethodPost, dom+"/campaigns", tn.token, campaignBody("campaign-"+marker), &camp)
	require.Equal(t, http.StatusOK, code, "create campaign: %s", raw)
	tn.ids.campaign = camp.Campaign.ID

	var inv struct {
		Member struct {
			User map[string]string `json:"user"`
		} `json:"member"`
		InvitationToken string `json:"invitation_token"`
	}
	code, raw = a.do(http.MethodPost, ws+"/members", tn.token, map[string]any{
		"email": "member-" + marker + "@example.com", "role": "ROLE_EDITOR",
	}, &inv)
	require.Equal(t, http.StatusOK, code, "invite: %s", raw)
	tn.ids.member = inv.Member.User["id"]
	code, raw = a.do(http.MethodPost, "/v1/auth/invitations:accept", "", map[string]any{
		"invitation_token": inv.InvitationToken, "password": e2ePassword(), "name": "member-" + marker,
	}, nil)
	require.Equal(t, http.StatusOK, code, "accept: %s", raw)

	var key struct {
		APIKey map[string]string `json:"api_key"`
		Secret string            `json:"secret"`
	}
	code, raw = a.do(http.MethodPost, ws+"/api-keys", tn.token, map[string]any{"name": "key-" + marker, "role": "ROLE_ADMIN"}, &key)
	require.Equal(t, http.StatusOK, code, "create api key: %s", raw)
	watch.addAPIKey("key-"+marker, key.Secret, a.last)
	tn.apiKey = key.Secret
	tn.ids.apiKey = key.APIKey["id"]
	tn.secrets["API key prefix"] = key.APIKey["prefix"]
	tn.secrets["API key"] = key.Secret

	for name, fill := range isolationFixtures() {
		id := fill(tn.ids)
		require.NotEmpty(t, id, "%s of tenant %s", name, label)
		tn.secrets[name] = id
	}
	tn.secrets["names and addresses"] = marker
	return tn
}

// openAPIOperation is one operation of the OpenAPI (Swagger 2.0) document.
type openAPIOperation struct {
	OperationID string `json:"operationId"`
	Parameters  []struct {
		Name string `json:"name"`
		In   string `json:"in"`
	} `json:"parameters"`
}

// operation is one method on one path of the API.
type operation struct {
	method string
	path   string // the template, e.g. /v1/workspaces/{workspace_id}
	id     string // the operationId
	params []string
	body   bool
}

func (op operation) String() string { return op.method + " " + op.path }

// pathParam matches a parameter of a path template: {name} or {name=pattern}.
var pathParam = regexp.MustCompile(`\{([^}=]+)(?:=[^}]*)?\}`)

// readOperations reads every operation of the OpenAPI document the gateway serves.
func readOperations(t *testing.T, a *api) []operation {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	code, raw := a.do(http.MethodGet, "/openapi.json", "", nil, &doc)
	require.Equal(t, http.StatusOK, code, "openapi.json: %s", raw)
	require.NotEmpty(t, doc.Paths, "the OpenAPI document lists no paths")
	var ops []operation
	for path, item := range doc.Paths {
		for method, rawOp := range item {
			m := strings.ToUpper(method)
			if !slices.Contains([]string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}, m) {
				continue // path-level parameters and the like
			}
			var o openAPIOperation
			require.NoError(t, json.Unmarshal(rawOp, &o), "%s %s", m, path)
			op := operation{method: m, path: path, id: o.OperationID}
			for _, p := range pathParam.FindAllStringSubmatch(path, -1) {
				op.params = append(op.params, p[1])
			}
			for _, p := range o.Parameters {
				if p.In == "body" {
					op.body = true
				}
			}
			ops = append(ops, op)
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].String() < ops[j].String() })
	return ops
}

// fill returns the path of op with each parameter set to the id of its owner: owners[i] is
// the tenant whose object fills op.params[i] (nil for a made-up id that names nothing).
func fill(op operation, owners []*isoTenant) string {
	fixtures := isolationFixtures()
	i := 0
	return pathParam.ReplaceAllStringFunc(op.path, func(string) string {
		name, owner := op.params[i], owners[i]
		i++
		if owner == nil {
			return uuid.NewString()
		}
		return fixtures[name](owner.ids)
	})
}

// variants are the ways op can point at tenant A's objects from tenant B: every id A's, and,
// when the route names several objects, each of A's ids alone among B's.
func variants(op operation, a, b *isoTenant) [][]*isoTenant {
	all := make([]*isoTenant, len(op.params))
	for i := range all {
		all[i] = a
	}
	out := [][]*isoTenant{all}
	if len(op.params) < 2 {
		return out
	}
	for i := range op.params {
		v := make([]*isoTenant, len(op.params))
		for j := range v {
			v[j] = b
		}
		v[i] = a
		out = append(out, v)
	}
	return out
}

// describe names the owner of every id of a variant, e.g. "workspace_id=A domain_id=B".
func describe(op operation, owners []*isoTenant) string {
	parts := make([]string, len(owners))
	for i, o := range owners {
		parts[i] = op.params[i] + "=" + o.label
	}
	return strings.Join(parts, " ")
}

// snapshot reads every object of tn through its own GETs: each GET operation of the API whose
// parameters all have a fixture, with tn's ids and token. Lists are compared whatever their
// order.
func snapshot(t *testing.T, a *api, tn *isoTenant, ops []operation) map[string]string {
	t.Helper()
	fixtures := isolationFixtures()
	out := map[string]string{}
	for _, op := range ops {
		if op.method != http.MethodGet || slices.ContainsFunc(op.params, func(p string) bool { return fixtures[p] == nil }) {
			continue
		}
		owners := make([]*isoTenant, len(op.params))
		for i := range owners {
			owners[i] = tn
		}
		path := fill(op, owners)
		code, header, raw := a.request(http.MethodGet, path, tn.token, nil)
		require.Equal(t, http.StatusOK, code, "%s as its owner: %s", op, raw)
		if strings.HasPrefix(header.Get("Content-Type"), "text/csv") {
			// A download (an import's rejected rows), kept as a JSON string for the comparison.
			b, err := json.Marshal(string(raw))
			require.NoError(t, err)
			out[op.String()] = string(b)
			continue
		}
		out[op.String()] = canonicalJSON(t, raw)
	}
	return out
}

// canonicalJSON re-encodes a JSON document with every list sorted.
func canonicalJSON(t *testing.T, raw []byte) string {
	t.Helper()
	var v any
	require.NoError(t, json.Unmarshal(raw, &v), "%s", raw)
	b, err := json.Marshal(sortLists(v))
	require.NoError(t, err)
	return string(b)
}

func sortLists(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = sortLists(e)
		}
		return v
	case []any:
		keys := make([]string, len(v))
		for i, e := range v {
			v[i] = sortLists(e)
			b, _ := json.Marshal(v[i])
			keys[i] = string(b)
		}
		sort.Sort(byKey{v, keys})
		return v
	default:
		return v
	}
}

// byKey sorts a list by the JSON of its elements.
type byKey struct {
	items []any
	keys  []string
}

func (s byKey) Len() int           { return len(s.items) }
func (s byKey) Less(i, j int) bool { return s.keys[i] < s.keys[j] }
func (s byKey) Swap(i, j int) {
	s.items[i], s.items[j] = s.items[j], s.items[i]
	s.keys[i], s.keys[j] = s.keys[j], s.keys[i]
}

// rawResponse is what a cross-tenant request got back.
type rawResponse struct {
	code   int
	header http.Header
	body   []byte
}

// send sends a request and returns the whole answer.
func (a *api) send(method, path, token string, body any) rawResponse {
	a.t.Helper()
	code, header, raw := a.request(method, path, token, body)
	return rawResponse{code: code, header: header, body: raw}
}

// TestTenantIsolation asks, for every route that names an object and every method on it, for
// tenant A's objects with tenant B's credentials (the owner's token and an API key): the
// answer is 404 not_found, the same as for ids that do not exist, it shows nothing of A, and
// A's objects are unchanged afterwards.
func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	s := shared(t)
	a := newAPI(t, s)
	ops := readOperations(t, a)

	// Every parameter needs a fixture and every body a factory, or the route is not covered.
	fixtures, bodies := isolationFixtures(), isolationBodies()
	var covered []operation
	for _, op := range ops {
		if len(op.params) == 0 {
			continue
		}
		ok := true
		for _, p := range op.params {
			if _, has := fixtures[p]; !has {
				t.Errorf("%s: path parameter %q has no fixture: create the object in newIsoTenant and add it to isolationFixtures", op, p)
				ok = false
			}
		}
		if op.body {
			if _, has := bodies[op.id]; !has {
				t.Errorf("%s: operation %q takes a body but has no factory in isolationBodies", op, op.id)
				ok = false
			}
		}
		if ok {
			covered = append(covered, op)
		}
	}
	require.NotEmpty(t, covered, "no route of the API names an object")
	if t.Failed() {
		t.FailNow()
	}

	ta, tb := newIsoTenant(t, s, "a"), newIsoTenant(t, s, "b")
	before := snapshot(t, a, ta, ops)
	credentials := []struct{ name, bearer string }{
		{"owner token", tb.token},
		{"API key", tb.apiKey},
	}

	t.Run("routes", func(t *testing.T) {
		for _, op := range covered {
			t.Run(op.id, func(t *testing.T) {
				t.Parallel()
				c := newAPI(t, s)
				for _, owners := range variants(op, ta, tb) {
					var body any
					if op.body {
						body = bodies[op.id](ta)
					}
					path := fill(op, owners)
					// The same request with made-up ids where A's were.
					missing := slices.Clone(owners)
					for i, o := range missing {
						if o == ta {
							missing[i] = nil
						}
					}
					missingPath := fill(op, missing)
					for _, cred := range credentials {
						what := fmt.Sprintf("%s (%s) with B's %s", op, describe(op, owners), cred.name)
						got := c.send(op.method, path, cred.bearer, body)
						require.Equal(t, http.StatusNotFound, got.code, "%s: %s", what, got.body)
						e := requireError(t, got.body, "not_found")
						requireShowsNothingOf(t, what, got, ta)

						ref := c.send(op.method, missingPath, cred.bearer, body)
						require.Equal(t, http.StatusNotFound, ref.code, "%s, made-up ids: %s", what, ref.body)
						require.Equal(t, requireError(t, ref.body, "not_found").Message, e.Message,
							"%s: the answer differs from the one for ids that do not exist", what)
					}
				}
			})
		}
	})

	after := snapshot(t, a, ta, ops)
	for route, want := range before {
		require.JSONEq(t, want, after[route], "tenant A's %s changed", route)
	}
}

// requireShowsNothingOf checks that no id or name of tn is in the answer's headers or body.
func requireShowsNothingOf(t *testing.T, what string, got rawResponse, tn *isoTenant) {
	t.Helper()
	var all bytes.Buffer
	_ = got.header.Write(&all)
	all.Write(got.body)
	for name, value := range tn.secrets {
		// The value itself is not printed: it may be a credential.
		require.False(t, strings.Contains(all.String(), value), "%s: the answer shows tenant %s's %s", what, tn.label, name)
	}
}

// isoImport uploads a one-row CSV file to the domain at dom and waits until its import ended,
// so that the snapshots before and after the routes see it unchanged.
func isoImport(t *testing.T, a *api, tn *isoTenant, dom string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.base+dom+"/imports?map=email:email",
		strings.NewReader("email\nimported-"+tn.marker+"@example.com\nnot-an-address-"+tn.marker+"\n"))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tn.token)
	req.Header.Set("Content-Type", "text/csv")
	resp, err := a.http.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var created struct {
		Import map[string]any `json:"import"`
	}
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "upload: %s", raw)
	require.NoError(t, json.Unmarshal(raw, &created))
	id, _ := created.Import["id"].(string)
	require.NotEmpty(t, id)
	require.Eventually(t, func() bool {
		var got struct {
			Import map[string]any `json:"import"`
		}
		code, _ := a.do(http.MethodGet, dom+"/imports/"+id, tn.token, nil, &got)
		return code == http.StatusOK && got.Import["state"] == "IMPORT_STATE_SUCCEEDED"
	}, 30*time.Second, 50*time.Millisecond, "import of tenant %s never ended", tn.label)
	return id
}
