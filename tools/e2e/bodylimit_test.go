package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// TestBodyLimitPerRoute sends a body over HTTP_BODY_LIMIT (1 MiB by default) but under the
// limit events:batch has of its own: the batch is ingested, and the same size on another
// route is refused with 413.
func TestBodyLimitPerRoute(t *testing.T) {
	t.Parallel()
	s := shared(t)
	a := newAPI(t, s)
	tn := newTenant(t, s)
	r := createRecipient(t, a, tn)
	c := createCampaign(t, a, tn)

	const n = 600
	url := "https://example.com/landing?ref=" + strings.Repeat("x", 2000)
	now := time.Now().UTC().Format(time.RFC3339Nano)
	events := make([]map[string]any, n)
	for i := range events {
		events[i] = map[string]any{
			"id": uuid.NewString(), "type": "EVENT_TYPE_CLICK", "campaign_id": c.ID, "recipient_id": r.ID,
			"occur_time": now, "url": url,
		}
	}
	batch := map[string]any{"events": events}
	require.Greater(t, n*len(url), 1<<20, "the batch must be over the default limit")

	var res ingestResponse
	code, raw := a.do(http.MethodPost, tn.path("/events:batch"), tn.token, batch, &res)
	require.Equal(t, http.StatusOK, code, "ingest: %.300s", raw)
	require.Equal(t, ingestResponse{Accepted: n}, res)

	code, raw = a.do(http.MethodPost, tn.path("/recipients"), tn.token, map[string]any{
		"email": "big-" + uuid.NewString()[:8] + "@example.com", "attributes": map[string]any{"pad": strings.Repeat("x", 1<<20+1)},
	}, nil)
	require.Equal(t, http.StatusRequestEntityTooLarge, code, "%.300s", raw)
	requireError(t, raw, "request_too_large")
}
