package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/heraldmail/herald/migrations"
	"github.com/heraldmail/herald/migrations/pgtest"
)

// recoveryTimeout bounds how long readiness may take to follow a dependency going away and
// coming back: the readiness checks time out within a second.
const recoveryTimeout = 10 * time.Second

// TestRedisLossAndRecovery stops the Redis a running service uses: readiness turns 503 with
// redis in error, and back to 200 once Redis is up again, with no restart of the service.
func TestRedisLossAndRecovery(t *testing.T) {
	t.Parallel()
	binaries(t) // skips with -short
	rs := newRedisServer(t)
	rs.start(t)
	proc := startOwn(t, "recipient", deps{
		databaseURL: pgtest.URL(t),
		redisAddr:   rs.addr(),
		jwtSecret:   randomSecret(),
		drainDelay:  time.Second,
	})
	requireRecovers(t, proc, "redis", func() { rs.stop(t) }, func() { rs.start(t) })
}

// TestPostgresLossAndRecovery stops the PostgreSQL cluster a running service uses:
// readiness turns 503 with the database in error, and back to 200 once PostgreSQL is up
// again, with no restart of the service.
func TestPostgresLossAndRecovery(t *testing.T) {
	t.Parallel()
	binaries(t) // skips with -short
	pg := newPGCluster(t)
	pg.start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	require.NoError(t, migrations.Up(ctx, pg.url(), zap.NewNop()))

	proc := startOwn(t, "recipient", deps{
		databaseURL: pg.url(),
		redisAddr:   pgtest.RedisAddr(t),
		jwtSecret:   randomSecret(),
		drainDelay:  time.Second,
	})
	requireRecovers(t, proc, "database", func() { pg.stop(t) }, func() { pg.start(t) })
}

// requireRecovers takes dependency dep of proc away with down and brings it back with up,
// checking readiness after each, then stops proc and expects exit status 0.
func requireRecovers(t *testing.T, proc *process, dep string, down, up func()) {
	t.Helper()
	client := newHTTPClient(t)
	pid := proc.cmd.Process.Pid

	down()
	var rep healthReport
	waitFor(t, recoveryTimeout, "readiness to report "+dep+" in error", func() (bool, string) {
		var code int
		code, rep = getHealth(t, client, proc.adminURL()+"/health/ready")
		_, inError := rep.Error[dep]
		return code == http.StatusServiceUnavailable && inError, fmt.Sprintf("%d %+v", code, rep)
	})
	require.Equal(t, "error", rep.Status)
	require.Equal(t, "down", rep.Error[dep]["status"])
	require.NotEmpty(t, rep.Error[dep]["message"])

	up()
	waitFor(t, recoveryTimeout, "readiness to recover", func() (bool, string) {
		var code int
		code, rep = getHealth(t, client, proc.adminURL()+"/health/ready")
		return code == http.StatusOK, fmt.Sprintf("%d %+v", code, rep)
	})
	require.Equal(t, "up", rep.Info[dep]["status"])
	require.False(t, proc.exited(), "the service exited")
	require.Equal(t, pid, proc.cmd.Process.Pid)

	exit, err := proc.terminate(stopTimeout)
	require.NoError(t, err)
	require.Zero(t, exit, "exit status after SIGTERM; output:\n%s", proc.out.tail(30))
}

// redisServer is a redis-server of one test, on a port of its own.
type redisServer struct {
	bin  string
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

// newRedisServer picks a port; the server is stopped at the end of the test.
func newRedisServer(t *testing.T) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed (scripts/deps.sh installs it)")
	}
	free, err := freePorts(1)
	require.NoError(t, err)
	rs := &redisServer{bin: bin, dir: t.TempDir(), port: free[0]}
	t.Cleanup(func() { rs.stop(t) })
	return rs
}

func (rs *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(rs.port) }

// start runs redis-server and waits until it answers PING.
func (rs *redisServer) start(t *testing.T) {
	t.Helper()
	rs.cmd = exec.CommandContext(context.Background(), rs.bin, "--port", strconv.Itoa(rs.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", rs.dir, "--logfile", filepath.Join(rs.dir, "redis.log"))
	require.NoError(t, rs.cmd.Start())
	done := make(chan struct{})
	cmd := rs.cmd
	go func() { _ = cmd.Wait(); close(done) }()
	rs.done = done
	waitFor(t, 10*time.Second, "redis-server to answer", func() (bool, string) {
		err := redisPing(rs.addr())
		return err == nil, fmt.Sprint(err)
	})
}

// stop kills the server, as a crash would, and waits for it.
func (rs *redisServer) stop(t *testing.T) {
	t.Helper()
	if rs.cmd == nil {
		return
	}
	_ = rs.cmd.Process.Kill()
	<-rs.done
	rs.cmd = nil
}

// redisPing sends PING over RESP and expects PONG.
func redisPing(addr string) error {
	var d net.Dialer
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("answer %q", line)
	}
	return nil
}

// pgRunUser owns the throwaway cluster when the tests run as root, which PostgreSQL refuses;
// scripts/stack.sh uses the same system user.
const pgRunUser = "herald-dev"

// pgCluster is a PostgreSQL cluster of one test, on a port of its own.
type pgCluster struct {
	bindir string
	dir    string
	port   int
	asUser string // run the server programs as this user ("" for the current one)
}

// newPGCluster creates a cluster with initdb (trust authentication, superuser herald); it is
// stopped and removed at the end of the test.
func newPGCluster(t *testing.T) *pgCluster {
	t.Helper()
	bindir, err := pgBindir()
	if err != nil {
		t.Skip("PostgreSQL server programs are not installed (scripts/deps.sh installs them): ", err)
	}
	free, err := freePorts(1)
	require.NoError(t, err)
	dir, err := os.MkdirTemp("", "herald-e2e-pg-")
	require.NoError(t, err)
	pg := &pgCluster{bindir: bindir, dir: dir, port: free[0]}
	t.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(dir, "data", "postmaster.pid")); err == nil {
			_ = pg.ctl("stop", "-m", "immediate", "-w")
		}
		_ = os.RemoveAll(dir)
	})
	if os.Geteuid() == 0 {
		pg.asUser = pgRunUser
		require.NoError(t, ensureSystemUser(pgRunUser))
		u, err := user.Lookup(pgRunUser)
		require.NoError(t, err)
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		require.NoError(t, os.Chown(dir, uid, gid))
	}
	out, err := pg.command("initdb", "-D", filepath.Join(dir, "data"), "-U", "herald",
		"--auth=trust", "--encoding=UTF8", "--no-sync").CombinedOutput()
	require.NoError(t, err, "initdb: %s", out)
	return pg
}

func (pg *pgCluster) url() string {
	return "postgres://herald@127.0.0.1:" + strconv.Itoa(pg.port) + "/postgres?sslmode=disable"
}

// start starts the server and waits until it accepts connections.
func (pg *pgCluster) start(t *testing.T) {
	t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50", pg.port, pg.dir)
	require.NoError(t, pg.ctl("start", "-w", "-t", "60", "-l", filepath.Join(pg.dir, "postgres.log"), "-o", opts))
}

// stop shuts the server down (fast: open connections are cut) and waits until it is gone.
func (pg *pgCluster) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, pg.ctl("stop", "-m", "fast", "-w", "-t", "60"))
}

func (pg *pgCluster) ctl(args ...string) error {
	out, err := pg.command("pg_ctl", append([]string{"-D", filepath.Join(pg.dir, "data")}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl %s: %w: %s", args[0], err, out)
	}
	return nil
}

// command runs a PostgreSQL program, as the cluster's owner when the tests run as root.
func (pg *pgCluster) command(program string, args ...string) *exec.Cmd {
	path := filepath.Join(pg.bindir, program)
	if pg.asUser == "" {
		return exec.CommandContext(context.Background(), path, args...)
	}
	return exec.CommandContext(context.Background(), "runuser", append([]string{"-u", pg.asUser, "--", path}, args...)...)
}

// pgBindir finds the directory holding initdb, pg_ctl and postgres: PATH first, then
// /usr/lib/postgresql/<version>/bin, newest version first.
func pgBindir() (string, error) {
	var candidates []string
	if initdb, err := exec.LookPath("initdb"); err == nil {
		if resolved, err := filepath.EvalSymlinks(initdb); err == nil {
			candidates = append(candidates, filepath.Dir(resolved))
		}
		candidates = append(candidates, filepath.Dir(initdb))
	}
	versions, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(versions, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	candidates = append(candidates, versions...)
	for _, dir := range candidates {
		ok := true
		for _, p := range []string{"initdb", "pg_ctl", "postgres"} {
			if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
				ok = false
			}
		}
		if ok {
			return dir, nil
		}
	}
	return "", errors.New("initdb, pg_ctl and postgres not found on PATH nor in /usr/lib/postgresql/*/bin")
}

// ensureSystemUser creates a system user without a home or login shell when it is missing.
func ensureSystemUser(name string) error {
	if _, err := user.Lookup(name); err == nil {
		return nil
	}
	out, err := exec.CommandContext(context.Background(), "useradd", "--system", "--user-group", "--no-create-home",
		"--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name).CombinedOutput()
	if err != nil {
		// Another test process may have created it meanwhile.
		if _, lookErr := user.Lookup(name); lookErr == nil {
			return nil
		}
		return fmt.Errorf("useradd %s: %w: %s", name, err, out)
	}
	return nil
}
