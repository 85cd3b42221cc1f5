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
		"/v1/workspaces/{workspaceId}/domains/{domainId}/recipients",
		"/v1/workspaces/{workspaceId}/domains/{domainId}/campaigns/{campaignId}",
		"/v1/workspaces/{workspaceId}/domains/{domainId}/events:batch",
	} {
		require.Contains(t, doc.Paths, path)
	}
}

func TestJSONReturnsCopy(t *testing.T) {
	t.Parallel()

	first := openapi.JSON()
	first[0] = 'x'
	require.True(t, json.Valid(openapi.JSON()))
}
