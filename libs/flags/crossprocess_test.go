package flags_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/flags"
	"github.com/heraldmail/herald/libs/flags/flagstest"
	"github.com/heraldmail/herald/libs/internal/testenv"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// The test binary runs as the other process of TestInvalidation_acrossOSProcesses when
// childPrefixEnv names the key prefix of its provider (see TestMain).
const childPrefixEnv = "HERALD_FLAGS_TEST_CHILD_PREFIX"

// runChild is the other process: a Redis provider of its own under the prefix it is given,
// driven line by line over stdin, answering on stdout:
//
//	get <flag> <company id>             -> value true|false
//	set <flag> <company id> true|false  -> ok | error <message>
//
// It stops when stdin is closed.
func runChild(prefix string) int {
	rdb := redis.NewClient(&redis.Options{Addr: os.Getenv("HERALD_TEST_REDIS_ADDR")})
	defer rdb.Close()
	// A refresh far too slow to carry a change: only the change messages can.
	p, err := flags.NewRedis(rdb, prometheus.NewRegistry(), zap.NewNop(),
		flags.WithDefinitions(fixtures()...), flags.WithKeyPrefix(prefix), flags.WithRefreshInterval(time.Hour))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	served := make(chan error, 1)
	go func() { served <- p.Serve(context.Background()) }()
	defer func() {
		_ = p.Shutdown(context.Background())
		if err := <-served; err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
		}
	}()

	ctx := context.Background()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		fields := strings.Fields(in.Text())
		var answer string
		switch {
		case len(fields) == 3 && fields[0] == "get":
			company, err := uuid.Parse(fields[2])
			if err != nil {
				answer = "error " + err.Error()
				break
			}
			answer = "value " + strconv.FormatBool(p.Enabled(ctx, flags.NewFlag(fields[1]), flags.Scope{CompanyID: company}))
		case len(fields) == 4 && fields[0] == "set":
			company, errID := uuid.Parse(fields[2])
			on, errBool := strconv.ParseBool(fields[3])
			if err := errors.Join(errID, errBool); err != nil {
				answer = "error " + err.Error()
				break
			}
			if err := p.Set(ctx, flags.NewFlag(fields[1]), flags.Company(company), on); err != nil {
				answer = "error " + err.Error()
				break
			}
			answer = "ok"
		default:
			answer = "error unknown command"
		}
		fmt.Println(answer)
	}
	return 0
}

// childProcess is the test binary run as the other process.
type childProcess struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stderr *lockedBuffer
}

func startChild(t *testing.T, prefix string) *childProcess {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	c := &childProcess{lines: make(chan string, 16), stderr: &lockedBuffer{}}
	c.cmd = exec.Command(exe) //nolint:noctx // ended by closing its stdin, killed after a deadline.
	c.cmd.Env = append(os.Environ(), childPrefixEnv+"="+prefix, "HERALD_TEST_REDIS_ADDR="+testenv.RedisAddr(t))
	c.cmd.Stderr = c.stderr
	c.stdin, err = c.cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := c.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, c.cmd.Start())
	read := make(chan struct{})
	go func() {
		defer close(read)
		defer close(c.lines)
		out := bufio.NewScanner(stdout)
		for out.Scan() {
			c.lines <- out.Text()
		}
	}()
	t.Cleanup(func() {
		_ = c.stdin.Close()
		exited := make(chan error, 1)
		go func() {
			<-read // Wait must not run before the output is read
			exited <- c.cmd.Wait()
		}()
		select {
		case err := <-exited:
			require.NoError(t, err, "the other process: %s", c.stderr.String())
		case <-time.After(propagation):
			_ = c.cmd.Process.Kill()
			err := <-exited
			t.Errorf("the other process did not stop within %s (killed: %v): %s", propagation, err, c.stderr.String())
		}
	})
	return c
}

// ask sends one command and returns the answer.
func (c *childProcess) ask(t *testing.T, format string, args ...any) string {
	t.Helper()
	_, err := fmt.Fprintf(c.stdin, format+"\n", args...)
	require.NoError(t, err)
	select {
	case line, ok := <-c.lines:
		require.True(t, ok, "the other process exited: %s", c.stderr.String())
		return line
	case <-time.After(propagation):
		t.Fatalf("the other process did not answer within %s: %s", propagation, c.stderr.String())
		return ""
	}
}

// eventually asks the other process for f in company until it answers want.
func (c *childProcess) eventually(t *testing.T, f flags.Flag, company uuid.UUID, want bool) {
	t.Helper()
	deadline := time.Now().Add(propagation)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		answer := c.ask(t, "get %s %s", f, company)
		if answer == "value "+strconv.FormatBool(want) {
			return
		}
		require.True(t, strings.HasPrefix(answer, "value "), answer)
		require.True(t, time.Now().Before(deadline), "the other process still answers %q after %s", answer, propagation)
		<-tick.C
	}
}

// TestInvalidation_acrossOSProcesses runs a second provider in another OS process on the same
// Redis: a change made here reaches it, and a change made there reaches this one, both through
// the change messages (neither refreshes within the test).
func TestInvalidation_acrossOSProcesses(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	t.Cleanup(func() { flagstest.Purge(t, rdb) })
	prefix := flagstest.KeyPrefix(t)
	p := flagstest.Start(t, rdb, flags.WithDefinitions(fixtures()...), flags.WithKeyPrefix(prefix), flags.WithRefreshInterval(time.Hour))
	waitUp(t, p)
	child := startChild(t, prefix)
	ctx := t.Context()
	company := uuid.New()

	// Before any change both answer the default, which also shows the other process is up.
	child.eventually(t, companyFlag, company, false)

	// Here -> there.
	require.NoError(t, p.Set(ctx, companyFlag, flags.Company(company), true))
	child.eventually(t, companyFlag, company, true)
	require.NoError(t, p.Set(ctx, companyFlag, flags.Company(company), false))
	child.eventually(t, companyFlag, company, false)

	// There -> here.
	require.Equal(t, "ok", child.ask(t, "set %s %s true", companyFlag, company))
	flagstest.Eventually(t, p, companyFlag, flags.Scope{CompanyID: company}, true, propagation)
	require.Equal(t, "ok", child.ask(t, "set %s %s false", companyFlag, company))
	flagstest.Eventually(t, p, companyFlag, flags.Scope{CompanyID: company}, false, propagation)
}
