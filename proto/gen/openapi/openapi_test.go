package openapi_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldmail/herald/proto/gen/openapi"
)

func TestJSON(t *testing.T) {
	t.Parallel()

	var doc struct {
		Swagger string                     `json:"swagger"`
		Paths   map[string]json.RawMessage `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(openapi.JSON(), &doc))
	require.Equal(t, "2.0", doc.Swagger)
	for _, path := range []string{
		"/v1/workspaces/{workspace_id}/domains/{domain_id}/recipients",
		"/v1/workspaces/{workspace_id}/domains/{domain_id}/campaigns/{campaign_id}",
		"/v1/workspaces/{workspace_id}/domains/{domain_id}/events:batch",
		"/v1/auth/login",
	} {
		_, ok := doc.Paths[path]
		require.True(t, ok, "the spec has no path %s", path)
	}
}

func TestJSONReturnsCopy(t *testing.T) {
	t.Parallel()

	first := openapi.JSON()
	first[0] = 'x'
	require.True(t, json.Valid(openapi.JSON()))
}
