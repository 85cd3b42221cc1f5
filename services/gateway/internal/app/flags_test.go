package app

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/heraldmail/herald/libs/config"
	"github.com/heraldmail/herald/libs/flags"
	"github.com/heraldmail/herald/libs/flags/flagstest"
	"github.com/heraldmail/herald/libs/process"
	"github.com/heraldmail/herald/migrations/pgtest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// Fixture flags of the REST tests.
var (
	restWorkspaceFlag = flags.NewFlag("rest_test_workspace")
	restCompanyFlag   = flags.NewFlag("rest_test_company")
)

func restFlagDefinitions() []flags.Definition {
	def := func(f flags.Flag, scope flags.Level) flags.Definition {
		return flags.Definition{
			Flag: f, Description: "test flag " + f.Name(), Scope: scope, Owner: "gateway",
			Added: flags.Date(2026, time.November, 1), ExpectedRemoval: flags.Date(2027, time.November, 1),
		}
	}
	return []flags.Definition{def(restWorkspaceFlag, flags.LevelWorkspace), def(restCompanyFlag, flags.LevelCompany)}
}

// flagValue is the JSON of identityv1.FlagValue (absent when unset).
type flagValue struct {
	Enabled bool `json:"enabled"`
}

// flagJSON is the JSON of identityv1.Flag.
type flagJSON struct {
	Name      string     `json:"name"`
	MaxScope  string     `json:"max_scope"`
	Global    *flagValue `json:"global"`
	Company   *flagValue `json:"company"`
	Workspace *flagValue `json:"workspace"`
	Enabled   bool       `json:"enabled"`
}

// flagChangeJSON is the JSON of identityv1.FlagChange.
type flagChangeJSON struct {
	Flag        string     `json:"flag"`
	Scope       string     `json:"scope"`
	WorkspaceID string     `json:"workspace_id"`
	OldValue    *flagValue `json:"old_value"`
	NewValue    *flagValue `json:"new_value"`
	ActorUserID string     `json:"actor_user_id"`
}

// TestFlagAdministration drives the flag routes through the gateway: who may change what,
// the values listed afterwards, the audit, and the change metric.
func TestFlagAdministration(t *testing.T) {
	t.Parallel()
	db := gatewayURL(t)
	rdb := redis.NewClient(&redis.Options{Addr: pgtest.RedisAddr(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	t.Cleanup(func() { flagstest.Purge(t, rdb) })
	g := startGatewayWith(t, startBackends(t, testSecret), map[string]string{"DATABASE_URL": db}, func(o *process.Options) {
		o.FlagOptions = []flags.Option{flags.WithKeyPrefix(flagstest.KeyPrefix(t)), flags.WithDefinitions(restFlagDefinitions()...)}
	})

	tn, other := signUp(t, g), signUp(t, g)
	admin := addMember(t, g, tn.bearer(), tn.workspace, "ROLE_ADMIN")
	editor := addMember(t, g, tn.bearer(), tn.workspace, "ROLE_EDITOR")
	ws := restWorkspaceFlag.Name()
	put := func(credential, flag string, body map[string]any) response {
		var res struct {
			Change flagChangeJSON `json:"change"`
		}
		return g.call(t, http.MethodPut, "/v1/flags/"+flag, credential, body, &res)
	}
	inWorkspace := map[string]any{"scope": "FLAG_SCOPE_WORKSPACE", "workspace_id": tn.workspace, "enabled": true}

	// Who may change what.
	requireCode(t, put(editor.tokens.AccessToken, ws, inWorkspace), http.StatusForbidden, "permission_denied")
	requireCode(t, put(other.bearer(), ws, inWorkspace), http.StatusNotFound, "not_found")
	requireCode(t, put(tn.bearer(), "no_such_flag", inWorkspace), http.StatusNotFound, "not_found")
	requireCode(t, put(admin.tokens.AccessToken, restCompanyFlag.Name(), map[string]any{"scope": "FLAG_SCOPE_COMPANY", "enabled": true}),
		http.StatusForbidden, "permission_denied")
	requireCode(t, put(tn.bearer(), restCompanyFlag.Name(), map[string]any{"scope": "FLAG_SCOPE_GLOBAL", "enabled": true}),
		http.StatusForbidden, "permission_denied")
	requireCode(t, put(tn.bearer(), restCompanyFlag.Name(), map[string]any{"enabled": true}), http.StatusBadRequest, "invalid_argument")

	var set struct {
		Change flagChangeJSON `json:"change"`
	}
	r := g.call(t, http.MethodPut, "/v1/flags/"+ws, admin.tokens.AccessToken, inWorkspace, &set)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.Nil(t, set.Change.OldValue)
	require.Equal(t, &flagValue{Enabled: true}, set.Change.NewValue)
	require.Equal(t, admin.userID, set.Change.ActorUserID)
	r = g.call(t, http.MethodPut, "/v1/flags/"+restCompanyFlag.Name(), tn.bearer(), map[string]any{"scope": "FLAG_SCOPE_COMPANY", "enabled": true}, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)

	// The listing shows the values of the company and the workspace asked for.
	var list struct {
		Flags []flagJSON `json:"flags"`
	}
	r = g.call(t, http.MethodGet, "/v1/flags?workspace_id="+tn.workspace, editor.tokens.AccessToken, nil, &list)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.Len(t, list.Flags, 2)
	require.Equal(t, flagJSON{Name: ws, MaxScope: "FLAG_SCOPE_WORKSPACE", Workspace: &flagValue{Enabled: true}, Enabled: true}, list.Flags[0])
	require.Equal(t, flagJSON{Name: restCompanyFlag.Name(), MaxScope: "FLAG_SCOPE_COMPANY", Company: &flagValue{Enabled: true}, Enabled: true}, list.Flags[1])
	requireCode(t, g.call(t, http.MethodGet, "/v1/flags?workspace_id="+tn.workspace, other.bearer(), nil, nil), http.StatusNotFound, "not_found")
	var otherList struct {
		Flags []flagJSON `json:"flags"`
	}
	r = g.call(t, http.MethodGet, "/v1/flags", other.bearer(), nil, &otherList)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.Len(t, otherList.Flags, 2)
	for _, f := range otherList.Flags {
		require.Nil(t, f.Company, "another company sees none of it")
		require.False(t, f.Enabled)
	}

	// Clearing, then the audit.
	q := url.Values{"scope": {"FLAG_SCOPE_WORKSPACE"}, "workspace_id": {tn.workspace}}
	requireCode(t, g.call(t, http.MethodDelete, "/v1/flags/"+ws+"?"+q.Encode(), other.bearer(), nil, nil), http.StatusNotFound, "not_found")
	var cleared struct {
		Change flagChangeJSON `json:"change"`
	}
	r = g.call(t, http.MethodDelete, "/v1/flags/"+ws+"?"+q.Encode(), tn.bearer(), nil, &cleared)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.Equal(t, &flagValue{Enabled: true}, cleared.Change.OldValue)
	require.Nil(t, cleared.Change.NewValue)

	var audit struct {
		Changes []flagChangeJSON `json:"changes"`
	}
	r = g.call(t, http.MethodGet, "/v1/flags/audit?flag="+ws, tn.bearer(), nil, &audit)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.Len(t, audit.Changes, 2)
	require.Equal(t, cleared.Change, audit.Changes[0])
	require.Equal(t, set.Change, audit.Changes[1])
	requireCode(t, g.call(t, http.MethodGet, "/v1/flags/audit", editor.tokens.AccessToken, nil, nil), http.StatusForbidden, "permission_denied")
	var otherAudit struct {
		Changes []flagChangeJSON `json:"changes"`
	}
	r = g.call(t, http.MethodGet, "/v1/flags/audit", other.bearer(), nil, &otherAudit)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.Empty(t, otherAudit.Changes)

	// A platform operator sets the global value.
	var out bytes.Buffer
	require.NoError(t, Operator(t.Context(), zap.NewNop(), config.FromMap(map[string]string{"DATABASE_URL": db, "LOG_LEVEL": "error"}, nil),
		[]string{"grant", other.email}, &out))
	r = g.call(t, http.MethodPut, "/v1/flags/"+ws, other.bearer(), map[string]any{"scope": "FLAG_SCOPE_GLOBAL", "enabled": false}, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	var opAudit struct {
		Changes []flagChangeJSON `json:"changes"`
	}
	r = g.call(t, http.MethodGet, "/v1/flags/audit", other.bearer(), nil, &opAudit)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.Len(t, opAudit.Changes, 1, "the operator's company has no change, the global one is listed")
	require.Equal(t, "FLAG_SCOPE_GLOBAL", opAudit.Changes[0].Scope)

	resp, err := g.get(t, g.admin+"/metrics")
	require.NoError(t, err)
	var metrics bytes.Buffer
	_, err = metrics.ReadFrom(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Contains(t, metrics.String(), `herald_flag_changes_total{flag="`+ws+`",scope="workspace"} 2`)
	require.Contains(t, metrics.String(), `herald_flag_changes_total{flag="`+ws+`",scope="global"} 1`)
	require.Contains(t, metrics.String(), "herald_flags_redis_up 1")
}

// TestFlagAdministrationWithUnleash runs the gateway with FEATURE_FLAGS_PROVIDER=unleash: the
// flags are listed from the registry, and every change is refused, since flags are changed in
// Unleash.
func TestFlagAdministrationWithUnleash(t *testing.T) {
	t.Parallel()
	const apiKey = "default:development.gateway-test-key"
	unleash := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Header.Get("Authorization") != apiKey:
			http.Error(w, "unauthorized", http.StatusUnauthorized)
		case r.Method == http.MethodGet && r.URL.Path == "/api/client/features":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"version": 2, "features": []}`))
		default:
			w.WriteHeader(http.StatusAccepted)
		}
	}))
	t.Cleanup(unleash.Close)
	g := startGatewayWith(t, startBackends(t, testSecret), map[string]string{
		"FEATURE_FLAGS_PROVIDER": "unleash",
		"UNLEASH_URL":            unleash.URL + "/api",
		"UNLEASH_API_KEY":        apiKey,
	}, func(o *process.Options) {
		o.UnleashOptions = []flags.UnleashOption{flags.WithUnleashDefinitions(restFlagDefinitions()...), flags.WithUnleashBackupPath(t.TempDir())}
	})
	tn := signUp(t, g)
	ws := restWorkspaceFlag.Name()

	e := requireCode(t, g.call(t, http.MethodPut, "/v1/flags/"+ws, tn.bearer(),
		map[string]any{"scope": "FLAG_SCOPE_WORKSPACE", "workspace_id": tn.workspace, "enabled": true}, nil),
		http.StatusBadRequest, "failed_precondition")
	require.Equal(t, flags.ErrManagedInUnleash.Error(), e.Message)
	q := url.Values{"scope": {"FLAG_SCOPE_COMPANY"}}
	requireCode(t, g.call(t, http.MethodDelete, "/v1/flags/"+restCompanyFlag.Name()+"?"+q.Encode(), tn.bearer(), nil, nil),
		http.StatusBadRequest, "failed_precondition")
	requireCode(t, g.call(t, http.MethodPut, "/v1/flags/no_such_flag", tn.bearer(),
		map[string]any{"scope": "FLAG_SCOPE_COMPANY", "enabled": true}, nil), http.StatusNotFound, "not_found")

	var list struct {
		Flags []flagJSON `json:"flags"`
	}
	r := g.call(t, http.MethodGet, "/v1/flags?workspace_id="+tn.workspace, tn.bearer(), nil, &list)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.Equal(t, []flagJSON{
		{Name: ws, MaxScope: "FLAG_SCOPE_WORKSPACE"},
		{Name: restCompanyFlag.Name(), MaxScope: "FLAG_SCOPE_COMPANY"},
	}, list.Flags)
	var audit struct {
		Changes []flagChangeJSON `json:"changes"`
	}
	r = g.call(t, http.MethodGet, "/v1/flags/audit", tn.bearer(), nil, &audit)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.Empty(t, audit.Changes, "nothing recorded")

	resp, err := g.get(t, g.admin+"/metrics")
	require.NoError(t, err)
	var metrics bytes.Buffer
	_, err = metrics.ReadFrom(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.NotContains(t, metrics.String(), "herald_flags_redis_up")
	require.Contains(t, metrics.String(), "herald_flags_unleash_up")
}
