package app

import (
	"bytes"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/config"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/heraldmail/herald/libs/tracking"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

const (
	testTrackingSecret = "gateway-test-tracking-secret-0123456789abc"
	testWebhookSecret  = "gateway-test-webhook-secret-0123456789abcd"
)

// TestTrackingRoutes runs the gateway with the tracking secrets set: the public routes are
// served on the public port without a credential, through the request id and the trusted
// proxy's client address, and reach events-ingest with a service token narrowed to the
// token's partition.
func TestTrackingRoutes(t *testing.T) {
	t.Parallel()
	b := startBackends(t, testSecret)
	g := startGateway(t, b, map[string]string{
		"TRACKING_SECRET":         testTrackingSecret,
		"TRACKING_WEBHOOK_SECRET": testWebhookSecret,
	})
	keys, err := tracking.NewKeys(testTrackingSecret)
	require.NoError(t, err)
	links, err := tracking.NewLinks(g.public, keys)
	require.NoError(t, err)
	m := tracking.Message{CompanyID: uuid.New(), WorkspaceID: uuid.New(), DomainID: uuid.New(), CampaignID: uuid.New(), RecipientID: uuid.New()}

	open, err := links.Open(m)
	require.NoError(t, err)
	res := g.do(t, http.MethodGet, open, nil, nil)
	require.Equal(t, http.StatusOK, res.status)
	require.Equal(t, "image/gif", res.header.Get("Content-Type"))
	require.NotEmpty(t, res.header.Get("X-Request-Id"))

	_, principals, ids := b.calls.seen()
	require.Len(t, principals, 1)
	p := principals[0]
	require.Equal(t, tenancy.KindService, p.Kind)
	require.Equal(t, m.CompanyID, p.CompanyID)
	require.Equal(t, m.WorkspaceID, p.WorkspaceID)
	require.Equal(t, m.DomainID, p.DomainID)
	require.Equal(t, []string{res.header.Get("X-Request-Id")}, ids, "the request id reaches the service")

	// A tampered token: 404 in the error shape, nothing forwarded.
	res = g.do(t, http.MethodGet, open[:len(open)-3]+"AAA", nil, nil)
	require.Equal(t, http.StatusNotFound, res.status)
	require.Equal(t, "not_found", decodeError(t, res).Code)
	_, principals, _ = b.calls.seen()
	require.Len(t, principals, 1)

	// The webhook is served too, and refuses an unsigned request.
	res = g.do(t, http.MethodPost, g.public+tracking.PathWebhook, bytes.NewReader([]byte(`{"events":[]}`)), nil)
	require.Equal(t, http.StatusUnauthorized, res.status)
	require.Equal(t, "unauthenticated", decodeError(t, res).Code)

	// The routes' metrics are on the admin port.
	metrics := g.do(t, http.MethodGet, g.admin+"/metrics", nil, nil)
	require.Contains(t, string(metrics.body), `herald_tracking_requests_total{kind="open",result="recorded"} 1`)
	require.Contains(t, string(metrics.body), `route="/track/open/{token}"`)
}

// TestTrackingRoutesOff: without TRACKING_SECRET the routes do not exist.
func TestTrackingRoutesOff(t *testing.T) {
	t.Parallel()
	g := startGateway(t, startBackends(t, testSecret), nil)
	for _, path := range []string{tracking.PathOpen + "x", tracking.PathClick + "x"} {
		res := g.do(t, http.MethodGet, g.public+path, nil, nil)
		require.Equal(t, http.StatusNotFound, res.status, path)
	}
	res := g.do(t, http.MethodPost, g.public+tracking.PathWebhook, strings.NewReader("{}"), nil)
	require.Equal(t, http.StatusNotFound, res.status)
}

func TestTrackingConfig(t *testing.T) {
	t.Parallel()
	base := map[string]string{
		"DATABASE_URL": "postgres://herald@127.0.0.1:1/herald",
		"JWT_SECRET":   testSecret,
	}
	other := "another-tracking-secret-0123456789abcdefg"
	for _, tt := range []struct {
		name string
		set  map[string]string
		want string
	}{
		{"secret too short", map[string]string{"TRACKING_SECRET": "short"}, "TRACKING_SECRET"},
		{"previous without current", map[string]string{"TRACKING_SECRET_PREVIOUS": other}, "TRACKING_SECRET_PREVIOUS"},
		{"previous is current", map[string]string{"TRACKING_SECRET": other, "TRACKING_SECRET_PREVIOUS": other}, "TRACKING_SECRET_PREVIOUS"},
		{"webhook without tracking", map[string]string{"TRACKING_WEBHOOK_SECRET": testWebhookSecret}, "TRACKING_WEBHOOK_SECRET"},
		{"webhook is the tracking secret", map[string]string{"TRACKING_SECRET": other, "TRACKING_WEBHOOK_SECRET": other}, "TRACKING_WEBHOOK_SECRET"},
		{"webhook too short", map[string]string{"TRACKING_SECRET": other, "TRACKING_WEBHOOK_SECRET": "short"}, "TRACKING_WEBHOOK_SECRET"},
		{"webhook previous without current", map[string]string{"TRACKING_SECRET": other, "TRACKING_WEBHOOK_SECRET_PREVIOUS": testWebhookSecret}, "TRACKING_WEBHOOK_SECRET_PREVIOUS"},
		{"tolerance too long", map[string]string{"TRACKING_WEBHOOK_TOLERANCE": "2h"}, "TRACKING_WEBHOOK_TOLERANCE"},
		{"tolerance too short", map[string]string{"TRACKING_WEBHOOK_TOLERANCE": "1s"}, "TRACKING_WEBHOOK_TOLERANCE"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			vars := maps.Clone(base)
			maps.Copy(vars, tt.set)
			err := Run(t.Context(), zap.NewNop(), config.FromMap(vars, nil))
			var cerr *config.Error
			require.ErrorAs(t, err, &cerr)
			require.Equal(t, tt.want, cerr.Var)
		})
	}

	var cfg Config
	require.NoError(t, config.Load(&cfg, config.FromMap(base, map[string]string{})))
	require.Empty(t, cfg.Tracking.Secret, "off unless set")
	require.Equal(t, 5*time.Minute, cfg.Tracking.WebhookTolerance)

	vars := maps.Clone(base)
	vars["TRACKING_SECRET_FILE"] = "/run/secrets/tracking"
	require.NoError(t, config.Load(&cfg, config.FromMap(vars, map[string]string{"/run/secrets/tracking": testTrackingSecret})))
	require.Equal(t, testTrackingSecret, cfg.Tracking.Secret, "read from the file")
}
