package app

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/config"
	"github.com/heraldmail/herald/libs/process"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/heraldmail/herald/migrations/pgtest"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
)

const (
	testSecret   = "gateway-test-secret-with-at-least-32-bytes"
	testFrontend = "http://localhost:3000"
	testLimit    = 1024
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/jackc/pgx/v5/pgxpool.(*Pool).backgroundHealthCheck"))
}

// gatewayURL is a new database of the test's own, as the gateway's role.
func gatewayURL(t *testing.T) string {
	t.Helper()
	return pgtest.URLAs(t, pgtest.URL(t), "herald_gateway")
}

// randomClientIP is an address from the benchmarking range, so that each gateway of the tests
// has login attempts of its own.
func randomClientIP() string {
	b := uuid.New()
	return "198.18." + strconv.Itoa(int(b[0])) + "." + strconv.Itoa(int(b[1]))
}

// freePort returns a port that was free a moment ago (config refuses port 0).
func freePort(t *testing.T) int {
	t.Helper()
	var lc net.ListenConfig
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	return port
}

// gateway is an app.Run started in-process. Its requests come, through a trusted proxy on the
// loopback, from clientIP.
type gateway struct {
	public, admin string
	publicAddr    string
	clientIP      string
	client        *http.Client
	cancel        context.CancelFunc
	done          chan error
	stopOnce      sync.Once
	stopErr       error
}

// startGateway runs the gateway in front of b with a fresh database (unless env names one)
// and the test Redis, and waits until it answers.
func startGateway(t *testing.T, b *backends, env map[string]string) *gateway {
	t.Helper()
	return startGatewayWith(t, b, env)
}

// startGatewayWith is startGateway with changes to the process options (the feature flag
// provider's).
func startGatewayWith(t *testing.T, b *backends, env map[string]string, tune ...func(*process.Options)) *gateway {
	t.Helper()
	redisHost, redisPort, err := net.SplitHostPort(pgtest.RedisAddr(t))
	require.NoError(t, err)
	port, adminPort := freePort(t), freePort(t)
	vars := map[string]string{
		"APP_ENV":             "test",
		"LOG_LEVEL":           "error",
		"PORT":                strconv.Itoa(port),
		"ADMIN_PORT":          strconv.Itoa(adminPort),
		"TRUSTED_PROXIES":     "127.0.0.1",
		"REDIS_HOST":          redisHost,
		"REDIS_PORT":          redisPort,
		"JWT_SECRET":          testSecret,
		"FRONTEND_URL":        testFrontend,
		"RECIPIENT_GRPC_ADDR": b.recipientAddr,
		"CAMPAIGN_GRPC_ADDR":  b.campaignAddr,
		"EVENTS_GRPC_ADDR":    b.eventsAddr,
		"HTTP_BODY_LIMIT":     strconv.Itoa(testLimit),
		"DRAIN_DELAY":         "0s",
		"SHUTDOWN_TIMEOUT":    "10s",
	}
	maps.Copy(vars, env)
	if vars["DATABASE_URL"] == "" {
		vars["DATABASE_URL"] = gatewayURL(t)
	}

	ctx, cancel := context.WithCancel(context.Background())
	g := &gateway{
		public:     "http://127.0.0.1:" + strconv.Itoa(port),
		admin:      "http://127.0.0.1:" + strconv.Itoa(adminPort),
		publicAddr: "127.0.0.1:" + strconv.Itoa(port),
		clientIP:   randomClientIP(),
		client:     &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second},
		cancel:     cancel,
		done:       make(chan error, 1),
	}
	go func() { g.done <- run(ctx, zap.NewNop(), config.FromMap(vars, nil), tune...) }()
	t.Cleanup(func() {
		_ = g.stop()
		g.client.CloseIdleConnections()
	})

	deadline := time.After(15 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := g.get(t, g.public+"/health/live")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return g
			}
		}
		select {
		case err := <-g.done:
			g.done <- err
			t.Fatalf("gateway exited at start: %v", err)
		case <-deadline:
			t.Fatal("gateway did not start in time")
		case <-tick.C:
		}
	}
}

// stop cancels Run's context and returns what Run returned.
func (g *gateway) stop() error {
	g.stopOnce.Do(func() {
		g.cancel()
		select {
		case g.stopErr = <-g.done:
		case <-time.After(30 * time.Second):
			g.stopErr = errors.New("run did not return after cancel")
		}
	})
	return g.stopErr
}

// get sends a GET; errors are the caller's to judge (the server may be gone on purpose).
func (g *gateway) get(t *testing.T, url string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	require.NoError(t, err)
	return g.client.Do(req)
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (g *gateway) do(t *testing.T, method, url string, body io.Reader, header map[string]string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, body)
	require.NoError(t, err)
	req.Header.Set("X-Forwarded-For", g.clientIP)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := g.client.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// errorBody is the REST error shape.
type errorBody struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Details   []any  `json:"details"`
	RequestID string `json:"request_id"`
}

func decodeError(t *testing.T, r response) errorBody {
	t.Helper()
	var e errorBody
	require.NoError(t, json.Unmarshal(r.body, &e), string(r.body))
	require.NotNil(t, e.Details, "details is always a list")
	require.NotEmpty(t, e.RequestID)
	require.Equal(t, r.header.Get("X-Request-Id"), e.RequestID)
	return e
}

func recipientsURL(g *gateway, tn tenant) string {
	return g.public + "/v1/workspaces/" + tn.workspace + "/domains/" + tn.domain + "/recipients"
}

func TestRun(t *testing.T) {
	t.Parallel()
	b := startBackends(t, testSecret)
	g := startGateway(t, b, nil)
	tn := signUp(t, g)
	token := tn.bearer()
	auth := map[string]string{"Authorization": "Bearer " + token, "Content-Type": "application/json"}

	t.Run("api", func(t *testing.T) {
		t.Run("create and get recipient", func(t *testing.T) {
			t.Parallel()
			r := g.do(t, http.MethodPost, recipientsURL(g, tn), strings.NewReader(`{"email":"ada@example.com"}`),
				map[string]string{"Authorization": "Bearer " + token, "X-Request-Id": "create-ada-1"})
			require.Equal(t, http.StatusOK, r.status, string(r.body))
			require.Equal(t, "create-ada-1", r.header.Get("X-Request-Id"))
			var created struct {
				Recipient map[string]any `json:"recipient"`
			}
			require.NoError(t, json.Unmarshal(r.body, &created))
			require.Equal(t, "ada@example.com", created.Recipient["email"])
			require.Equal(t, tn.workspace, created.Recipient["workspace_id"], "fields use proto (snake_case) names")
			require.Equal(t, tn.domain, created.Recipient["domain_id"])
			require.Equal(t, "RECIPIENT_STATUS_SUBSCRIBED", created.Recipient["status"])
			require.NotContains(t, created.Recipient, "status_reason", "unset fields are omitted")

			r = g.do(t, http.MethodGet, recipientsURL(g, tn)+"/"+knownRecipientID, nil, auth)
			require.Equal(t, http.StatusOK, r.status, string(r.body))
			require.Contains(t, string(r.body), `"id":"`+knownRecipientID+`"`)

			authz, principals, ids := b.calls.seen()
			require.NotEmpty(t, authz)
			for _, a := range authz {
				require.NotEqual(t, "Bearer "+token, a, "the caller's own token never reaches the service")
			}
			for _, p := range principals {
				require.Equal(t, tn.userID, p.Subject)
				require.Equal(t, tn.companyID, p.CompanyID.String())
				require.Equal(t, tn.workspace, p.WorkspaceID.String(), "the token is narrowed to the route")
				require.Equal(t, tn.domain, p.DomainID.String())
				require.Equal(t, "owner", p.Role)
			}
			require.Contains(t, ids, "create-ada-1", "the request id reaches the service")
		})

		t.Run("campaign and events routes", func(t *testing.T) {
			t.Parallel()
			base := g.public + "/v1/workspaces/" + tn.workspace + "/domains/" + tn.domain
			campaignID := uuid.NewString()
			r := g.do(t, http.MethodGet, base+"/campaigns/"+campaignID, nil, auth)
			require.Equal(t, http.StatusOK, r.status, string(r.body))
			require.Contains(t, string(r.body), `"name":"Spring sale"`)

			r = g.do(t, http.MethodPost, base+"/events:batch",
				strings.NewReader(`{"events":[{"id":"`+uuid.NewString()+`","type":"EVENT_TYPE_OPEN"}]}`), auth)
			require.Equal(t, http.StatusOK, r.status, string(r.body))
			require.JSONEq(t, `{"accepted":1}`, string(r.body))
		})

		t.Run("no token", func(t *testing.T) {
			t.Parallel()
			r := g.do(t, http.MethodGet, recipientsURL(g, tn)+"/"+knownRecipientID, nil, nil)
			require.Equal(t, http.StatusUnauthorized, r.status)
			e := decodeError(t, r)
			require.Equal(t, "unauthenticated", e.Code)

			r = g.do(t, http.MethodGet, recipientsURL(g, tn)+"/"+knownRecipientID, nil,
				map[string]string{"Authorization": "Bearer " + signTokenWith(t, "another-secret-that-is-32-bytes-long!!")})
			require.Equal(t, http.StatusUnauthorized, r.status)
			require.Equal(t, "unauthenticated", decodeError(t, r).Code)
		})

		t.Run("not found", func(t *testing.T) {
			t.Parallel()
			r := g.do(t, http.MethodGet, recipientsURL(g, tn)+"/"+uuid.NewString(), nil, auth)
			require.Equal(t, http.StatusNotFound, r.status)
			e := decodeError(t, r)
			require.Equal(t, "not_found", e.Code)
			require.Equal(t, "recipient not found", e.Message)
			require.Empty(t, e.Details)
		})

		t.Run("invalid argument", func(t *testing.T) {
			t.Parallel()
			r := g.do(t, http.MethodPost, recipientsURL(g, tn), strings.NewReader(`{"email":""}`), auth)
			require.Equal(t, http.StatusBadRequest, r.status)
			e := decodeError(t, r)
			require.Equal(t, "invalid_argument", e.Code)
			require.Equal(t, "email is required", e.Message)

			r = g.do(t, http.MethodPost, recipientsURL(g, tn), strings.NewReader(`{"email":`), auth)
			require.Equal(t, http.StatusBadRequest, r.status)
			require.Equal(t, "invalid_argument", decodeError(t, r).Code)
		})

		t.Run("body over the limit", func(t *testing.T) {
			t.Parallel()
			big := `{"email":"` + strings.Repeat("a", testLimit) + `@example.com"}`
			r := g.do(t, http.MethodPost, recipientsURL(g, tn), strings.NewReader(big), auth)
			require.Equal(t, http.StatusRequestEntityTooLarge, r.status)
			require.Equal(t, "request_too_large", decodeError(t, r).Code)

			// Without a declared length the limit applies while reading.
			r = g.do(t, http.MethodPost, recipientsURL(g, tn), io.MultiReader(strings.NewReader(big)), auth)
			require.Equal(t, http.StatusRequestEntityTooLarge, r.status)
			require.Equal(t, "request_too_large", decodeError(t, r).Code)

			// events:batch has a limit of its own (RouteBodyLimits): a body over the default
			// passes there, with or without a declared length.
			batch := `{"events":[{"id":"` + uuid.NewString() + `","type":"EVENT_TYPE_OPEN","user_agent":"` +
				strings.Repeat("a", 2*testLimit) + `"}]}`
			events := g.public + "/v1/workspaces/" + tn.workspace + "/domains/" + tn.domain + "/events:batch"
			r = g.do(t, http.MethodPost, events, strings.NewReader(batch), auth)
			require.Equal(t, http.StatusOK, r.status, string(r.body))
			r = g.do(t, http.MethodPost, events, io.MultiReader(strings.NewReader(batch)), auth)
			require.Equal(t, http.StatusOK, r.status, string(r.body))
		})

		t.Run("unknown route and wrong method", func(t *testing.T) {
			t.Parallel()
			r := g.do(t, http.MethodGet, g.public+"/v1/nothing/here", nil, auth)
			require.Equal(t, http.StatusNotFound, r.status)
			require.Equal(t, "not_found", decodeError(t, r).Code)

			r = g.do(t, http.MethodPut, recipientsURL(g, tn)+"/"+knownRecipientID, nil, auth)
			require.Equal(t, http.StatusMethodNotAllowed, r.status)
			require.Equal(t, "method_not_allowed", decodeError(t, r).Code)
		})

		t.Run("cors", func(t *testing.T) {
			t.Parallel()
			preflight := func(origin string) response {
				return g.do(t, http.MethodOptions, recipientsURL(g, tn), nil, map[string]string{
					"Origin":                         origin,
					"Access-Control-Request-Method":  "POST",
					"Access-Control-Request-Headers": "authorization,content-type",
				})
			}
			r := preflight(testFrontend)
			require.Equal(t, http.StatusNoContent, r.status)
			require.Equal(t, testFrontend, r.header.Get("Access-Control-Allow-Origin"))
			require.Contains(t, r.header.Get("Access-Control-Allow-Methods"), "POST")
			require.Contains(t, r.header.Get("Access-Control-Allow-Headers"), "Authorization")

			r = preflight("https://attacker.example.com")
			require.NotEqual(t, http.StatusNoContent, r.status)
			require.Empty(t, r.header.Get("Access-Control-Allow-Origin"))

			r = g.do(t, http.MethodGet, recipientsURL(g, tn)+"/"+knownRecipientID, nil, map[string]string{
				"Authorization": "Bearer " + token, "Origin": testFrontend,
			})
			require.Equal(t, http.StatusOK, r.status)
			require.Equal(t, testFrontend, r.header.Get("Access-Control-Allow-Origin"))
		})

		t.Run("openapi", func(t *testing.T) {
			t.Parallel()
			r := g.do(t, http.MethodGet, g.public+"/openapi.json", nil, nil)
			require.Equal(t, http.StatusOK, r.status)
			require.Equal(t, "application/json", r.header.Get("Content-Type"))
			var doc struct {
				Swagger string         `json:"swagger"`
				Paths   map[string]any `json:"paths"`
			}
			require.NoError(t, json.Unmarshal(r.body, &doc))
			require.Equal(t, "2.0", doc.Swagger)
			require.NotEmpty(t, doc.Paths)
			for _, op := range []string{"RecipientService_CreateRecipient", "CampaignService_GetCampaign", "EventsIngestService_IngestEvents", "IdentityService_SignUp"} {
				require.Contains(t, string(r.body), `"operationId": "`+op+`"`)
			}
		})

		t.Run("health", func(t *testing.T) {
			t.Parallel()
			for _, base := range []string{g.public, g.admin} {
				r := g.do(t, http.MethodGet, base+"/health", nil, nil)
				require.Equal(t, http.StatusOK, r.status, string(r.body))
				var rep struct {
					Status string                    `json:"status"`
					Info   map[string]map[string]any `json:"info"`
				}
				require.NoError(t, json.Unmarshal(r.body, &rep))
				require.Equal(t, "ok", rep.Status)
				require.Equal(t, "up", rep.Info["database"]["status"])
				require.Equal(t, "up", rep.Info["redis"]["status"])

				for _, p := range []string{"/health/live", "/health/ready"} {
					r = g.do(t, http.MethodGet, base+p, nil, nil)
					require.Equal(t, http.StatusOK, r.status, p)
				}
			}
			r := g.do(t, http.MethodGet, g.admin+"/metrics", nil, nil)
			require.Equal(t, http.StatusOK, r.status)
			require.Contains(t, string(r.body), "herald_db_pool_max_connections")
		})
	})

	// The route label is a pattern: no recipient id in any series.
	r := g.do(t, http.MethodGet, g.admin+"/metrics", nil, nil)
	require.Contains(t, string(r.body), `route="/v1/workspaces/{workspace_id}/domains/{domain_id}/recipients/{recipient_id}"`)
	require.NotContains(t, string(r.body), knownRecipientID)

	require.NoError(t, g.stop())
}

func signTokenWith(t *testing.T, secret string) string {
	t.Helper()
	tok, err := tenancy.NewSigner(secret).Sign("user-1", uuid.New(), tenancy.KindUser, 5*time.Minute)
	require.NoError(t, err)
	return tok
}

// A request in flight when shutdown starts completes; readiness reports 503 during the drain
// and the public port stops accepting before the request is answered.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	b := startBackends(t, testSecret)
	g := startGateway(t, b, map[string]string{"DRAIN_DELAY": "1s"})
	tn := signUp(t, g)
	token := tn.bearer()
	released := sync.OnceFunc(func() { close(b.recipients.release) })
	t.Cleanup(released)

	inflight := make(chan response, 1)
	go func() {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, recipientsURL(g, tn)+"/"+slowRecipientID, nil)
		if err != nil {
			inflight <- response{}
			return
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("X-Forwarded-For", g.clientIP)
		resp, err := g.client.Do(req)
		if err != nil {
			inflight <- response{}
			return
		}
		defer func() { _ = resp.Body.Close() }()
		body, _ := io.ReadAll(resp.Body)
		inflight <- response{status: resp.StatusCode, body: body}
	}()
	select {
	case <-b.recipients.slowStarted:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow call never reached the service")
	}

	stopped := make(chan error, 1)
	go func() { stopped <- g.stop() }()

	// Readiness turns 503 at once, while the process keeps serving.
	waitFor(t, "admin readiness to report 503", func() bool {
		resp, err := g.get(t, g.admin+"/health/ready")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	// After the drain delay the public port stops accepting, yet the request is still open.
	waitFor(t, "the public port to stop accepting", func() bool {
		d := net.Dialer{Timeout: time.Second}
		conn, err := d.DialContext(t.Context(), "tcp", g.publicAddr)
		if err != nil {
			return true
		}
		_ = conn.Close()
		return false
	})
	select {
	case <-inflight:
		t.Fatal("the in-flight request ended before the service answered")
	default:
	}

	released()
	select {
	case r := <-inflight:
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		require.Contains(t, string(r.body), slowRecipientID)
	case <-time.After(15 * time.Second):
		t.Fatal("the in-flight request did not complete")
	}
	select {
	case err := <-stopped:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return")
	}
}

// waitFor polls cond until it holds or 10 seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	t.Parallel()
	base := map[string]string{
		"DATABASE_URL": "postgres://herald@127.0.0.1:1/herald",
		"JWT_SECRET":   testSecret,
	}
	tests := []struct {
		name string
		set  map[string]string
		want string
	}{
		{"missing secret", map[string]string{"JWT_SECRET": ""}, "JWT_SECRET"},
		{"frontend with path", map[string]string{"FRONTEND_URL": "https://app.example.com/login"}, "FRONTEND_URL"},
		{"frontend not a url", map[string]string{"FRONTEND_URL": "app.example.com"}, "FRONTEND_URL"},
		{"port out of range", map[string]string{"PORT": "70000"}, "PORT"},
		{"body limit zero", map[string]string{"HTTP_BODY_LIMIT": "0"}, "HTTP_BODY_LIMIT"},
		{"previous secret too short", map[string]string{"JWT_SECRET_PREVIOUS": "short"}, "JWT_SECRET_PREVIOUS"},
		{"previous secret is the current one", map[string]string{"JWT_SECRET_PREVIOUS": testSecret}, "JWT_SECRET_PREVIOUS"},
		{"access token too long-lived", map[string]string{"JWT_EXPIRY": "48h"}, "JWT_EXPIRY"},
		{"refresh shorter than access", map[string]string{"JWT_EXPIRY": "1h", "REFRESH_TOKEN_EXPIRY": "30m"}, "REFRESH_TOKEN_EXPIRY"},
		{"rate not positive", map[string]string{"RATE_LIMIT_PER_SECOND": "0"}, "RATE_LIMIT_PER_SECOND"},
		{"burst zero", map[string]string{"RATE_LIMIT_BURST": "0"}, "RATE_LIMIT_BURST"},
		{"proxy not a cidr", map[string]string{"TRUSTED_PROXIES": "10.0.0.0/8, proxy.internal"}, "TRUSTED_PROXIES"},
	}
	for _, tt := range tests {
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
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	var cfg Config
	require.NoError(t, config.Load(&cfg, config.FromMap(map[string]string{
		"DATABASE_URL": "postgres://herald@127.0.0.1:5432/herald",
		"JWT_SECRET":   testSecret,
		"FRONTEND_URL": "HTTPS://App.Example.com/",
	}, nil)))
	require.Equal(t, 3001, cfg.Port)
	require.Equal(t, "https://app.example.com", cfg.FrontendURL, "kept in the form of an Origin header")
	require.Equal(t, "localhost:50052", cfg.RecipientGRPCAddr)
	require.Equal(t, "localhost:50051", cfg.CampaignGRPCAddr)
	require.Equal(t, "localhost:50053", cfg.EventsGRPCAddr)
	require.EqualValues(t, 1048576, cfg.HTTPBodyLimit)
	require.Equal(t, 15*time.Minute, cfg.JWTExpiry)
	require.Equal(t, 7*24*time.Hour, cfg.RefreshTokenExpiry)
	require.InDelta(t, 50.0, cfg.RateLimitPerSecond, 0)
	require.Equal(t, 100, cfg.RateLimitBurst)
	require.Empty(t, cfg.TrustedProxies)
	require.Empty(t, cfg.JWTSecretPrevious)
	require.Zero(t, cfg.AdminPort, "Run applies DefaultAdminPort")
}
