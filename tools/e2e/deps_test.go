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
	proc := startOwn(t, "recipient", watch.deps(pgtest.URL(t), rs.addr(), shared(t).deps.sentryDSN))
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

	s := shared(t)
	proc := startOwn(t, "recipient", watch.deps(pg.url(), s.deps.redisAddr, s.deps.sentryDSN))
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
	require.NoError(t, watch.collectMetrics(proc))

	exit, err := proc.terminate(stopTimeout)
	require.NoError(t, err)
	require.Zero(t, exit, "exit status after SIGTERM; output:\n%s", proc.out.tail(30))
}

// redisServer is a redis-server of its own, on a port of its own, that requires a password
// when it has one. The password is in a configuration file, never on a command line.
type redisServer struct {
	bin      string
	dir      string
	port     int
	password string
	cmd      *exec.Cmd
	done     chan struct{}
}

// errNoRedisServer means redis-server is not installed.
var errNoRedisServer = errors.New("redis-server is not installed (scripts/deps.sh installs it)")

// prepareRedisServer picks a port and writes the configuration of a server that keeps its
// files in dir and requires password (none when empty).
func prepareRedisServer(dir, password string) (*redisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errNoRedisServer
	}
	free, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	rs := &redisServer{bin: bin, dir: dir, port: free[0], password: password}
	conf := fmt.Sprintf("port %d\nbind 127.0.0.1\nsave \"\"\nappendonly no\ndir %q\nlogfile %q\n",
		rs.port, dir, filepath.Join(dir, "redis.log"))
	if password != "" {
		conf += fmt.Sprintf("requirepass %q\n", password)
	}
	if err := os.WriteFile(rs.confPath(), []byte(conf), 0o600); err != nil {
		return nil, fmt.Errorf("write the redis configuration: %w", err)
	}
	return rs, nil
}

// newRedisServer prepares a server of the test's own with the run's Redis password; it is
// stopped at the end of the test.
func newRedisServer(t *testing.T) *redisServer {
	t.Helper()
	rs, err := prepareRedisServer(t.TempDir(), watch.redisPassword)
	if errors.Is(err, errNoRedisServer) {
		t.Skip(err)
	}
	require.NoError(t, err)
	t.Cleanup(rs.kill)
	return rs
}

func (rs *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(rs.port) }

func (rs *redisServer) confPath() string { return filepath.Join(rs.dir, "redis.conf") }

// run starts redis-server and waits until it answers PING.
func (rs *redisServer) run() error {
	cmd := exec.CommandContext(context.Background(), rs.bin, rs.confPath())
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	rs.cmd, rs.done = cmd, done
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := redisPing(rs.addr(), rs.password)
		if err == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("redis-server exited at start; see %s", filepath.Join(rs.dir, "redis.log"))
		case <-deadline.C:
			rs.kill()
			return fmt.Errorf("redis-server does not answer: %w", err)
		case <-tick.C:
		}
	}
}

// kill stops the server, as a crash would, and waits for it.
func (rs *redisServer) kill() {
	if rs.cmd == nil {
		return
	}
	_ = rs.cmd.Process.Kill()
	<-rs.done
	rs.cmd = nil
}

// start runs the server for a test.
func (rs *redisServer) start(t *testing.T) {
	t.Helper()
	require.NoError(t, rs.run())
}

// stop kills the server during a test.
func (rs *redisServer) stop(t *testing.T) {
	t.Helper()
	rs.kill()
}

// redisPing authenticates with password (when there is one) and sends PING over RESP,
// expecting PONG.
func redisPing(addr, password string) error {
	var d net.Dialer
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	rd := bufio.NewReader(conn)
	if password != "" {
		if _, err := fmt.Fprintf(conn, "*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n", len(password), password); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		line, err := rd.ReadString('\n')
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if strings.TrimSpace(line) != "+OK" {
			// The answer to a refused AUTH never quotes the password.
			return fmt.Errorf("auth answer %q", strings.TrimSpace(line))
		}
	}
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	line, err := rd.ReadString('\n')
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
