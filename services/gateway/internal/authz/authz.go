// Package authz authenticates and authorizes every /v1 request of the gateway in one place.
//
// Authentication turns the bearer credential (a user's access token or an API key "hk_...")
// into an identity.Caller. Authorization finds the RPC of the route grpc-gateway matched (the
// contracts' google.api.http bindings, read from the descriptors), looks up the permission it
// needs in Methods, and asks identity.Service whether the caller holds it in the route's
// workspace and domain: another company's ids, or a workspace the caller holds no role in,
// answer 404; a role that lacks the permission answers 403. For a proxied route the caller's
// credential is then replaced by a downscoped token (60 s, narrowed to the route's workspace
// and domain, with the caller's role), so the services never see a token that reaches ids the
// gateway did not authorize.
package authz

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/heraldmail/herald/libs/tenancy"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/heraldmail/herald/services/gateway/internal/identity"
	"github.com/heraldmail/herald/services/gateway/internal/identityapi"
)

// DownscopedTTL is the lifetime of the token forwarded to a service: one request's worth.
const DownscopedTTL = 60 * time.Second

// Options configure an Authorizer.
type Options struct {
	// Service authenticates API keys and decides authorization.
	Service *identity.Service
	// Verifier checks access tokens (the current secret and, during a rotation, the previous).
	Verifier *tenancy.Verifier
	// Signer signs the downscoped tokens forwarded to the services.
	Signer *tenancy.Signer
	// Log receives internal errors.
	Log *zap.Logger
	// Deny writes an error (a gRPC status) in the REST error shape.
	Deny func(http.ResponseWriter, *http.Request, error)
}

// Authorizer is the gateway's authentication and authorization.
type Authorizer struct {
	o       Options
	methods map[string]identity.Permission
	ix      index
}

// New returns an Authorizer over the routes of Files and the table Methods; it fails when an
// RPC has no rule.
func New(o Options) (*Authorizer, error) {
	if o.Service == nil || o.Verifier == nil || o.Signer == nil || o.Log == nil || o.Deny == nil {
		return nil, errors.New("authz: every option is required")
	}
	methods := Methods()
	ix, err := buildIndex(methods)
	if err != nil {
		return nil, fmt.Errorf("authz: %w", err)
	}
	return &Authorizer{o: o, methods: methods, ix: ix}, nil
}

// Public reports whether the request is for a route that needs no credentials (sign-up,
// login, refresh, logout, accepting an invitation). Public routes have no path variables, so
// the path alone decides.
func (a *Authorizer) Public(r *http.Request) bool {
	return a.ix.public[routeKey(r.Method, r.URL.Path)]
}

// Authenticate checks a bearer credential and returns ctx carrying the caller. The error is a
// gRPC status (Unauthenticated for a bad credential).
func (a *Authorizer) Authenticate(ctx context.Context, bearer string) (context.Context, error) {
	var (
		c   identity.Caller
		err error
	)
	if identity.IsAPIKey(bearer) {
		c, err = a.o.Service.AuthenticateAPIKey(ctx, bearer)
	} else {
		var p tenancy.Principal
		if p, err = a.o.Verifier.Verify(bearer); err == nil {
			c, err = identity.CallerFromPrincipal(p)
		} else {
			err = identity.ErrUnauthenticated
		}
	}
	if err != nil {
		return nil, identityapi.Status(ctx, a.o.Log, err)
	}
	return identity.WithCaller(ctx, c), nil
}

// Middleware is the grpc-gateway middleware that authorizes every route after it matched.
func (a *Authorizer) Middleware(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		ctx := r.Context()
		method, perm, ok := a.rule(r)
		if !ok {
			// Fail closed: a route the table does not know is never served.
			a.o.Log.Error("route without an authorization rule", zap.String("method", r.Method))
			a.o.Deny(w, r, status.Error(codes.Internal, "internal error"))
			return
		}
		if perm == identity.PermPublic {
			next(w, r, params)
			return
		}
		c, ok := identity.CallerFrom(ctx)
		if !ok {
			a.o.Deny(w, r, status.Error(codes.Unauthenticated, "a valid bearer token is required in the Authorization header"))
			return
		}
		ws, dom, err := routeIDs(params)
		if err != nil {
			a.o.Deny(w, r, identityapi.Status(ctx, a.o.Log, err))
			return
		}
		acc, err := a.o.Service.Authorize(ctx, c, perm, ws, dom)
		if err != nil {
			a.o.Deny(w, r, identityapi.Status(ctx, a.o.Log, err))
			return
		}
		if !strings.HasPrefix(method, "/"+InProcessService+"/") {
			tok, err := a.o.Signer.SignScoped(c.Subject(), c.CompanyID, tenancy.KindUser,
				tenancy.Scoped{WorkspaceID: acc.WorkspaceID, DomainID: acc.DomainID, Role: string(acc.Role)}, DownscopedTTL)
			if err != nil {
				a.o.Deny(w, r, identityapi.Status(ctx, a.o.Log, fmt.Errorf("sign downscoped token: %w", err)))
				return
			}
			r.Header.Set("Authorization", "Bearer "+tok)
		}
		next(w, r.WithContext(identity.WithAccess(ctx, acc)), params)
	}
}

// rule finds the RPC of the matched route and the permission it needs.
func (a *Authorizer) rule(r *http.Request) (string, identity.Permission, bool) {
	pat, ok := runtime.HTTPPattern(r.Context())
	if !ok {
		return "", "", false
	}
	method, ok := a.ix.routes[routeKey(r.Method, normalizePattern(pat.String()))]
	if !ok {
		return "", "", false
	}
	perm, ok := a.methods[method]
	return method, perm, ok
}

// routeIDs reads the workspace and domain ids of a route; an id that is not a UUID names
// nothing that exists.
func routeIDs(params map[string]string) (ws, dom uuid.UUID, err error) {
	if v, ok := params["workspace_id"]; ok {
		if ws, err = uuid.Parse(v); err != nil || ws == uuid.Nil {
			return uuid.Nil, uuid.Nil, &identity.NotFoundError{Resource: "workspace"}
		}
	}
	if v, ok := params["domain_id"]; ok {
		if dom, err = uuid.Parse(v); err != nil || dom == uuid.Nil {
			return uuid.Nil, uuid.Nil, &identity.NotFoundError{Resource: "domain"}
		}
	}
	return ws, dom, nil
}
