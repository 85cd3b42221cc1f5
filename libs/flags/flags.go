// Package flags is Herald's feature flags: a typed registry of every flag (registry.go) and
// the providers that answer whether a flag is on for a tenant.
//
// A flag is a value of type Flag declared once in registry.go with its Definition; code checks
// it through that value (flags.SomeFlag), so checking a flag that is not registered does not
// compile, and `flags check` (tools/cmd/flags) fails the build when a flag outlives its
// expected removal date or is referenced nowhere.
//
// A flag is set globally, for a company or for a workspace, as narrow as its Definition's
// Scope allows. An explicit global value wins, then the company's, then the workspace's, and
// a flag set nowhere has its registry default.
package flags

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/google/uuid"
)

// Errors of Set, Clear and NewRegistry.
var (
	// ErrUnknownFlag is a flag that is not in the provider's registry.
	ErrUnknownFlag = errors.New("unknown feature flag")
	// ErrInvalidTarget is a target narrower than the flag's scope, or without an id.
	ErrInvalidTarget = errors.New("invalid feature flag target")
	// ErrInvalidDefinition is a registry entry that cannot be used.
	ErrInvalidDefinition = errors.New("invalid feature flag definition")
)

// Flag names one feature flag. Its only values are those declared in registry.go (and the
// fixtures of tests, made with NewFlag).
type Flag struct{ name string }

// NewFlag returns the flag called name. Only registry.go and tests call it: everywhere else
// `flags check` reports a call as an unregistered flag.
func NewFlag(name string) Flag { return Flag{name: name} }

// Name is the flag's name, the <flag> of its Redis keys.
func (f Flag) Name() string { return f.name }

// String implements fmt.Stringer.
func (f Flag) String() string { return f.name }

// Level is how narrowly a flag can be set.
type Level uint8

// Levels, from the widest.
const (
	LevelGlobal Level = iota + 1
	LevelCompany
	LevelWorkspace
)

// String returns global, company or workspace.
func (l Level) String() string {
	switch l {
	case LevelGlobal:
		return "global"
	case LevelCompany:
		return "company"
	case LevelWorkspace:
		return "workspace"
	}
	return fmt.Sprintf("level(%d)", uint8(l))
}

// Definition describes a registered flag.
type Definition struct {
	Flag        Flag
	Description string
	// Default is the value of a flag set nowhere (and of every check before the provider has
	// ever reached its store).
	Default bool
	// Scope is the narrowest level the flag may be set at: LevelGlobal, LevelCompany or
	// LevelWorkspace.
	Scope Level
	// Added is the day the flag was introduced.
	Added time.Time
	// ExpectedRemoval is the day by which the flag and the code path it retires should be
	// gone; `flags check` fails once it has passed.
	ExpectedRemoval time.Time
	// Owner is who decides about the flag and removes it (a team or a person).
	Owner string
}

// Date returns midnight UTC of the given day, for the dates of a Definition.
func Date(year int, month time.Month, day int) time.Time {
	return time.Date(year, month, day, 0, 0, 0, 0, time.UTC)
}

// namePattern is what a flag name looks like: lower snake case, so that it can never contain
// the ':' that separates the parts of a key.
var namePattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// Registry is a validated set of definitions.
type Registry struct {
	defs   []Definition
	byName map[string]Definition
}

// NewRegistry validates defs: names well formed and unique, a scope, a description, an
// owner, and an expected removal after the day the flag was added.
func NewRegistry(defs ...Definition) (*Registry, error) {
	r := &Registry{defs: append([]Definition(nil), defs...), byName: make(map[string]Definition, len(defs))}
	for _, d := range defs {
		name := d.Flag.name
		switch {
		case !namePattern.MatchString(name):
			return nil, fmt.Errorf("flag %q: name must be lower snake case (%s): %w", name, namePattern, ErrInvalidDefinition)
		case r.byName[name].Flag.name != "":
			return nil, fmt.Errorf("flag %s: registered twice: %w", name, ErrInvalidDefinition)
		case d.Scope < LevelGlobal || d.Scope > LevelWorkspace:
			return nil, fmt.Errorf("flag %s: scope must be LevelGlobal, LevelCompany or LevelWorkspace: %w", name, ErrInvalidDefinition)
		case d.Description == "" || d.Owner == "":
			return nil, fmt.Errorf("flag %s: description and owner must be set: %w", name, ErrInvalidDefinition)
		case d.Added.IsZero() || !d.ExpectedRemoval.After(d.Added):
			return nil, fmt.Errorf("flag %s: added must be set and expected removal must come after it: %w", name, ErrInvalidDefinition)
		}
		r.byName[name] = d
	}
	return r, nil
}

// Definitions returns every definition in registration order.
func (r *Registry) Definitions() []Definition { return append([]Definition(nil), r.defs...) }

// Lookup returns the definition of f.
func (r *Registry) Lookup(f Flag) (Definition, bool) {
	d, ok := r.byName[f.name]
	return d, ok
}

// ByName returns the definition of the flag called name, for tools that take names from
// their command line.
func (r *Registry) ByName(name string) (Definition, bool) {
	d, ok := r.byName[name]
	return d, ok
}

// Scope is the tenant a check is made for; zero ids mean "none" (a check outside any
// company or workspace sees only global values and defaults).
type Scope struct {
	CompanyID   uuid.UUID
	WorkspaceID uuid.UUID
}

// Target is where a value is set: everywhere, one company or one workspace.
type Target struct {
	Level Level
	ID    uuid.UUID
}

// Global targets every tenant.
func Global() Target { return Target{Level: LevelGlobal} }

// Company targets one company.
func Company(id uuid.UUID) Target { return Target{Level: LevelCompany, ID: id} }

// Workspace targets one workspace.
func Workspace(id uuid.UUID) Target { return Target{Level: LevelWorkspace, ID: id} }

// String returns global, company:<id> or workspace:<id>.
func (t Target) String() string {
	if t.Level == LevelGlobal {
		return "global"
	}
	return t.Level.String() + ":" + t.ID.String()
}

// validFor reports whether t may be set for d.
func (t Target) validFor(d Definition) error {
	if t.Level < LevelGlobal || t.Level > d.Scope {
		return fmt.Errorf("flag %s has scope %s, cannot be set at %s: %w", d.Flag.name, d.Scope, t, ErrInvalidTarget)
	}
	if t.Level != LevelGlobal && t.ID == uuid.Nil {
		return fmt.Errorf("flag %s: a %s target needs an id: %w", d.Flag.name, t.Level, ErrInvalidTarget)
	}
	return nil
}

// Provider answers flag checks. The Redis provider is the one of this package; an Unleash
// provider can take its place behind the same interface.
type Provider interface {
	// Enabled reports whether f is on for scope. It never fails: a provider that cannot reach
	// its store answers from what it last knew, or from the registry default.
	Enabled(ctx context.Context, f Flag, scope Scope) bool
}

// State is everything set for one flag.
type State struct {
	Definition Definition
	// Global is the explicit global value, nil when unset.
	Global     *bool
	Companies  map[uuid.UUID]bool
	Workspaces map[uuid.UUID]bool
}

// values are the explicit values of one flag.
type values struct {
	global     *bool
	companies  map[uuid.UUID]bool
	workspaces map[uuid.UUID]bool
}

// resolve applies the precedence: global, then company, then workspace, then def.
func (v *values) resolve(scope Scope, def bool) bool {
	if v == nil {
		return def
	}
	if v.global != nil {
		return *v.global
	}
	if scope.CompanyID != uuid.Nil {
		if on, ok := v.companies[scope.CompanyID]; ok {
			return on
		}
	}
	if scope.WorkspaceID != uuid.Nil {
		if on, ok := v.workspaces[scope.WorkspaceID]; ok {
			return on
		}
	}
	return def
}

// with returns a copy of v with t set to value (nil clears it).
func (v *values) with(t Target, value *bool) *values {
	n := &values{companies: map[uuid.UUID]bool{}, workspaces: map[uuid.UUID]bool{}}
	if v != nil {
		n.global = v.global
		for k, b := range v.companies {
			n.companies[k] = b
		}
		for k, b := range v.workspaces {
			n.workspaces[k] = b
		}
	}
	n.set(t, value)
	return n
}

// set sets t to value in place (nil clears it).
func (v *values) set(t Target, value *bool) {
	switch t.Level {
	case LevelGlobal:
		v.global = value
	case LevelCompany:
		setOrDelete(v.companies, t.ID, value)
	case LevelWorkspace:
		setOrDelete(v.workspaces, t.ID, value)
	}
}

func setOrDelete(m map[uuid.UUID]bool, id uuid.UUID, value *bool) {
	if value == nil {
		delete(m, id)
		return
	}
	m[id] = *value
}
