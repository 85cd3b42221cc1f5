// Package fields holds a workspace's custom field definitions (the typed attributes its
// recipients may carry) and the rules that check a recipient's attributes against them. It is
// a leaf of the recipient service: the recipient rules, the imports and the transport use its
// types, and it imports none of them. internal/store loads and keeps the definitions.
package fields

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Type is the kind of value a field holds. The values are the ones stored in
// recipient.field_definitions.type.
type Type string

// Types.
const (
	TypeText    Type = "text"
	TypeNumber  Type = "number"
	TypeBoolean Type = "boolean"
	TypeDate    Type = "date"
	TypeEnum    Type = "enum"
)

// Valid reports whether t is one of the five types.
func (t Type) Valid() bool {
	switch t {
	case TypeText, TypeNumber, TypeBoolean, TypeDate, TypeEnum:
		return true
	}
	return false
}

// DateLayout is how a date value is written and stored: a calendar day, so that stored dates
// compare as strings in the order of time.
const DateLayout = "2006-01-02"

// Limits of a definition and of the values it accepts.
const (
	// MaxKeyLength is the longest key, in bytes (keys are ASCII).
	MaxKeyLength = 64
	// MaxLabelLength is the longest label, in characters.
	MaxLabelLength = 200
	// MaxOptions is the most options an enum field has.
	MaxOptions = 200
	// MaxOptionLength is the longest enum option, in characters.
	MaxOptionLength = 200
	// MaxTextLength is the longest text value, in characters.
	MaxTextLength = 2000
	// MaxDefinitions is the most definitions a workspace has, retired ones included.
	MaxDefinitions = 500
)

var keyPattern = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// Workspace is the scope field definitions belong to.
type Workspace struct {
	CompanyID   uuid.UUID
	WorkspaceID uuid.UUID
}

// Definition is one custom field of a workspace.
type Definition struct {
	ID        uuid.UUID
	Workspace Workspace
	// Key is the attribute name on recipients: lower-case snake_case, unique in the workspace
	// (retired fields keep theirs).
	Key   string
	Label string
	Type  Type
	// Required fields must be present on every write of a recipient's attributes; a missing
	// one takes Default when there is one.
	Required bool
	// Default is the value of the field's Type (string, float64, bool, a DateLayout string, one
	// of Options), or nil for none.
	Default any
	// Options are the values of an enum field, in the order they were added.
	Options []string
	// RetiredAt is when the field stopped being accepted on writes; zero while active. Values
	// already stored stay readable.
	RetiredAt time.Time
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Retired reports whether d no longer accepts values.
func (d Definition) Retired() bool { return !d.RetiredAt.IsZero() }

// Definitions are the field definitions of one workspace, retired ones included.
type Definitions []Definition

// Lookup returns the definition of key.
func (ds Definitions) Lookup(key string) (Definition, bool) {
	for _, d := range ds {
		if d.Key == key {
			return d, true
		}
	}
	return Definition{}, false
}

// Reason classifies why an attribute was refused, so callers (an import's error report, a
// client) can act on it without parsing messages.
type Reason string

// Reasons.
const (
	// ReasonUnknown: no field of the workspace has this key.
	ReasonUnknown Reason = "unknown_field"
	// ReasonRetired: the field was retired and accepts no more values.
	ReasonRetired Reason = "retired_field"
	// ReasonTypeMismatch: the value is not of the field's type.
	ReasonTypeMismatch Reason = "type_mismatch"
	// ReasonInvalidValue: the value has the right type but breaks a rule of the field (not an
	// option of an enum, a text too long, a number that is not finite).
	ReasonInvalidValue Reason = "invalid_value"
	// ReasonRequired: a required field without a default is missing.
	ReasonRequired Reason = "required"
)

// ErrInvalidAttributes matches every *FieldError and Errors with errors.Is.
var ErrInvalidAttributes = errors.New("invalid attributes")

// FieldError is one attribute a write refused: Key names it, Reason classifies it and Message
// says what a valid value looks like.
type FieldError struct {
	Key     string
	Reason  Reason
	Message string
}

func (e *FieldError) Error() string { return "attributes." + e.Key + ": " + e.Message }

// Is makes every FieldError match ErrInvalidAttributes.
func (e *FieldError) Is(target error) bool { return target == ErrInvalidAttributes }

// Errors are every attribute a write refused, ordered by key.
type Errors []*FieldError

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// Is makes Errors match ErrInvalidAttributes.
func (es Errors) Is(target error) bool { return target == ErrInvalidAttributes }

// Unwrap returns the single errors, for errors.As(err, **FieldError).
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

func fieldErr(key string, r Reason, format string, args ...any) *FieldError {
	return &FieldError{Key: key, Reason: r, Message: fmt.Sprintf(format, args...)}
}

// Validate checks a recipient's complete attributes against the definitions and returns them
// as stored: every value converted to its field's type (numbers as float64, dates as
// DateLayout strings), a null value dropped, and the default of every missing required field
// added. The error is Errors listing every refused attribute: unknown keys, retired fields,
// type mismatches, invalid values, missing required fields. attrs is not modified.
func (ds Definitions) Validate(attrs map[string]any) (map[string]any, error) {
	return ds.validate(nil, attrs)
}

// ValidatePatch checks a change to stored attributes: patch's keys replace current's, a null
// value removes the key. Only the keys of patch are checked against the definitions (values
// of retired or since-changed fields already stored stay as they are); required fields are
// checked on the result. It returns the attributes to store; current is not modified.
func (ds Definitions) ValidatePatch(current, patch map[string]any) (map[string]any, error) {
	if current == nil {
		current = map[string]any{}
	}
	return ds.validate(current, patch)
}

// ValidateText is Validate for values written as text, such as the cells of a CSV row: each
// value is parsed for its field's type first (see Definition.ParseText), and an empty string
// counts as absent.
func (ds Definitions) ValidateText(row map[string]string) (map[string]any, error) {
	attrs := make(map[string]any, len(row))
	var errs Errors
	for k, s := range row {
		d, ok := ds.Lookup(k)
		if !ok || d.Retired() {
			attrs[k] = s // reported by Validate with the right reason
			continue
		}
		if strings.TrimSpace(s) == "" {
			continue
		}
		v, ferr := d.parseText(s)
		if ferr != nil {
			errs = append(errs, ferr)
			continue
		}
		attrs[k] = v
	}
	out, err := ds.Validate(attrs)
	if err != nil {
		var more Errors
		errors.As(err, &more)
		errs = append(errs, more...)
	}
	if len(errs) > 0 {
		sortErrors(errs)
		return nil, errs
	}
	return out, nil
}

func (ds Definitions) validate(base, attrs map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(base)+len(attrs))
	for k, v := range base {
		out[k] = v
	}
	var errs Errors
	for k, v := range attrs {
		d, ok := ds.Lookup(k)
		switch {
		case !ok:
			errs = append(errs, fieldErr(k, ReasonUnknown, "is not a custom field of this workspace; define it first"))
			continue
		case d.Retired():
			errs = append(errs, fieldErr(k, ReasonRetired, "is a retired field and accepts no values"))
			continue
		}
		if v == nil {
			delete(out, k)
			continue
		}
		cv, ferr := d.coerce(v)
		if ferr != nil {
			errs = append(errs, ferr)
			continue
		}
		out[k] = cv
	}
	for _, d := range ds {
		if !d.Required || d.Retired() {
			continue
		}
		if _, ok := out[d.Key]; ok {
			continue
		}
		if _, refused := attrs[d.Key]; refused && !isNull(attrs[d.Key]) {
			continue // already reported
		}
		if d.Default != nil {
			out[d.Key] = d.Default
			continue
		}
		errs = append(errs, fieldErr(d.Key, ReasonRequired, "is required"))
	}
	if len(errs) > 0 {
		sortErrors(errs)
		return nil, errs
	}
	return out, nil
}

func isNull(v any) bool { return v == nil }

func sortErrors(es Errors) {
	sort.SliceStable(es, func(i, j int) bool { return es[i].Key < es[j].Key })
}

// Coerce converts v (a value decoded from JSON or a protobuf Struct) to d's type, or returns a
// *FieldError saying why it cannot.
func (d Definition) Coerce(v any) (any, error) {
	out, ferr := d.coerce(v)
	if ferr != nil {
		return nil, ferr
	}
	return out, nil
}

func (d Definition) coerce(v any) (any, *FieldError) {
	switch d.Type {
	case TypeText:
		s, ok := v.(string)
		if !ok {
			return nil, d.mismatch(v, "a string")
		}
		if utf8.RuneCountInString(s) > MaxTextLength {
			return nil, fieldErr(d.Key, ReasonInvalidValue, "must be at most %d characters", MaxTextLength)
		}
		if strings.ContainsRune(s, 0) {
			return nil, fieldErr(d.Key, ReasonInvalidValue, "must not contain NUL characters")
		}
		return s, nil
	case TypeNumber:
		var f float64
		switch n := v.(type) {
		case float64:
			f = n
		case float32:
			f = float64(n)
		case int:
			f = float64(n)
		case int64:
			f = float64(n)
		case json.Number:
			var err error
			if f, err = n.Float64(); err != nil {
				return nil, d.mismatch(v, "a number")
			}
		default:
			return nil, d.mismatch(v, "a number")
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fieldErr(d.Key, ReasonInvalidValue, "must be a finite number")
		}
		return f, nil
	case TypeBoolean:
		b, ok := v.(bool)
		if !ok {
			return nil, d.mismatch(v, "true or false")
		}
		return b, nil
	case TypeDate:
		s, ok := v.(string)
		if !ok {
			return nil, d.mismatch(v, "a date written YYYY-MM-DD")
		}
		return d.parseDate(s)
	case TypeEnum:
		s, ok := v.(string)
		if !ok {
			return nil, d.mismatch(v, "one of "+d.optionList())
		}
		if !slices.Contains(d.Options, s) {
			return nil, fieldErr(d.Key, ReasonInvalidValue, "must be one of %s", d.optionList())
		}
		return s, nil
	}
	return nil, fieldErr(d.Key, ReasonInvalidValue, "has an unknown type %q", d.Type)
}

// ParseText converts s, a value written as text (a CSV cell), to d's type: numbers in Go's
// float syntax, booleans as true/false/yes/no/1/0 (any case), dates as YYYY-MM-DD (or an
// RFC 3339 time, whose date is kept), text and enum values as they are (enum options match
// exactly). Surrounding spaces are trimmed but for text. The error is a *FieldError.
func (d Definition) ParseText(s string) (any, error) {
	out, ferr := d.parseText(s)
	if ferr != nil {
		return nil, ferr
	}
	return out, nil
}

func (d Definition) parseText(s string) (any, *FieldError) {
	t := strings.TrimSpace(s)
	switch d.Type {
	case TypeText:
		return d.coerce(s)
	case TypeNumber:
		f, err := strconv.ParseFloat(t, 64)
		if err != nil {
			return nil, fieldErr(d.Key, ReasonTypeMismatch, "must be a number, got %q", truncate(s))
		}
		return d.coerce(f)
	case TypeBoolean:
		switch strings.ToLower(t) {
		case "true", "yes", "1":
			return true, nil
		case "false", "no", "0":
			return false, nil
		}
		return nil, fieldErr(d.Key, ReasonTypeMismatch, "must be true or false, got %q", truncate(s))
	case TypeDate:
		if ts, err := time.Parse(time.RFC3339, t); err == nil {
			return ts.Format(DateLayout), nil
		}
		return d.parseDate(t)
	default:
		return d.coerce(t)
	}
}

func (d Definition) parseDate(s string) (any, *FieldError) {
	day, err := time.Parse(DateLayout, s)
	if err != nil {
		return nil, fieldErr(d.Key, ReasonTypeMismatch, "must be a date written YYYY-MM-DD, got %q", truncate(s))
	}
	return day.Format(DateLayout), nil
}

func (d Definition) mismatch(v any, want string) *FieldError {
	return fieldErr(d.Key, ReasonTypeMismatch, "must be %s (field type %s), got %s", want, d.Type, jsonKind(v))
}

func (d Definition) optionList() string {
	const show = 10
	opts := d.Options
	more := ""
	if len(opts) > show {
		opts, more = opts[:show], fmt.Sprintf(" (and %d more)", len(d.Options)-show)
	}
	q := make([]string, len(opts))
	for i, o := range opts {
		q[i] = strconv.Quote(o)
	}
	return strings.Join(q, ", ") + more
}

func jsonKind(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case float64, float32, int, int64, json.Number:
		return "a number"
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case nil:
		return "null"
	}
	return fmt.Sprintf("a %T", v)
}

func truncate(s string) string {
	const limit = 40
	if utf8.RuneCountInString(s) <= limit {
		return s
	}
	return string([]rune(s)[:limit]) + "…"
}
