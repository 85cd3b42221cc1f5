package fields_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldmail/herald/services/recipient/internal/fields"
)

func defs() fields.Definitions {
	return fields.Definitions{
		{Key: "first_name", Type: fields.TypeText},
		{Key: "score", Type: fields.TypeNumber},
		{Key: "vip", Type: fields.TypeBoolean},
		{Key: "joined", Type: fields.TypeDate},
		{Key: "plan", Type: fields.TypeEnum, Options: []string{"free", "pro"}, Required: true, Default: "free"},
		{Key: "country", Type: fields.TypeText, Required: true},
		{Key: "legacy", Type: fields.TypeText, RetiredAt: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
}

func reasons(t *testing.T, err error) map[string]fields.Reason {
	t.Helper()
	require.ErrorIs(t, err, fields.ErrInvalidAttributes)
	var es fields.Errors
	require.ErrorAs(t, err, &es)
	out := map[string]fields.Reason{}
	for _, e := range es {
		out[e.Key] = e.Reason
	}
	return out
}

func TestValidate(t *testing.T) {
	t.Parallel()
	in := map[string]any{"first_name": "Ada", "score": 3, "vip": true, "joined": "2030-02-03", "country": "UK"}
	got, err := defs().Validate(in)
	require.NoError(t, err)
	require.Equal(t, map[string]any{"first_name": "Ada", "score": 3.0, "vip": true, "joined": "2030-02-03", "country": "UK", "plan": "free"}, got)
	require.Equal(t, 3, in["score"], "the input is not modified")

	_, err = defs().Validate(map[string]any{
		"nope": 1, "legacy": "x", "score": "3", "vip": "yes", "joined": "03/02/2030",
		"plan": "gold", "first_name": strings.Repeat("é", fields.MaxTextLength+1),
	})
	require.Equal(t, map[string]fields.Reason{
		"nope":       fields.ReasonUnknown,
		"legacy":     fields.ReasonRetired,
		"score":      fields.ReasonTypeMismatch,
		"vip":        fields.ReasonTypeMismatch,
		"joined":     fields.ReasonTypeMismatch,
		"plan":       fields.ReasonInvalidValue,
		"first_name": fields.ReasonInvalidValue,
		"country":    fields.ReasonRequired,
	}, reasons(t, err))
	require.Contains(t, err.Error(), "attributes.nope: is not a custom field of this workspace")

	_, err = defs().Validate(map[string]any{"country": "UK", "score": math.Inf(1)})
	require.Equal(t, map[string]fields.Reason{"score": fields.ReasonInvalidValue}, reasons(t, err))

	// A null is no value: a required field with a null is missing, an optional one dropped.
	got, err = defs().Validate(map[string]any{"country": "UK", "vip": nil, "plan": nil})
	require.NoError(t, err)
	require.Equal(t, map[string]any{"country": "UK", "plan": "free"}, got)
	_, err = defs().Validate(map[string]any{"country": nil})
	require.Equal(t, map[string]fields.Reason{"country": fields.ReasonRequired}, reasons(t, err))

	var fe *fields.FieldError
	require.True(t, errors.As(err, &fe))
	require.Equal(t, "country", fe.Key)

	_, err = fields.Definitions(nil).Validate(map[string]any{"anything": 1})
	require.Equal(t, map[string]fields.Reason{"anything": fields.ReasonUnknown}, reasons(t, err))
}

func TestValidatePatch(t *testing.T) {
	t.Parallel()
	cur := map[string]any{"country": "UK", "plan": "pro", "legacy": "kept", "vip": true}
	got, err := defs().ValidatePatch(cur, map[string]any{"vip": nil, "score": 1.5})
	require.NoError(t, err)
	require.Equal(t, map[string]any{"country": "UK", "plan": "pro", "legacy": "kept", "score": 1.5}, got)
	require.Equal(t, true, cur["vip"], "current is not modified")

	_, err = defs().ValidatePatch(cur, map[string]any{"legacy": "new"})
	require.Equal(t, map[string]fields.Reason{"legacy": fields.ReasonRetired}, reasons(t, err))
	_, err = defs().ValidatePatch(cur, map[string]any{"country": nil})
	require.Equal(t, map[string]fields.Reason{"country": fields.ReasonRequired}, reasons(t, err))
}

func TestValidateText(t *testing.T) {
	t.Parallel()
	got, err := defs().ValidateText(map[string]string{
		"first_name": " Ada ", "score": " 4.5 ", "vip": "Yes", "joined": "2030-02-03T10:00:00Z", "country": "UK", "plan": "",
	})
	require.NoError(t, err)
	require.Equal(t, map[string]any{"first_name": " Ada ", "score": 4.5, "vip": true, "joined": "2030-02-03", "country": "UK", "plan": "free"}, got)

	_, err = defs().ValidateText(map[string]string{"score": "many", "vip": "perhaps", "nope": "x", "country": "UK", "legacy": "y"})
	require.Equal(t, map[string]fields.Reason{
		"score": fields.ReasonTypeMismatch, "vip": fields.ReasonTypeMismatch,
		"nope": fields.ReasonUnknown, "legacy": fields.ReasonRetired,
	}, reasons(t, err))
}

func TestApply(t *testing.T) {
	t.Parallel()
	now := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	cur := fields.Definition{Key: "tier", Label: "Tier", Type: fields.TypeEnum, Options: []string{"a", "b"}}
	label := "Level"
	next, err := fields.Apply(cur, fields.Update{Label: &label, Options: []string{"b", "a", "c"}, SetDefault: true, Default: "c"}, now)
	require.NoError(t, err)
	require.Equal(t, "Level", next.Label)
	require.Equal(t, []string{"a", "b", "c"}, next.Options, "current options keep their order")
	require.Equal(t, "c", next.Default)
	require.Equal(t, now, next.UpdatedAt)
	require.Equal(t, []string{"a", "b"}, cur.Options)

	text := fields.TypeText
	required := true
	for name, u := range map[string]fields.Update{
		"type":           {Type: &text},
		"required":       {Required: &required},
		"removed option": {Options: []string{"a"}},
	} {
		_, err := fields.Apply(cur, u, now)
		require.ErrorIs(t, err, fields.ErrNotAdditive, name)
	}
	_, err = fields.Apply(cur, fields.Update{SetDefault: true, Default: "z"}, now)
	require.ErrorIs(t, err, fields.ErrInvalid)
	cleared, err := fields.Apply(next, fields.Update{SetDefault: true}, now)
	require.NoError(t, err)
	require.Nil(t, cleared.Default)

	retired := cur
	retired.RetiredAt = now
	_, err = fields.Apply(retired, fields.Update{Label: &label}, now)
	require.ErrorIs(t, err, fields.ErrNotAdditive)
}

func TestValidateKey(t *testing.T) {
	t.Parallel()
	for _, k := range []string{"a", "first_name", "x1", "utm_source_2"} {
		require.NoError(t, fields.ValidateKey("key", k), k)
	}
	for _, k := range []string{"", "First", "1a", "_a", "a_", "a__b", "a-b", "a b", "é", strings.Repeat("a", fields.MaxKeyLength+1)} {
		require.ErrorIs(t, fields.ValidateKey("key", k), fields.ErrInvalid, k)
	}
}
