package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRecipientLifecycle drives recipients through the gateway as a client would: custom
// fields, validation against them, listing with filters and pages, update, erasure, and a
// bulk operation run by the worker.
func TestRecipientLifecycle(t *testing.T) {
	t.Parallel()
	s := shared(t)
	a := newAPI(t, s)
	tn := newTenant(t, s)
	fieldsPath := "/v1/workspaces/" + tn.workspace.String() + "/recipient-fields"

	code, raw := a.do(http.MethodPost, fieldsPath, tn.token, map[string]any{
		"key": "tier", "label": "Tier", "type": "FIELD_TYPE_ENUM", "options": []string{"free", "pro"},
		"required": true, "default_value": "free",
	}, nil)
	require.Equal(t, http.StatusOK, code, "create field: %s", raw)
	code, raw = a.do(http.MethodPost, fieldsPath, tn.token, map[string]any{"key": "score", "type": "FIELD_TYPE_NUMBER"}, nil)
	require.Equal(t, http.StatusOK, code, "create field: %s", raw)

	// Changing a field's type is refused; adding an option is not.
	code, raw = a.do(http.MethodPatch, fieldsPath+"/tier", tn.token, map[string]any{"type": "FIELD_TYPE_TEXT", "update_mask": "type"}, nil)
	require.Equal(t, http.StatusBadRequest, code, "type change: %s", raw)
	requireError(t, raw, "failed_precondition")
	code, raw = a.do(http.MethodPatch, fieldsPath+"/tier", tn.token, map[string]any{"options": []string{"free", "pro", "team"}, "update_mask": "options"}, nil)
	require.Equal(t, http.StatusOK, code, "add option: %s", raw)

	// Unknown attributes are refused, naming the attribute; a missing required one takes its default.
	code, raw = a.do(http.MethodPost, tn.path("/recipients"), tn.token, map[string]any{
		"email": "x@example.com", "attributes": map[string]any{"shoe_size": 44},
	}, nil)
	require.Equal(t, http.StatusBadRequest, code, "unknown attribute: %s", raw)
	require.Contains(t, requireError(t, raw, "invalid_argument").Message, "shoe_size")

	ids := make([]string, 0, 12)
	for i := range 12 {
		attrs := map[string]any{"score": i}
		if i%4 == 0 {
			attrs["tier"] = "pro"
		}
		var got recipientResponse
		code, raw = a.do(http.MethodPost, tn.path("/recipients"), tn.token, map[string]any{
			"email": fmt.Sprintf("life%02d@example.com", i), "attributes": attrs,
		}, &got)
		require.Equal(t, http.StatusOK, code, "create: %s", raw)
		if i%4 != 0 {
			require.Equal(t, "free", got.Recipient.Attributes["tier"])
		}
		ids = append(ids, got.Recipient.ID)
	}

	type page struct {
		Recipients     []recipient `json:"recipients"`
		NextPageToken  string      `json:"next_page_token"`
		TotalSize      string      `json:"total_size"`
		TotalSizeExact bool        `json:"total_size_exact"`
	}
	var seen []string
	token := ""
	for {
		q := url.Values{"page_size": {"5"}, "filter.attributes": {"score>=2"}}
		if token != "" {
			q.Set("page_token", token)
		}
		var p page
		code, raw = a.do(http.MethodGet, tn.path("/recipients?"+q.Encode()), tn.token, nil, &p)
		require.Equal(t, http.StatusOK, code, "list: %s", raw)
		require.Equal(t, "10", p.TotalSize)
		require.True(t, p.TotalSizeExact)
		for _, r := range p.Recipients {
			seen = append(seen, r.ID)
		}
		if token = p.NextPageToken; token == "" {
			break
		}
	}
	require.Equal(t, ids[2:], seen)

	code, raw = a.do(http.MethodPatch, tn.path("/recipients/"+ids[1]), tn.token, map[string]any{
		"attributes": map[string]any{"tier": "team"}, "status": "RECIPIENT_STATUS_UNSUBSCRIBED", "status_reason": "phone call",
	}, nil)
	require.Equal(t, http.StatusOK, code, "update: %s", raw)

	// Erased: gone, and the address is refused from then on.
	code, raw = a.do(http.MethodPost, tn.path("/recipients/"+ids[0]+":erase"), tn.token, map[string]any{}, nil)
	require.Equal(t, http.StatusOK, code, "erase: %s", raw)
	code, raw = a.do(http.MethodGet, tn.path("/recipients/"+ids[0]), tn.token, nil, nil)
	require.Equal(t, http.StatusNotFound, code, "erased: %s", raw)
	code, raw = a.do(http.MethodPost, tn.path("/recipients"), tn.token, map[string]any{"email": "LIFE00@example.com"}, nil)
	require.Equal(t, http.StatusBadRequest, code, "erased address: %s", raw)
	requireError(t, raw, "failed_precondition")

	// A bulk operation: every pro recipient (4, 8) unsubscribed by the worker.
	var created struct {
		Operation map[string]any `json:"operation"`
	}
	code, raw = a.do(http.MethodPost, tn.path("/bulk-operations"), tn.token, map[string]any{
		"action": "BULK_ACTION_UPDATE_STATUS", "status": "RECIPIENT_STATUS_UNSUBSCRIBED", "status_reason": "bulk",
		"filter": map[string]any{"attributes": []string{"tier=pro"}},
	}, &created)
	require.Equal(t, http.StatusOK, code, "create bulk operation: %s", raw)
	opID, _ := created.Operation["id"].(string)
	require.NotEmpty(t, opID)
	var op map[string]any
	require.Eventually(t, func() bool {
		var got struct {
			Operation map[string]any `json:"operation"`
		}
		code, _ := a.do(http.MethodGet, tn.path("/bulk-operations/"+opID), tn.token, nil, &got)
		op = got.Operation
		return code == http.StatusOK && op["state"] == "BULK_OPERATION_STATE_SUCCEEDED"
	}, 30*time.Second, 50*time.Millisecond, "the bulk operation never ended: %v", op)
	require.Equal(t, "2", op["matched"])
	require.Equal(t, "2", op["done"])
	require.InDelta(t, 100.0, op["percent"], 0)

	var p page
	code, raw = a.do(http.MethodGet, tn.path("/recipients?filter.status=RECIPIENT_STATUS_UNSUBSCRIBED"), tn.token, nil, &p)
	require.Equal(t, http.StatusOK, code, "list: %s", raw)
	require.Equal(t, "3", p.TotalSize)
	require.Len(t, p.Recipients, 3)

	// The worker's batch call is not a route of the gateway.
	code, _ = a.do(http.MethodPost, tn.path("/bulk-operations/"+opID+":run"), tn.token, map[string]any{}, nil)
	require.Contains(t, []int{http.StatusNotFound, http.StatusMethodNotAllowed}, code)
}
