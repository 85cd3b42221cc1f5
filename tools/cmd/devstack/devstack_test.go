package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/heraldmail/herald/migrations"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestParseExports(t *testing.T) {
	t.Parallel()
	vars, err := parseExports(strings.Join([]string{
		"export HERALD_TEST_DATABASE_URL='postgres://herald@127.0.0.1:55432/postgres?sslmode=disable'",
		`export QUOTED="a \"b\" \$c"`,
		"export BARE=56379",
		"export ESCAPED='it'\\''s'",
		"",
		"# comment",
	}, "\n"))
	require.NoError(t, err)
	require.Equal(t, map[string]string{
		"HERALD_TEST_DATABASE_URL": "postgres://herald@127.0.0.1:55432/postgres?sslmode=disable",
		"QUOTED":                   `a "b" $c`,
		"BARE":                     "56379",
		"ESCAPED":                  "it's",
	}, vars)

	_, err = parseExports("DATABASE_URL=x")
	require.ErrorContains(t, err, "line 1: not an export line")
	_, err = parseExports("export A='x")
	require.ErrorContains(t, err, "unbalanced quotes")
}

func TestJWTSecret(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "dev", "jwt-secret")

	first, created, err := jwtSecret(path)
	require.NoError(t, err)
	require.True(t, created)
	require.Len(t, first, 64)
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	// Reused on the next run, and made private again.
	require.NoError(t, os.Chmod(path, 0o644))
	again, created, err := jwtSecret(path)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, first, again)
	st, err = os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	// Too short to be a valid JWT_SECRET: replaced.
	require.NoError(t, os.WriteFile(path, []byte("short\n"), 0o600))
	replaced, created, err := jwtSecret(path)
	require.NoError(t, err)
	require.True(t, created)
	require.NotEqual(t, first, replaced)
}

func TestChildEnv(t *testing.T) {
	t.Parallel()
	env := childEnv(
		[]string{"PATH=/usr/bin", "APP_ENV=production", "JWT_SECRET_FILE=/run/secret", "LOG_LEVEL=debug", "OTHER_FILE=x"},
		map[string]string{"APP_ENV": "development", "JWT_SECRET": "s"},
	)
	require.Equal(t, []string{"PATH=/usr/bin", "LOG_LEVEL=debug", "OTHER_FILE=x", "APP_ENV=development", "JWT_SECRET=s"}, env)
}

func TestServiceEnv(t *testing.T) {
	t.Parallel()
	stack := map[string]string{"DATABASE_URL": "postgres://h@127.0.0.1:1/herald", "REDIS_HOST": "127.0.0.1", "REDIS_PORT": "56379"}
	byName := map[string]map[string]string{}
	for _, svc := range services() {
		byName[svc.name] = svc.env(stack, "secret")
	}
	require.Len(t, byName, 5)
	require.Equal(t, "3001", byName["gateway"]["PORT"])
	require.Equal(t, "9001", byName["gateway"]["ADMIN_PORT"])
	require.Equal(t, "50052", byName["recipient"]["GRPC_PORT"])
	require.Equal(t, "9053", byName["events-ingest"]["ADMIN_PORT"])
	require.Equal(t, "3002", byName["worker"]["ADMIN_PORT"])
	require.NotContains(t, byName["worker"], "GRPC_PORT")
	for name, env := range byName {
		require.Equal(t, "development", env["APP_ENV"], name)
		require.Equal(t, "secret", env["JWT_SECRET"], name)
		require.Equal(t, "postgres://"+migrations.ServiceRoles()[name]+"@127.0.0.1:1/herald", env["DATABASE_URL"], name)
	}
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a console.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestLineWriter(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	con := newConsole(&out, false)
	w := newLineWriter(con, con.prefix("recipient"), 2)
	_, _ = w.Write([]byte("one\ntw"))
	_, _ = w.Write([]byte("o\r\nthree\nfour"))
	require.Equal(t, "recipient     | one\nrecipient     | two\nrecipient     | three\n", out.String())
	w.Flush()
	require.Equal(t, []string{"three", "four"}, w.Tail())

	coloured := newConsole(&out, true)
	require.Equal(t, "\x1b[36mgateway       |\x1b[0m ", coloured.prefix("gateway"))
	require.Equal(t, "\x1b[32mworker        |\x1b[0m ", coloured.prefix("worker"))
	require.Equal(t, "\x1b[1mdevstack      |\x1b[0m ", coloured.toolPrefix("devstack"))
}

// TestStop starts stand-in services that exit 0 on SIGTERM, or fail on it, and checks that
// stop waits for both and reports the failure.
func TestStop(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	d := &devstack{log: zap.NewNop(), con: newConsole(&out, false)}
	good := startShell(t, d, "good", `trap 'echo draining; exit 0' TERM; echo up; while :; do sleep 0.05; done`)
	bad := startShell(t, d, "bad", `trap 'exit 3' TERM; echo up; while :; do sleep 0.05; done`)

	err := d.stop([]*child{good, bad})
	require.ErrorContains(t, err, "bad (exit status 3)")
	require.NotContains(t, err.Error(), "good")
	require.True(t, good.exited())
	require.True(t, bad.exited())
	require.Contains(t, out.String(), "good          | draining\n")
}

// startShell runs script with sh as a stand-in service and waits until it printed "up", so
// its signal handler is installed.
func startShell(t *testing.T, d *devstack, name, script string) *child {
	t.Helper()
	w := newLineWriter(d.con, d.con.prefix(name), 5)
	c, err := startChild(t.Context(), service{name: name}, []string{"/bin/sh", "-c", script}, nil, w)
	require.NoError(t, err)
	t.Cleanup(func() { c.signal(syscall.SIGKILL); <-c.done })
	require.Eventually(t, func() bool { return slices.Contains(w.Tail(), "up") }, 10*time.Second, 10*time.Millisecond)
	return c
}
