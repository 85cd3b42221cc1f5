package main

import (
	"bytes"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/config"
	"github.com/heraldmail/herald/libs/flags"
	"github.com/heraldmail/herald/libs/flags/flagstest"
	"github.com/heraldmail/herald/migrations/pgtest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func definition(name string, scope flags.Level, removal time.Time) flags.Definition {
	return flags.Definition{
		Flag: flags.NewFlag(name), Description: "fixture", Scope: scope, Owner: "platform",
		Added: flags.Date(2026, time.January, 1), ExpectedRemoval: removal,
	}
}

var today = flags.Date(2026, time.November, 25)

func TestCheck_repository(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("../../..")
	require.NoError(t, err)
	res, err := check(root, flags.Registered(), time.Now())
	require.NoError(t, err)
	require.Empty(t, res.problems)
	require.Greater(t, res.files, 50, "the repository's Go files were scanned")
}

func TestCheck_expired(t *testing.T) {
	t.Parallel()
	live := definition("live_flag", flags.LevelWorkspace, flags.Date(2026, time.December, 31))

	res, err := check("testdata/clean", []flags.Definition{live}, today)
	require.NoError(t, err)
	require.Empty(t, res.problems)
	require.Empty(t, res.warnings)

	res, err = check("testdata/clean", []flags.Definition{live}, flags.Date(2026, time.December, 20))
	require.NoError(t, err)
	require.Empty(t, res.problems, "the expected removal day has not passed yet")
	require.Equal(t, []string{"live_flag: expected removal on 2026-12-31 (owner platform)"}, res.warnings)

	res, err = check("testdata/clean", []flags.Definition{live}, flags.Date(2027, time.January, 1))
	require.NoError(t, err)
	require.Len(t, res.problems, 1)
	require.Contains(t, res.problems[0], "live_flag: past its expected removal on 2026-12-31 (owner platform)")
}

func TestCheck_broken(t *testing.T) {
	t.Parallel()
	removal := flags.Date(2027, time.June, 1)
	res, err := check("testdata/broken", []flags.Definition{
		definition("live_flag", flags.LevelGlobal, removal),
		definition("unused_flag", flags.LevelGlobal, removal),
	}, today)
	require.NoError(t, err)
	require.Equal(t, []string{
		`libs/flags/registry.go: flags.Undefined ("undefined_flag") is declared but has no definition in Registered()`,
		"services/mail/mail.go:6: flags.Missing is not a registered flag",
		"services/mail/mail.go:6: flags.NewFlag outside the registry: declare the flag in libs/flags/registry.go",
		`services/mail/mail.go:9: "ff:ghost_flag:company:0c9b0f5e-4f5b-4d8e-9a43-6b1f3a4f9a10" names the flag ghost_flag, which is not registered`,
		"unused_flag: referenced nowhere outside libs/flags (tests do not count): gate code with it or remove it",
	}, res.problems)

	res, err = check("testdata/broken", []flags.Definition{definition("Bad Name", flags.LevelGlobal, removal)}, today)
	require.NoError(t, err)
	require.Len(t, res.problems, 1)
	require.Contains(t, res.problems[0], "registry: ")
}

func TestRun_check(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	e := env{stdout: &out, stderr: &errOut, defs: []flags.Definition{definition("live_flag", flags.LevelGlobal, flags.Date(2026, time.January, 2))}, now: today}
	require.ErrorIs(t, run(t.Context(), []string{"check", "-root", "testdata/clean"}, e), errCheckFailed)
	require.Contains(t, errOut.String(), "live_flag: past its expected removal on 2026-01-02")
	require.ErrorIs(t, run(t.Context(), []string{"nope"}, e), errUsage)
}

func TestRun_setListClear(t *testing.T) {
	t.Parallel()
	host, port, err := net.SplitHostPort(pgtest.RedisAddr(t))
	require.NoError(t, err)
	prefix := flagstest.KeyPrefix(t)
	def := definition("beta_editor", flags.LevelWorkspace, flags.Date(2027, time.June, 1))
	var out, errOut bytes.Buffer
	e := env{
		source: config.FromMap(map[string]string{"REDIS_HOST": host, "REDIS_PORT": port}, nil),
		stdout: &out, stderr: &errOut, defs: []flags.Definition{def}, prefix: prefix, now: today,
	}
	ctx := t.Context()
	ws, company := uuid.New(), uuid.New()

	require.NoError(t, run(ctx, []string{"set", "beta_editor", "true", "-workspace", ws.String()}, e))
	require.NoError(t, run(ctx, []string{"set", "-company", company.String(), "beta_editor", "false"}, e))
	require.NoError(t, run(ctx, []string{"set", "beta_editor", "true"}, e))
	require.NoError(t, run(ctx, []string{"clear", "beta_editor"}, e))
	out.Reset()
	require.NoError(t, run(ctx, []string{"list"}, e))
	require.Contains(t, out.String(), "beta_editor\n  fixture\n  default false, scope workspace, owner platform, added 2026-01-01, expected removal 2027-06-01\n")
	require.Contains(t, out.String(), "  company "+company.String()+": false\n")
	require.Contains(t, out.String(), "  workspace "+ws.String()+": true\n")
	require.NotContains(t, out.String(), "global")

	// A running process sees what the command set.
	rdb := redis.NewClient(&redis.Options{Addr: pgtest.RedisAddr(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	t.Cleanup(func() { flagstest.Purge(t, rdb) })
	p := flagstest.Start(t, rdb, flags.WithDefinitions(def), flags.WithKeyPrefix(prefix))
	flagstest.Eventually(t, p, def.Flag, flags.Scope{WorkspaceID: ws}, true, 10*time.Second)
	require.False(t, p.Enabled(ctx, def.Flag, flags.Scope{CompanyID: company, WorkspaceID: ws}), "the company's value wins over the workspace's")

	require.ErrorIs(t, run(ctx, []string{"set", "no_such_flag", "true"}, e), flags.ErrUnknownFlag)
	require.ErrorIs(t, run(ctx, []string{"set", "beta_editor"}, e), errUsage)
	require.Error(t, run(ctx, []string{"set", "beta_editor", "maybe"}, e))
	require.Error(t, run(ctx, []string{"clear", "beta_editor", "-workspace", "not-a-uuid"}, e))
}

func TestFindRoot(t *testing.T) {
	t.Parallel()
	root, err := findRoot(".")
	require.NoError(t, err)
	abs, err := filepath.Abs("../../..")
	require.NoError(t, err)
	require.Equal(t, abs, mustAbs(t, root))
	_, err = findRoot(t.TempDir())
	require.Error(t, err)
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	require.NoError(t, err)
	return a
}
