package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"
)

// child is one running service process.
type child struct {
	svc  service
	cmd  *exec.Cmd
	out  *lineWriter
	done chan struct{}
	err  error // the result of Wait, set before done closes
}

// startChild starts argv with env (NAME=value entries) and sends its output to out. The
// process is killed if ctx ends; stop it gracefully with signal.
func startChild(ctx context.Context, svc service, argv []string, env []string, out *lineWriter) (*child, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// A process group of its own: Ctrl-C in the terminal reaches only devstack, which
		// then stops the services in order with SIGTERM.
		Setpgid: true,
		// Should devstack die without stopping them, the services get SIGTERM.
		Pdeathsig: syscall.SIGTERM,
	}
	// A service that exits but leaves its output open must not hang devstack.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", svc.name, err)
	}
	c := &child{svc: svc, cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		out.Flush()
		close(c.done)
	}()
	return c, nil
}

// exited reports whether the process has ended.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process unless it has ended.
func (c *child) signal(sig os.Signal) {
	if !c.exited() {
		_ = c.cmd.Process.Signal(sig)
	}
}

// exitDescription says how the process ended.
func (c *child) exitDescription() string {
	var ee *exec.ExitError
	switch {
	case c.err == nil:
		return "exit status 0"
	case errors.As(c.err, &ee):
		return ee.String()
	default:
		return c.err.Error()
	}
}

// childEnv is the environment of a service: the caller's environment without the variables
// devstack sets (nor their _FILE forms), then devstack's values.
func childEnv(base []string, set map[string]string) []string {
	out := make([]string, 0, len(base)+len(set))
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		if _, ok := set[name]; ok {
			continue
		}
		if _, ok := set[strings.TrimSuffix(name, "_FILE")]; ok && strings.HasSuffix(name, "_FILE") {
			continue
		}
		out = append(out, kv)
	}
	names := make([]string, 0, len(set))
	for name := range set {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		out = append(out, name+"="+set[name])
	}
	return out
}

// readyStatus asks url (a /health/ready endpoint) once; it returns nil on 200, else what it
// answered.
func readyStatus(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("new request: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("not answering: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
