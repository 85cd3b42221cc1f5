package recipient

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/heraldmail/herald/services/recipient/internal/fields"
)

// Op compares a custom field's value in a filter.
type Op string

// Ops. Ranges apply to number and date fields only.
const (
	OpEq Op = "="
	OpGt Op = ">"
	OpGe Op = ">="
	OpLt Op = "<"
	OpLe Op = "<="
)

// MaxAttributeConditions is the most custom-field conditions a filter has.
const MaxAttributeConditions = 10

// Condition is a filter on one custom field, its value already of the field's type.
type Condition struct {
	Key   string `json:"key"`
	Op    Op     `json:"op"`
	Value any    `json:"value"`
}

// Filter selects recipients of a domain; every condition set must hold. The zero Filter
// matches every recipient.
type Filter struct {
	Status        Status      `json:"status,omitempty"`
	EmailPrefix   string      `json:"email_prefix,omitempty"`
	CreatedAfter  time.Time   `json:"created_after,omitzero"`
	CreatedBefore time.Time   `json:"created_before,omitzero"`
	Attributes    []Condition `json:"attributes,omitempty"`
}

// StatusOnly reports whether f filters on the status at most, which counters answer.
func (f Filter) StatusOnly() bool {
	return f.EmailPrefix == "" && f.CreatedAfter.IsZero() && f.CreatedBefore.IsZero() && len(f.Attributes) == 0
}

// fingerprint identifies f in a page token, so that a token is not used with another filter.
func (f Filter) fingerprint() string {
	b, _ := json.Marshal(f) //nolint:errchkjson // values are strings, numbers, booleans and times
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// RawFilter is a filter as a client writes it; ParseFilter checks it.
type RawFilter struct {
	Status        Status
	EmailPrefix   string
	CreatedAfter  time.Time
	CreatedBefore time.Time
	// Attributes are "<key><op><value>" conditions, e.g. "score>=10".
	Attributes []string
}

// ParseFilter checks raw against the workspace's field definitions: every condition names a
// field (retired ones too: their stored values can still be found), ranges apply to number
// and date fields, values parse as the field's type. field prefixes the names in errors.
func ParseFilter(field string, raw RawFilter, defs fields.Definitions) (Filter, error) {
	f := Filter{Status: raw.Status, CreatedAfter: raw.CreatedAfter, CreatedBefore: raw.CreatedBefore}
	if f.Status != "" && !f.Status.Valid() {
		return Filter{}, invalid(field+".status", "must be one of SUBSCRIBED, UNSUBSCRIBED, BOUNCED, COMPLAINED")
	}
	prefix := strings.ToLower(strings.TrimSpace(raw.EmailPrefix))
	if len(prefix) > MaxEmailLength {
		return Filter{}, invalid(field+".email_prefix", fmt.Sprintf("must be at most %d bytes", MaxEmailLength))
	}
	if strings.ContainsRune(prefix, 0) {
		return Filter{}, invalid(field+".email_prefix", "must not contain NUL characters")
	}
	f.EmailPrefix = prefix
	if !f.CreatedAfter.IsZero() && !f.CreatedBefore.IsZero() && !f.CreatedAfter.Before(f.CreatedBefore) {
		return Filter{}, invalid(field+".created_before", "must be after created_after")
	}
	if len(raw.Attributes) > MaxAttributeConditions {
		return Filter{}, invalid(field+".attributes", fmt.Sprintf("must be at most %d conditions", MaxAttributeConditions))
	}
	for _, s := range raw.Attributes {
		c, err := parseCondition(field+".attributes", s, defs)
		if err != nil {
			return Filter{}, err
		}
		f.Attributes = append(f.Attributes, c)
	}
	return f, nil
}

func parseCondition(field, s string, defs fields.Definitions) (Condition, error) {
	i := strings.IndexAny(s, "=<>")
	if i <= 0 {
		return Condition{}, invalid(field, fmt.Sprintf("%q must be <key><op><value> with op one of = > >= < <=, e.g. plan=pro", s))
	}
	key, rest := s[:i], s[i:]
	var op Op
	for _, o := range []Op{OpGe, OpLe, OpEq, OpGt, OpLt} {
		if strings.HasPrefix(rest, string(o)) {
			op = o
			break
		}
	}
	value := strings.TrimPrefix(rest, string(op))
	d, ok := defs.Lookup(key)
	if !ok {
		return Condition{}, invalid(field, fmt.Sprintf("%q is not a custom field of this workspace", key))
	}
	if op != OpEq && d.Type != fields.TypeNumber && d.Type != fields.TypeDate {
		return Condition{}, invalid(field, fmt.Sprintf("%s is a %s field: only = applies; ranges are for number and date fields", key, d.Type))
	}
	v, err := d.ParseText(value)
	if err != nil {
		return Condition{}, invalid(field, err.Error())
	}
	return Condition{Key: key, Op: op, Value: v}, nil
}

// Cursor is a position in a domain's recipients in keyset order (created_at, id).
type Cursor struct {
	CreatedAt time.Time
	ID        uuid.UUID
}

type pageToken struct {
	T time.Time `json:"t"`
	I uuid.UUID `json:"i"`
	F string    `json:"f"`
}

// encodeToken makes the opaque page token for the position c under filter f.
func encodeToken(c Cursor, f Filter) string {
	b, _ := json.Marshal(pageToken{T: c.CreatedAt, I: c.ID, F: f.fingerprint()}) //nolint:errchkjson // fixed types
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeToken reads a page token made for filter f.
func decodeToken(s string, f Filter) (Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	var tok pageToken
	if err == nil {
		err = json.Unmarshal(b, &tok)
	}
	if err != nil || tok.I == uuid.Nil || tok.T.IsZero() {
		return Cursor{}, invalid("page_token", "is not a token this service returned; start again without one")
	}
	if tok.F != f.fingerprint() {
		return Cursor{}, invalid("page_token", "was returned for another filter; use the same filter, or start again without a token")
	}
	return Cursor{CreatedAt: tok.T, ID: tok.I}, nil
}
