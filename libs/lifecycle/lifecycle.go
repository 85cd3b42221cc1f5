// Package lifecycle runs the long-lived parts of a process (servers, job clients) together
// and shuts them down gracefully: on SIGTERM or SIGINT readiness turns 503 at once, the process
// keeps serving for the drain delay, then stops accepting and gives in-flight work the shutdown
// timeout to finish.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
)

// Component is one long-lived part of a process.
type Component interface {
	// Name identifies the component in logs.
	Name() string
	// Serve runs until Shutdown is called (then it returns nil) or it fails.
	Serve(ctx context.Context) error
	// Shutdown stops accepting new work and waits for in-flight work until ctx is done,
	// then forces the rest to stop.
	Shutdown(ctx context.Context) error
}

// Options tunes Run.
type Options struct {
	// DrainDelay is how long the process keeps serving after the signal while readiness
	// reports 503, so load balancers stop sending traffic first.
	DrainDelay time.Duration
	// ShutdownTimeout bounds how long in-flight work may take to finish.
	ShutdownTimeout time.Duration
	// OnDrain is called as soon as shutdown starts (turn readiness to 503 here).
	OnDrain func()
	// Signals default to SIGTERM and SIGINT.
	Signals []os.Signal
}

// Run serves every component until ctx is cancelled, a signal arrives, or a component fails,
// then shuts them all down. It returns nil after a clean shutdown on a signal or cancellation.
func Run(ctx context.Context, log *zap.Logger, opts Options, comps ...Component) error {
	sigs := opts.Signals
	if len(sigs) == 0 {
		sigs = []os.Signal{syscall.SIGTERM, syscall.SIGINT}
	}
	sigCtx, stopSignals := signal.NotifyContext(ctx, sigs...)
	defer stopSignals()

	// Components serve on a context that outlives the signal: they stop through Shutdown.
	serveCtx, cancelServe := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelServe()
	failed := make(chan error, len(comps))
	g := new(errgroup.Group)
	for _, c := range comps {
		g.Go(func() error {
			log.Info("component starting", zap.String("component", c.Name()))
			if err := c.Serve(serveCtx); err != nil {
				err = fmt.Errorf("%s: %w", c.Name(), err)
				failed <- err
				return err
			}
			return nil
		})
	}

	var cause error
	select {
	case <-sigCtx.Done():
		log.Info("shutdown requested, draining", zap.Duration("drain_delay", opts.DrainDelay))
		if opts.OnDrain != nil {
			opts.OnDrain()
		}
		drain(opts.DrainDelay)
	case cause = <-failed:
		log.Error("component failed, shutting down", zap.Error(cause))
		if opts.OnDrain != nil {
			opts.OnDrain()
		}
	}

	log.Info("stopping components", zap.Duration("shutdown_timeout", opts.ShutdownTimeout))
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opts.ShutdownTimeout)
	defer cancel()
	sg := new(errgroup.Group)
	for _, c := range comps {
		sg.Go(func() error {
			if err := c.Shutdown(shutdownCtx); err != nil {
				return fmt.Errorf("shut down %s: %w", c.Name(), err)
			}
			log.Info("component stopped", zap.String("component", c.Name()))
			return nil
		})
	}
	shutdownErr := sg.Wait()
	serveErr := g.Wait()
	cancelServe()
	if cause != nil {
		return cause
	}
	if shutdownErr != nil {
		return shutdownErr
	}
	if serveErr != nil && !errors.Is(serveErr, context.Canceled) {
		return serveErr
	}
	log.Info("shutdown complete")
	return nil
}

// drain waits d while the process keeps serving.
func drain(d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	<-t.C
}
