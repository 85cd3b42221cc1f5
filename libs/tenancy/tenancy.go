// Package tenancy owns the Company > Workspace > Domain hierarchy at run time: the tenant
// types, the context carrier, the signed tokens that carry identity between processes, the
// gRPC interceptors and HTTP middleware that verify them, and the database helper that scopes
// a transaction to one tenant.
//
// Tenant ids come only from a verified token (the company) and the route (workspace and
// domain), never from a client-supplied header or body field.
package tenancy

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Errors callers map to transport codes. Cross-tenant access is reported as not found by the
// services, never as forbidden, so ids do not leak existence.
var (
	ErrUnauthenticated = errors.New("missing or invalid credentials")
	ErrInvalidTenant   = errors.New("invalid workspace or domain id")
	// ErrOutOfScope is a route outside the partition a downscoped token was issued for;
	// services answer it as not found.
	ErrOutOfScope = errors.New("not found")
)

// Tenant is the data partition a request works in.
type Tenant struct {
	CompanyID   uuid.UUID
	WorkspaceID uuid.UUID
	DomainID    uuid.UUID
}

// Principal is the verified caller of a request.
type Principal struct {
	// Subject is the user id, or "service:<name>" for internal callers.
	Subject   string
	CompanyID uuid.UUID
	Kind      Kind
	// WorkspaceID and DomainID are set when the token is narrowed to one partition; Role with
	// them.
	WorkspaceID uuid.UUID
	DomainID    uuid.UUID
	Role        string
	// Token is the bearer token the principal was verified from, forwarded on outgoing calls.
	Token string
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the verified caller of ctx.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// Scope resolves the tenant of a request from its verified principal and the workspace and
// domain ids of its route. A token narrowed to a workspace or domain only reaches that one:
// any other route is ErrOutOfScope.
func Scope(ctx context.Context, workspaceID, domainID string) (Tenant, error) {
	p, ok := PrincipalFrom(ctx)
	if !ok || p.CompanyID == uuid.Nil {
		return Tenant{}, ErrUnauthenticated
	}
	ws, err := uuid.Parse(workspaceID)
	if err != nil {
		return Tenant{}, fmt.Errorf("workspace_id: %w", ErrInvalidTenant)
	}
	dom, err := uuid.Parse(domainID)
	if err != nil {
		return Tenant{}, fmt.Errorf("domain_id: %w", ErrInvalidTenant)
	}
	if (p.WorkspaceID != uuid.Nil && p.WorkspaceID != ws) || (p.DomainID != uuid.Nil && p.DomainID != dom) {
		return Tenant{}, ErrOutOfScope
	}
	return Tenant{CompanyID: p.CompanyID, WorkspaceID: ws, DomainID: dom}, nil
}

// Beginner starts transactions (a *pgxpool.Pool or a pgx.Conn).
type Beginner interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// InTx runs fn in a transaction scoped to t: app.company_id, app.workspace_id and
// app.domain_id are set for this transaction only (set_config(..., true), the function form of
// SET LOCAL), so row-level security policies see the tenant and a pooled connection never
// carries it into another request. fn's error rolls the transaction back.
func InTx(ctx context.Context, db Beginner, t Tenant, fn func(pgx.Tx) error) error {
	if t.CompanyID == uuid.Nil || t.WorkspaceID == uuid.Nil || t.DomainID == uuid.Nil {
		return fmt.Errorf("scoped transaction: %w", ErrInvalidTenant)
	}
	tx, err := db.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		return fmt.Errorf("begin scoped transaction: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx,
		`SELECT set_config('app.company_id', $1, true),
		        set_config('app.workspace_id', $2, true),
		        set_config('app.domain_id', $3, true)`,
		t.CompanyID.String(), t.WorkspaceID.String(), t.DomainID.String()); err != nil {
		return fmt.Errorf("set tenant: %w", err)
	}
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit scoped transaction: %w", err)
	}
	return nil
}
