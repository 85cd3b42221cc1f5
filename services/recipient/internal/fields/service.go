package fields

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Errors the transport maps to status codes; test them with errors.Is.
var (
	ErrNotFound      = errors.New("field definition not found")
	ErrAlreadyExists = errors.New("a field with this key already exists in this workspace")
	ErrInvalid       = errors.New("invalid field definition")
	// ErrTooMany is a workspace at MaxDefinitions.
	ErrTooMany = errors.New("the workspace has the most field definitions allowed")
	// ErrNotAdditive is an update that would change what stored values mean; the
	// *ChangeError that wraps it says which.
	ErrNotAdditive = errors.New("field definitions change only additively")
)

// ValidationError is a value of a definition request that breaks a rule: Field names the
// request field and Reason says what a valid value looks like.
type ValidationError struct {
	Field  string
	Reason string
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Reason }

// Is makes every ValidationError match ErrInvalid.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// ChangeError is an update a definition does not allow: stored values were written under the
// old definition, so its type, its required flag and its existing options are fixed.
type ChangeError struct {
	Key     string
	Message string
}

func (e *ChangeError) Error() string { return "field " + e.Key + ": " + e.Message }

// Is makes every ChangeError match ErrNotAdditive.
func (e *ChangeError) Is(target error) bool { return target == ErrNotAdditive }

// NewDefinition is what Create needs.
type NewDefinition struct {
	Key      string
	Label    string
	Type     Type
	Required bool
	// Default is nil for none.
	Default any
	Options []string
}

// Update is a change to a definition; nil fields stay as they are.
type Update struct {
	Label *string
	// Type, when set, must equal the current type.
	Type *Type
	// Required, when set, must equal the current flag.
	Required *bool
	// Options, when set, is the complete new list: every current option in it, new ones
	// appended.
	Options []string
	// SetDefault replaces the default with Default (nil clears it).
	SetDefault bool
	Default    any
}

// Store persists definitions. A definition of another workspace is ErrNotFound.
type Store interface {
	// List returns the workspace's definitions, retired ones included, oldest first.
	List(ctx context.Context, ws Workspace) (Definitions, error)
	// Create inserts d unless the workspace already holds MaxDefinitions (ErrTooMany); a key
	// taken in the workspace is ErrAlreadyExists.
	Create(ctx context.Context, ws Workspace, d Definition) (Definition, error)
	// Get returns the definition with key.
	Get(ctx context.Context, ws Workspace, key string) (Definition, error)
	// Update locks the definition with key, passes it to apply and stores what apply returns
	// (label, default, options, retired and update time) in one transaction.
	Update(ctx context.Context, ws Workspace, key string, apply func(Definition) (Definition, error)) (Definition, error)
}

// Service applies the definition rules around a Store.
type Service struct {
	store Store
	now   func() time.Time
}

// NewService returns a Service on store; now is its clock.
func NewService(store Store, now func() time.Time) *Service {
	return &Service{store: store, now: now}
}

// List returns the workspace's definitions, retired ones included.
func (s *Service) List(ctx context.Context, ws Workspace) (Definitions, error) {
	ds, err := s.store.List(ctx, ws)
	if err != nil {
		return nil, fmt.Errorf("list field definitions: %w", err)
	}
	return ds, nil
}

// Get returns one definition.
func (s *Service) Get(ctx context.Context, ws Workspace, key string) (Definition, error) {
	if ValidateKey("key", key) != nil {
		// A key no field can have names nothing.
		return Definition{}, fmt.Errorf("get field definition: %w", ErrNotFound)
	}
	d, err := s.store.Get(ctx, ws, key)
	if err != nil {
		return Definition{}, fmt.Errorf("get field definition: %w", err)
	}
	return d, nil
}

// Create validates and adds a definition.
func (s *Service) Create(ctx context.Context, ws Workspace, in NewDefinition) (Definition, error) {
	d, err := in.build()
	if err != nil {
		return Definition{}, fmt.Errorf("create field definition: %w", err)
	}
	d, err = s.store.Create(ctx, ws, d)
	if err != nil {
		return Definition{}, fmt.Errorf("create field definition: %w", err)
	}
	return d, nil
}

// Update applies u (see Apply) and returns the definition afterwards.
func (s *Service) Update(ctx context.Context, ws Workspace, key string, u Update) (Definition, error) {
	if ValidateKey("key", key) != nil {
		// A key no field can have names nothing.
		return Definition{}, fmt.Errorf("update field definition: %w", ErrNotFound)
	}
	d, err := s.store.Update(ctx, ws, key, func(cur Definition) (Definition, error) {
		return Apply(cur, u, s.now())
	})
	if err != nil {
		return Definition{}, fmt.Errorf("update field definition: %w", err)
	}
	return d, nil
}

// Retire stops a field from accepting values; stored values stay readable. Retiring a
// retired field changes nothing.
func (s *Service) Retire(ctx context.Context, ws Workspace, key string) (Definition, error) {
	if ValidateKey("key", key) != nil {
		// A key no field can have names nothing.
		return Definition{}, fmt.Errorf("retire field definition: %w", ErrNotFound)
	}
	now := s.now()
	d, err := s.store.Update(ctx, ws, key, func(cur Definition) (Definition, error) {
		if cur.Retired() {
			return cur, nil
		}
		cur.RetiredAt, cur.UpdatedAt = now, now
		return cur, nil
	})
	if err != nil {
		return Definition{}, fmt.Errorf("retire field definition: %w", err)
	}
	return d, nil
}

// ValidateKey checks a field key: lower-case snake_case (a letter first, then letters, digits
// and single underscores), at most MaxKeyLength bytes. field names the request field.
func ValidateKey(field, key string) error {
	if key == "" {
		return invalid(field, "is required")
	}
	if len(key) > MaxKeyLength || !keyPattern.MatchString(key) {
		return invalid(field, "must be lower-case snake_case such as first_name: a letter, then letters, digits and single underscores, at most %d characters", MaxKeyLength)
	}
	return nil
}

func (in NewDefinition) build() (Definition, error) {
	if err := ValidateKey("key", in.Key); err != nil {
		return Definition{}, err
	}
	if !in.Type.Valid() {
		return Definition{}, invalid("type", "must be one of text, number, boolean, date, enum")
	}
	label := strings.TrimSpace(in.Label)
	if label == "" {
		label = in.Key
	}
	if err := validateLabel(label); err != nil {
		return Definition{}, err
	}
	d := Definition{Key: in.Key, Label: label, Type: in.Type, Required: in.Required}
	if in.Type == TypeEnum {
		if len(in.Options) == 0 {
			return Definition{}, invalid("options", "an enum field needs at least one option")
		}
		if err := validateOptions(in.Options); err != nil {
			return Definition{}, err
		}
		d.Options = slices.Clone(in.Options)
	} else if len(in.Options) > 0 {
		return Definition{}, invalid("options", "are only for enum fields")
	}
	if in.Default != nil {
		v, err := d.Coerce(in.Default)
		if err != nil {
			return Definition{}, invalid("default_value", "%s", defaultReason(err))
		}
		d.Default = v
	}
	return d, nil
}

// Apply returns cur after u at time now. Label, default and new enum options may change; a
// different type or required flag, or a current option missing from the new list, is a
// *ChangeError. A retired field changes no more.
func Apply(cur Definition, u Update, now time.Time) (Definition, error) {
	if cur.Retired() {
		return Definition{}, &ChangeError{Key: cur.Key, Message: "is retired and changes no more"}
	}
	next := cur
	next.Options = slices.Clone(cur.Options)
	if u.Type != nil && *u.Type != cur.Type {
		if !u.Type.Valid() {
			return Definition{}, invalid("type", "must be one of text, number, boolean, date, enum")
		}
		return Definition{}, &ChangeError{Key: cur.Key, Message: fmt.Sprintf("the type cannot change from %s to %s: stored values were written as %s; create a new field instead", cur.Type, *u.Type, cur.Type)}
	}
	if u.Required != nil && *u.Required != cur.Required {
		return Definition{}, &ChangeError{Key: cur.Key, Message: "required cannot change after creation: recipients were written under the current rule; create a new field instead"}
	}
	if u.Label != nil {
		label := strings.TrimSpace(*u.Label)
		if err := validateLabel(label); err != nil {
			return Definition{}, err
		}
		next.Label = label
	}
	if u.Options != nil {
		if cur.Type != TypeEnum {
			return Definition{}, invalid("options", "are only for enum fields")
		}
		var removed []string
		for _, o := range cur.Options {
			if !slices.Contains(u.Options, o) {
				removed = append(removed, o)
			}
		}
		if len(removed) > 0 {
			return Definition{}, &ChangeError{Key: cur.Key, Message: fmt.Sprintf("options cannot be removed (missing: %s): recipients may hold them; list every current option and append new ones", strings.Join(removed, ", "))}
		}
		if err := validateOptions(u.Options); err != nil {
			return Definition{}, err
		}
		// Current options keep their order; new ones follow in the order given.
		for _, o := range u.Options {
			if !slices.Contains(next.Options, o) {
				next.Options = append(next.Options, o)
			}
		}
	}
	if u.SetDefault {
		next.Default = nil
		if u.Default != nil {
			v, err := next.Coerce(u.Default)
			if err != nil {
				return Definition{}, invalid("default_value", "%s", defaultReason(err))
			}
			next.Default = v
		}
	}
	next.UpdatedAt = now
	return next, nil
}

func defaultReason(err error) string {
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe.Message
	}
	return err.Error()
}

func validateLabel(label string) error {
	switch {
	case label == "":
		return invalid("label", "must not be empty")
	case utf8.RuneCountInString(label) > MaxLabelLength:
		return invalid("label", "must be at most %d characters", MaxLabelLength)
	case strings.ContainsRune(label, 0):
		return invalid("label", "must not contain NUL characters")
	}
	return nil
}

func validateOptions(opts []string) error {
	if len(opts) > MaxOptions {
		return invalid("options", "must be at most %d", MaxOptions)
	}
	seen := make(map[string]bool, len(opts))
	for _, o := range opts {
		switch {
		case strings.TrimSpace(o) == "":
			return invalid("options", "must not be empty")
		case utf8.RuneCountInString(o) > MaxOptionLength:
			return invalid("options", "must be at most %d characters each", MaxOptionLength)
		case strings.ContainsRune(o, 0):
			return invalid("options", "must not contain NUL characters")
		case seen[o]:
			return invalid("options", "must be unique; %q appears twice", o)
		}
		seen[o] = true
	}
	return nil
}

// Valid reports whether ws names a workspace: both ids set.
func (ws Workspace) Valid() bool { return ws.CompanyID != uuid.Nil && ws.WorkspaceID != uuid.Nil }
