// Package flagadmin is the administration of feature flags through the API: listing every
// registered flag with its values, setting and clearing a value globally, for a company or
// for a workspace, and the audit of every change.
//
// Who may change what: platform operators the global values, a company's owners the
// company's value and the values of any of its workspaces, a workspace's admins that
// workspace's value. Another company's workspace is not found; anything else is refused.
//
// A change takes a lock on its flag and target, reads the value it replaces from Redis,
// writes the audit row, writes Redis and commits, all in one database transaction: when
// Redis fails the transaction is rolled back, nothing is recorded and the caller gets
// ErrUnavailable. Each change is counted in herald_flag_changes_total{flag,scope} and logged
// as "flag changed".
package flagadmin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/flags"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/heraldmail/herald/services/gateway/internal/identity"
)

// ErrUnavailable is a change or a listing that could not reach the flag store (Redis).
var ErrUnavailable = errors.New("the feature flag store is unavailable; try again")

// AuditLimit is the most changes ListAudit returns.
const AuditLimit = 500

// Provider is what the administration needs of the flag provider (*flags.Redis).
type Provider interface {
	Registry() *flags.Registry
	State(ctx context.Context, f flags.Flag) (flags.State, error)
	Set(ctx context.Context, f flags.Flag, t flags.Target, value bool) error
	Clear(ctx context.Context, f flags.Flag, t flags.Target) error
}

// Authorizer decides what a caller may do in a workspace or company (*identity.Service).
type Authorizer interface {
	Authorize(ctx context.Context, c identity.Caller, perm identity.Permission, workspace, domain uuid.UUID) (identity.Access, error)
}

// Change is one recorded change of a flag.
type Change struct {
	ID   uuid.UUID
	Flag string
	// Level is global, company or workspace; CompanyID is nil for a global change,
	// WorkspaceID is set for a workspace change only.
	Level       flags.Level
	CompanyID   uuid.UUID
	WorkspaceID uuid.UUID
	// Old and New are nil when the flag was, or becomes, unset at that target.
	Old, New    *bool
	ActorUserID uuid.UUID
	Actor       string
	CreatedAt   time.Time
}

// Target is the flags target of the change.
func (c Change) Target() flags.Target {
	switch c.Level {
	case flags.LevelCompany:
		return flags.Company(c.CompanyID)
	case flags.LevelWorkspace:
		return flags.Workspace(c.WorkspaceID)
	default:
		return flags.Global()
	}
}

// Store keeps the audit.
type Store interface {
	// IsOperator reports whether the user is a platform operator.
	IsOperator(ctx context.Context, user uuid.UUID) (bool, error)
	// RecordFlagChange runs, in one transaction visible to c's company (or, for a global
	// change, to operators) and holding a lock on c's flag and target: old to read the
	// current value, the insertion of c with it, then apply; it commits only when apply
	// succeeds. It returns c as stored.
	RecordFlagChange(ctx context.Context, c Change, old func(context.Context) (*bool, error), apply func(context.Context) error) (Change, error)
	// FlagAudit lists the changes of company (none when nil) and, with global, the global
	// changes, of flag (every flag when empty), newest first, at most limit.
	FlagAudit(ctx context.Context, company uuid.UUID, global bool, flag string, limit int) ([]Change, error)
}

// Admin is the feature flag administration.
type Admin struct {
	store    Store
	provider Provider
	authz    Authorizer
	log      *zap.Logger
	changes  *prometheus.CounterVec
}

// New returns an Admin; it registers herald_flag_changes_total{flag,scope} on reg.
func New(store Store, provider Provider, authz Authorizer, reg prometheus.Registerer, log *zap.Logger) (*Admin, error) {
	changes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_flag_changes_total",
		Help: "Feature flag changes made through the API, by flag and scope.",
	}, []string{"flag", "scope"})
	if err := reg.Register(changes); err != nil {
		return nil, fmt.Errorf("register flag change metric: %w", err)
	}
	return &Admin{store: store, provider: provider, authz: authz, log: log, changes: changes}, nil
}

// Value is a flag's explicit value at one level, nil when unset.
type Value = *bool

// FlagView is a registered flag and its values for the caller.
type FlagView struct {
	Definition flags.Definition
	Global     Value
	Company    Value
	Workspace  Value
	// Enabled is the value in effect for the caller's company and the requested workspace.
	Enabled bool
}

// List returns every registered flag with its global value, the value of the caller's
// company and, when workspace is not nil, the value of that workspace (which the caller must
// be able to read).
func (a *Admin) List(ctx context.Context, acc identity.Access, workspace uuid.UUID) ([]FlagView, error) {
	c := acc.Caller
	if workspace != uuid.Nil {
		if _, err := a.authz.Authorize(ctx, c, identity.PermWorkspaceRead, workspace, uuid.Nil); err != nil {
			return nil, err
		}
	}
	defs := a.provider.Registry().Definitions()
	out := make([]FlagView, 0, len(defs))
	for _, d := range defs {
		st, err := a.provider.State(ctx, d.Flag)
		if err != nil {
			return nil, a.unavailable("list flags", err)
		}
		v := FlagView{Definition: d, Global: st.Global}
		if on, ok := st.Companies[c.CompanyID]; ok {
			v.Company = &on
		}
		if workspace != uuid.Nil {
			if on, ok := st.Workspaces[workspace]; ok {
				v.Workspace = &on
			}
		}
		v.Enabled = d.Default
		for _, val := range []Value{v.Workspace, v.Company, v.Global} {
			if val != nil {
				v.Enabled = *val
			}
		}
		out = append(out, v)
	}
	return out, nil
}

// Set sets flag to value at level (workspace for LevelWorkspace) and records the change.
func (a *Admin) Set(ctx context.Context, acc identity.Access, flag string, level flags.Level, workspace uuid.UUID, value bool) (Change, error) {
	return a.change(ctx, acc, flag, level, workspace, &value)
}

// Clear removes flag's value at level and records the change.
func (a *Admin) Clear(ctx context.Context, acc identity.Access, flag string, level flags.Level, workspace uuid.UUID) (Change, error) {
	return a.change(ctx, acc, flag, level, workspace, nil)
}

func (a *Admin) change(ctx context.Context, acc identity.Access, name string, level flags.Level, workspace uuid.UUID, value *bool) (Change, error) {
	c := acc.Caller
	// Another company's workspace is not found, whatever else is wrong with the request.
	if workspace != uuid.Nil {
		if _, err := a.authz.Authorize(ctx, c, identity.PermWorkspaceRead, workspace, uuid.Nil); err != nil {
			return Change{}, err
		}
	}
	def, ok := a.provider.Registry().ByName(name)
	if !ok {
		return Change{}, &identity.NotFoundError{Resource: "flag"}
	}
	if c.IsAPIKey() {
		return Change{}, identity.ErrSessionRequired
	}
	ch := Change{Flag: name, Level: level, ActorUserID: c.UserID, Actor: "user:" + c.UserID.String()}
	if err := a.authorizeChange(ctx, c, def, &ch, workspace); err != nil {
		return Change{}, err
	}
	ch.New = value
	stored, err := a.store.RecordFlagChange(ctx, ch,
		func(ctx context.Context) (*bool, error) {
			st, err := a.provider.State(ctx, def.Flag)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
			}
			return current(st, ch.Target()), nil
		},
		func(ctx context.Context) error {
			var err error
			if value == nil {
				err = a.provider.Clear(ctx, def.Flag, ch.Target())
			} else {
				err = a.provider.Set(ctx, def.Flag, ch.Target(), *value)
			}
			if err != nil {
				return fmt.Errorf("%w: %w", ErrUnavailable, err)
			}
			return nil
		})
	if err != nil {
		if errors.Is(err, flags.ErrManagedInUnleash) {
			return Change{}, flags.ErrManagedInUnleash
		}
		if errors.Is(err, ErrUnavailable) {
			return Change{}, a.unavailable("change flag", err)
		}
		return Change{}, fmt.Errorf("change flag %s: %w", name, err)
	}
	a.changes.WithLabelValues(name, level.String()).Inc()
	a.log.Info("flag changed",
		zap.String("flag", name), zap.String("scope", level.String()),
		zap.Stringer("company_id", stored.CompanyID), zap.Stringer("workspace_id", stored.WorkspaceID),
		zap.String("old", describe(stored.Old)), zap.String("new", describe(stored.New)),
		zap.String("actor", stored.Actor), zap.Stringer("audit_id", stored.ID))
	return stored, nil
}

// authorizeChange checks that c may change def at ch's level (and workspace) and fills the
// ids of ch.
func (a *Admin) authorizeChange(ctx context.Context, c identity.Caller, def flags.Definition, ch *Change, workspace uuid.UUID) error {
	switch ch.Level {
	case flags.LevelGlobal, flags.LevelCompany, flags.LevelWorkspace:
	default:
		return &identity.ValidationError{Field: "scope", Reason: "must be FLAG_SCOPE_GLOBAL, FLAG_SCOPE_COMPANY or FLAG_SCOPE_WORKSPACE"}
	}
	if ch.Level > def.Scope {
		return &identity.ValidationError{Field: "scope", Reason: fmt.Sprintf("flag %s can be set at most at %s level", def.Flag.Name(), def.Scope)}
	}
	if ch.Level != flags.LevelWorkspace && workspace != uuid.Nil {
		return &identity.ValidationError{Field: "workspace_id", Reason: "is only allowed with scope FLAG_SCOPE_WORKSPACE"}
	}
	switch ch.Level {
	case flags.LevelGlobal:
		op, err := a.store.IsOperator(ctx, c.UserID)
		if err != nil {
			return fmt.Errorf("authorize flag change: %w", err)
		}
		if !op {
			return identity.ErrPermissionDenied
		}
	case flags.LevelCompany:
		if _, err := a.authz.Authorize(ctx, c, identity.PermCompanyManage, uuid.Nil, uuid.Nil); err != nil {
			return err
		}
		ch.CompanyID = c.CompanyID
	case flags.LevelWorkspace:
		if workspace == uuid.Nil {
			return &identity.ValidationError{Field: "workspace_id", Reason: "is required with scope FLAG_SCOPE_WORKSPACE"}
		}
		if _, err := a.authz.Authorize(ctx, c, identity.PermWorkspaceManage, workspace, uuid.Nil); err != nil {
			return err
		}
		ch.CompanyID, ch.WorkspaceID = c.CompanyID, workspace
	}
	return nil
}

// ListAudit lists the recorded changes of flag (every flag when empty), newest first: a
// company owner sees the company's changes, a platform operator the global ones as well.
func (a *Admin) ListAudit(ctx context.Context, acc identity.Access, flag string) ([]Change, error) {
	c := acc.Caller
	if c.IsAPIKey() {
		return nil, identity.ErrSessionRequired
	}
	op, err := a.store.IsOperator(ctx, c.UserID)
	if err != nil {
		return nil, fmt.Errorf("list flag audit: %w", err)
	}
	company := c.CompanyID
	if _, err := a.authz.Authorize(ctx, c, identity.PermCompanyManage, uuid.Nil, uuid.Nil); err != nil {
		if !op || !errors.Is(err, identity.ErrPermissionDenied) {
			return nil, err
		}
		company = uuid.Nil
	}
	out, err := a.store.FlagAudit(ctx, company, op, flag, AuditLimit)
	if err != nil {
		return nil, fmt.Errorf("list flag audit: %w", err)
	}
	return out, nil
}

func (a *Admin) unavailable(what string, err error) error {
	a.log.Warn(what+": flag store unavailable", zap.Error(err))
	return ErrUnavailable
}

// current is the explicit value of st at t, nil when unset.
func current(st flags.State, t flags.Target) *bool {
	switch t.Level {
	case flags.LevelGlobal:
		return st.Global
	case flags.LevelCompany:
		if on, ok := st.Companies[t.ID]; ok {
			return &on
		}
	case flags.LevelWorkspace:
		if on, ok := st.Workspaces[t.ID]; ok {
			return &on
		}
	}
	return nil
}

// describe renders a value for the log: true, false or unset.
func describe(v *bool) string {
	if v == nil {
		return "unset"
	}
	if *v {
		return "true"
	}
	return "false"
}
