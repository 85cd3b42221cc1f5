package authz

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	campaignv1 "github.com/heraldmail/herald/proto/gen/go/herald/campaign/v1"
	eventsv1 "github.com/heraldmail/herald/proto/gen/go/herald/events/v1"
	identityv1 "github.com/heraldmail/herald/proto/gen/go/herald/identity/v1"
	recipientv1 "github.com/heraldmail/herald/proto/gen/go/herald/recipient/v1"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/heraldmail/herald/services/gateway/internal/identity"
)

// update rewrites docs/authorization.md from the tables: go test ./internal/authz -update.
var update = flag.Bool("update", false, "rewrite docs/authorization.md")

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestEveryRPCHasARule walks the descriptors of every service the gateway serves: an RPC
// without a rule would be refused at run time, and a rule without an RPC is stale.
func TestEveryRPCHasARule(t *testing.T) {
	t.Parallel()
	methods := Methods()
	seen := map[string]bool{}
	for _, rpc := range RPCs() {
		perm, ok := methods[rpc.FullMethod]
		require.True(t, ok, "%s has no entry in Methods", rpc.FullMethod)
		seen[rpc.FullMethod] = true
		if len(rpc.Routes) == 0 {
			require.Equal(t, identity.PermInternal, perm, "%s has no HTTP route: mark it internal", rpc.FullMethod)
		} else {
			require.NotEqual(t, identity.PermInternal, perm, "%s has HTTP routes but is marked internal", rpc.FullMethod)
		}
		switch perm {
		case identity.PermPublic, identity.PermSession, identity.PermInternal:
		default:
			require.True(t, identity.RoleOwner.Grants(perm), "%s needs %s, which no role grants", rpc.FullMethod, perm)
		}
		// Data routes of proxied services carry the partition they are authorized for.
		if rpc.Service != InProcessService && perm != identity.PermInternal {
			for _, r := range rpc.Routes {
				require.Contains(t, r.Path, "{workspace_id}", r.Path)
				if !WorkspaceMethods()[rpc.FullMethod] {
					require.Contains(t, r.Path, "{domain_id}", r.Path)
				}
			}
		}
	}
	for m := range methods {
		require.True(t, seen[m], "Methods has an entry for %s, which no service declares", m)
	}
	_, err := buildIndex(methods)
	require.NoError(t, err)

	delete(methods, identityv1.IdentityService_GetMe_FullMethodName)
	_, err = buildIndex(methods)
	require.ErrorContains(t, err, "GetMe has no authorization rule")
}

// TestRoutesResolve registers every service's handlers on a grpc-gateway mux and checks that
// each route, once matched, resolves to its RPC the way the middleware does.
func TestRoutesResolve(t *testing.T) {
	t.Parallel()
	ix, err := buildIndex(Methods())
	require.NoError(t, err)
	a := &Authorizer{methods: Methods(), ix: ix}

	var got string
	mux := runtime.NewServeMux(runtime.WithMiddlewares(func(runtime.HandlerFunc) runtime.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
			method, _, ok := a.rule(r)
			if !ok {
				method = "unresolved"
			}
			got = method
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	ctx := context.Background()
	require.NoError(t, identityv1.RegisterIdentityServiceHandlerServer(ctx, mux, &identityv1.UnimplementedIdentityServiceServer{}))
	require.NoError(t, recipientv1.RegisterRecipientServiceHandlerClient(ctx, mux, recipientv1.NewRecipientServiceClient(nil)))
	require.NoError(t, campaignv1.RegisterCampaignServiceHandlerClient(ctx, mux, campaignv1.NewCampaignServiceClient(nil)))
	require.NoError(t, eventsv1.RegisterEventsIngestServiceHandlerClient(ctx, mux, eventsv1.NewEventsIngestServiceClient(nil)))
	require.NoError(t, eventsv1.RegisterEventStatsServiceHandlerClient(ctx, mux, eventsv1.NewEventStatsServiceClient(nil)))
	require.NoError(t, recipientv1.RegisterImportServiceHandlerClient(ctx, mux, recipientv1.NewImportServiceClient(nil)))

	vars := regexp.MustCompile(`\{[^}]+\}`)
	n := 0
	for _, rpc := range RPCs() {
		for _, r := range rpc.Routes {
			got = ""
			path := vars.ReplaceAllStringFunc(r.Path, func(string) string { return uuid.NewString() })
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, r.Method, path, strings.NewReader("{}")))
			require.Equal(t, http.StatusNoContent, rec.Code, "%s %s did not match", r.Method, r.Path)
			require.Equal(t, r.FullMethod, got, "%s %s", r.Method, r.Path)
			n++
		}
	}
	require.Positive(t, n)
}

func TestPublic(t *testing.T) {
	t.Parallel()
	ix, err := buildIndex(Methods())
	require.NoError(t, err)
	a := &Authorizer{methods: Methods(), ix: ix}
	for _, p := range []string{"/v1/auth/signup", "/v1/auth/login", "/v1/auth/refresh", "/v1/auth/logout", "/v1/auth/invitations:accept"} {
		require.True(t, a.Public(httptest.NewRequestWithContext(t.Context(), http.MethodPost, p, nil)), p)
	}
	require.False(t, a.Public(httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/v1/auth/login", nil)), "another method")
	require.False(t, a.Public(httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/v1/me", nil)))
	require.False(t, a.Public(httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/v1/auth/signup/", nil)))
}

// TestAuthorizationDoc fails when docs/authorization.md is not what the tables say.
func TestAuthorizationDoc(t *testing.T) {
	t.Parallel()
	path := filepath.Join("..", "..", "..", "..", "docs", "authorization.md")
	want := document()
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(want), 0o644))
	}
	got, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./internal/authz -update in services/gateway")
	require.Equal(t, want, string(got), "docs/authorization.md is stale: run go test ./internal/authz -update in services/gateway")
}

// document renders the role → permission table and the RPC → permission table.
func document() string {
	var b strings.Builder
	b.WriteString(`# Authorization

<!-- Generated from services/gateway/internal/identity/roles.go and
     services/gateway/internal/authz/table.go by the test TestAuthorizationDoc;
     regenerate with: cd services/gateway && go test ./internal/authz -update -->

The gateway authenticates and authorizes every ` + "`/v1`" + ` request itself, in one place
(` + "`services/gateway/internal/authz`" + `), before the identity service (served in process)
or a proxied service sees it.

## Callers

- **Users** send ` + "`Authorization: Bearer <access token>`" + `: a JWT signed with ` + "`JWT_SECRET`" + `
  (or, during a rotation, ` + "`JWT_SECRET_PREVIOUS`" + `), valid ` + "`JWT_EXPIRY`" + ` (15 minutes).
  Refresh tokens (` + "`REFRESH_TOKEN_EXPIRY`" + `, 7 days) are used once: each refresh returns a new
  pair, and presenting a used or revoked refresh token revokes its whole family.
- **API keys** are sent the same way, ` + "`Authorization: Bearer hk_<prefix>_<secret>`" + `. A key
  belongs to one workspace and acts there with its role (admin, editor or viewer); it
  reaches no other workspace and cannot call operations that need a user session.
- **Platform operators** are users granted the right by ` + "`gateway operator grant <email>`" + `,
  run on the server; no API operation makes one.

## Rules

1. The route's RPC is found from the route grpc-gateway matched, and the permission it needs
   from the table below. A route whose RPC has no entry is refused.
2. On a route with a ` + "`workspace_id`" + ` (and ` + "`domain_id`" + `), the workspace (and the domain, in
   that workspace) must belong to the caller's company, and the caller must hold a role there:
   a company owner holds one in every workspace, a member in the workspaces they were invited
   to, an API key in its own. Otherwise the answer is **404 not_found**, exactly as for ids
   that do not exist, so that ids of other tenants never leak.
3. A caller who holds a role there that lacks the permission gets **403 permission_denied**.
4. On a company-wide route the caller needs one role that grants the permission.
5. Role changes and removals hold from the caller's next request: nothing is cached.
6. For a proxied route the caller's credential is replaced by a downscoped token (60 seconds,
   narrowed to the route's workspace and domain, carrying the caller's role); the services
   verify it and refuse any other partition.

## Roles and permissions

`)
	roles := identity.Roles()
	b.WriteString("| permission | allows |")
	for _, r := range roles {
		fmt.Fprintf(&b, " %s |", r)
	}
	b.WriteString("\n|---|---|")
	for range roles {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, p := range identity.Permissions() {
		fmt.Fprintf(&b, "| `%s` | %s |", p.Permission, p.Description)
		for _, r := range roles {
			if r.Grants(p.Permission) {
				b.WriteString(" yes |")
			} else {
				b.WriteString(" — |")
			}
		}
		b.WriteString("\n")
	}
	b.WriteString("\nThe owner holds its permissions in every workspace of the company; the other roles hold\n" +
		"theirs in their workspace only.\n\n## Operations\n\n" +
		"`public` needs no credentials; `session` needs a signed-in user (not an API key), whatever\n" +
		"their role; `internal` is not served by the gateway (internal callers reach the service\n" +
		"directly with a service token).\n\n" +
		"| RPC | HTTP route | needs |\n|---|---|---|\n")
	methods := Methods()
	rpcs := RPCs()
	slices.SortStableFunc(rpcs, func(x, y RPC) int { return strings.Compare(x.Service, y.Service) })
	for _, rpc := range rpcs {
		routes := make([]string, 0, len(rpc.Routes))
		for _, r := range rpc.Routes {
			routes = append(routes, "`"+r.Method+" "+r.Path+"`")
		}
		route := strings.Join(routes, "<br>")
		if route == "" {
			route = "—"
		}
		fmt.Fprintf(&b, "| `%s` | %s | `%s` |\n", strings.TrimPrefix(rpc.FullMethod, "/"), route, methods[rpc.FullMethod])
	}
	return b.String()
}
