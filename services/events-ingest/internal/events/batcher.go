package events

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of BatcherConfig.
const (
	DefaultBatchSize     = 2000
	DefaultFlushInterval = 10 * time.Millisecond
	DefaultCapacity      = 100_000
	DefaultWriters       = 4
	DefaultRetryAfter    = time.Second
	DefaultWriteTimeout  = 30 * time.Second
)

// ErrBufferFull is wrapped by the *BufferFullError of a submission the buffer has no room for.
var ErrBufferFull = errors.New("the ingest buffer is full")

// ErrShuttingDown is returned for submissions after Close started: the caller retries against
// another instance.
var ErrShuttingDown = errors.New("events ingestion is shutting down")

// ErrNotStored is wrapped by the error of every caller whose events were in a batch that could
// not be written; none of the caller's events in that batch were stored.
var ErrNotStored = errors.New("events not stored")

// BufferFullError turns a caller away while the buffer is full. Nothing of the submission was
// buffered.
type BufferFullError struct {
	// RetryAfter is how long the caller should wait before sending again.
	RetryAfter time.Duration
}

func (e *BufferFullError) Error() string {
	return fmt.Sprintf("%v: retry after %s", ErrBufferFull, e.RetryAfter)
}

// Unwrap makes every BufferFullError match ErrBufferFull.
func (e *BufferFullError) Unwrap() error { return ErrBufferFull }

// IDStore is a Store that also tells which events a write stored. With it the batcher reports
// to each caller exactly how many of its own events were new; with a plain Store the counts of
// a batch shared by several callers are exact only when the batch held no duplicates of
// earlier batches, and are otherwise handed out in batch order (what is stored is exact either
// way).
type IDStore interface {
	// InsertIDs is Store.Insert, returning the ids of the events newly stored.
	InsertIDs(ctx context.Context, t tenancy.Tenant, evs []Event) ([]uuid.UUID, error)
}

// BatcherConfig tunes the batcher; zero fields take the defaults.
type BatcherConfig struct {
	// BatchSize is the number of events of one tenant that triggers a write.
	BatchSize int
	// FlushInterval is the longest an event waits for its batch to fill before it is written.
	FlushInterval time.Duration
	// Capacity is the largest number of events held at once, waiting or being written;
	// submissions beyond it are turned away with a *BufferFullError.
	Capacity int
	// Writers is the number of batches written in parallel (each holds a database
	// connection while it writes).
	Writers int
	// RetryAfter is the delay suggested to callers turned away.
	RetryAfter time.Duration
	// WriteTimeout bounds one batch's transaction.
	WriteTimeout time.Duration
}

func (c BatcherConfig) withDefaults() BatcherConfig {
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.Capacity <= 0 {
		c.Capacity = DefaultCapacity
	}
	if c.Writers <= 0 {
		c.Writers = DefaultWriters
	}
	if c.RetryAfter <= 0 {
		c.RetryAfter = DefaultRetryAfter
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	return c
}

// Pending is the answer to one submission: it is done once every event of the submission is
// stored (the transactions holding them committed) or a write holding some of them failed.
type Pending struct {
	done  chan struct{}
	parts atomic.Int32

	mu  sync.Mutex
	res Result
	err error
}

func newPending() *Pending {
	p := &Pending{done: make(chan struct{})}
	// One part for the submission itself, released when every segment is queued, so a batch
	// written quickly cannot complete the answer early.
	p.parts.Store(1)
	return p
}

// Done is closed when the answer is known.
func (p *Pending) Done() <-chan struct{} { return p.done }

// Result is the answer; valid once Done is closed.
func (p *Pending) Result() (Result, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.res, p.err
}

// Wait waits for the answer or for ctx to end. When ctx ends first the events may still be
// stored later; the caller has no acknowledgement and retries them (ids deduplicate).
func (p *Pending) Wait(ctx context.Context) (Result, error) {
	select {
	case <-p.done:
		return p.Result()
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// finish records the outcome of one segment and completes the answer with the last one.
func (p *Pending) finish(r Result, err error) {
	p.mu.Lock()
	if err != nil && p.err == nil {
		p.err = err
	}
	p.res.add(r)
	p.mu.Unlock()
	p.release()
}

func (p *Pending) release() {
	if p.parts.Add(-1) == 0 {
		if p.err != nil {
			p.res = Result{}
		}
		close(p.done)
	}
}

// segment is the run of consecutive events of one submission in a batch.
type segment struct {
	p *Pending
	n int
}

// batch is up to BatchSize events of one tenant, written in one transaction.
type batch struct {
	tenant  tenancy.Tenant
	evs     []Event
	segs    []segment
	timer   *time.Timer
	created time.Time
}

// Batcher collects the events of every caller in one bounded buffer and writes them in
// batches per tenant, when a batch reaches BatchSize events or FlushInterval after its first
// event, whichever comes first, with Writers batches in flight. A caller is answered only after
// the transaction holding its events committed; a failed transaction fails exactly the callers
// with events in it.
type Batcher struct {
	store Store
	ids   IDStore
	cfg   BatcherConfig
	m     batcherMetrics

	mu       sync.Mutex
	pending  map[tenancy.Tenant]*batch
	buffered int
	closed   bool
	// ready never blocks a send: it can hold Capacity batches and each holds an event.
	ready chan *batch

	writers sync.WaitGroup
	stopped chan struct{}
}

type batcherMetrics struct {
	depth    prometheus.Gauge
	size     prometheus.Histogram
	latency  prometheus.Histogram
	rejected prometheus.Counter
	failed   prometheus.Counter
	stored   prometheus.Counter
}

// NewBatcher starts a batcher writing to store, with its metrics registered on reg (nil for
// none). Close stops it.
func NewBatcher(store Store, cfg BatcherConfig, reg prometheus.Registerer) (*Batcher, error) {
	cfg = cfg.withDefaults()
	if cfg.BatchSize > cfg.Capacity {
		return nil, fmt.Errorf("batcher: batch size %d is larger than the capacity %d", cfg.BatchSize, cfg.Capacity)
	}
	m, err := newBatcherMetrics(reg)
	if err != nil {
		return nil, err
	}
	b := &Batcher{
		store:   store,
		cfg:     cfg,
		m:       m,
		pending: map[tenancy.Tenant]*batch{},
		ready:   make(chan *batch, cfg.Capacity),
		stopped: make(chan struct{}),
	}
	b.ids, _ = store.(IDStore)
	b.writers.Add(cfg.Writers)
	for range cfg.Writers {
		go b.write()
	}
	go func() {
		b.writers.Wait()
		close(b.stopped)
	}()
	return b, nil
}

func newBatcherMetrics(reg prometheus.Registerer) (batcherMetrics, error) {
	m := batcherMetrics{
		depth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_ingest_buffer_events",
			Help: "Events in the ingest buffer: waiting for their batch or being written.",
		}),
		size: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "herald_ingest_batch_events",
			Help:    "Events per written batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "herald_ingest_flush_seconds",
			Help:    "Time from a batch's first event to its commit.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_ingest_rejected_events_total",
			Help: "Events turned away because the ingest buffer was full.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_ingest_failed_batches_total",
			Help: "Batches whose transaction failed; their callers got an error.",
		}),
		stored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_ingest_stored_events_total",
			Help: "Events newly stored (duplicates of stored events excluded).",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.depth, m.size, m.latency, m.rejected, m.failed, m.stored} {
		if err := reg.Register(c); err != nil {
			return m, fmt.Errorf("register ingest metrics: %w", err)
		}
	}
	return m, nil
}

// Submit buffers evs (validated events of tenant t) and returns the pending answer. It never
// blocks: when the buffer has no room for all of evs it buffers none and returns a
// *BufferFullError; after Close it returns ErrShuttingDown.
func (b *Batcher) Submit(t tenancy.Tenant, evs []Event) (*Pending, error) {
	p := newPending()
	if len(evs) == 0 {
		p.release()
		return p, nil
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrShuttingDown
	}
	if b.buffered+len(evs) > b.cfg.Capacity {
		b.mu.Unlock()
		b.m.rejected.Add(float64(len(evs)))
		return nil, &BufferFullError{RetryAfter: b.cfg.RetryAfter}
	}
	b.buffered += len(evs)
	b.m.depth.Set(float64(b.buffered))
	for len(evs) > 0 {
		bt := b.pending[t]
		if bt == nil {
			// Sized for what arrives now, not for a full batch: a quiet tenant's batches stay
			// small, and append grows a busy one.
			bt = &batch{tenant: t, evs: make([]Event, 0, min(b.cfg.BatchSize, max(len(evs), 64))), created: time.Now()}
			b.pending[t] = bt
			bt.timer = time.AfterFunc(b.cfg.FlushInterval, func() { b.flushDue(bt) })
		}
		n := min(b.cfg.BatchSize-len(bt.evs), len(evs))
		bt.evs = append(bt.evs, evs[:n]...)
		bt.segs = append(bt.segs, segment{p: p, n: n})
		p.parts.Add(1)
		evs = evs[n:]
		if len(bt.evs) == b.cfg.BatchSize {
			b.sealLocked(bt)
		}
	}
	b.mu.Unlock()
	p.release()
	return p, nil
}

// flushDue writes bt when its time is up, unless it was written already.
func (b *Batcher) flushDue(bt *batch) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pending[bt.tenant] == bt {
		b.sealLocked(bt)
	}
}

// sealLocked hands bt to the writers; b.mu is held.
func (b *Batcher) sealLocked(bt *batch) {
	delete(b.pending, bt.tenant)
	bt.timer.Stop()
	b.ready <- bt
}

// Close stops accepting events, writes every buffered one and answers every caller. It
// returns ctx's error when the writes do not finish in time (they go on in the background and
// still answer their callers).
func (b *Batcher) Close(ctx context.Context) error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		for _, bt := range b.pending {
			b.sealLocked(bt)
		}
		close(b.ready)
	}
	b.mu.Unlock()
	select {
	case <-b.stopped:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("flush ingest buffer: %w", ctx.Err())
	}
}

// Stopped is closed once Close has written every buffered event.
func (b *Batcher) Stopped() <-chan struct{} { return b.stopped }

func (b *Batcher) write() {
	defer b.writers.Done()
	for bt := range b.ready {
		b.writeBatch(bt)
	}
}

// writeBatch writes bt in one transaction and answers the callers with events in it.
func (b *Batcher) writeBatch(bt *batch) {
	// Duplicates within the batch (a retried event sent twice, or by two callers) are skipped
	// before the write: the store takes distinct ids. first[i] is false for such repeats.
	unique := make([]Event, 0, len(bt.evs))
	first := make([]bool, len(bt.evs))
	seen := make(map[uuid.UUID]struct{}, len(bt.evs))
	for i, e := range bt.evs {
		if _, dup := seen[e.ID]; dup {
			continue
		}
		seen[e.ID] = struct{}{}
		first[i] = true
		unique = append(unique, e)
	}

	// A batch serves many callers: one caller giving up must not cancel it.
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.WriteTimeout)
	fresh, err := b.insert(ctx, bt.tenant, unique, seen)
	cancel()

	b.mu.Lock()
	b.buffered -= len(bt.evs)
	b.m.depth.Set(float64(b.buffered))
	b.mu.Unlock()

	if err != nil {
		b.m.failed.Inc()
		err = fmt.Errorf("%w: %w", ErrNotStored, err)
		for _, s := range bt.segs {
			s.p.finish(Result{}, err)
		}
		return
	}
	b.m.size.Observe(float64(len(bt.evs)))
	b.m.latency.Observe(time.Since(bt.created).Seconds())
	i, stored := 0, 0
	for _, s := range bt.segs {
		var r Result
		for _, e := range bt.evs[i : i+s.n] {
			if first[i] && fresh(e.ID) {
				r.Accepted++
			} else {
				r.Duplicates++
			}
			i++
		}
		stored += r.Accepted
		s.p.finish(r, nil)
	}
	b.m.stored.Add(float64(stored))
}

// insert writes unique (whose ids are the keys of ids) and returns whether an id was newly
// stored by this write.
func (b *Batcher) insert(ctx context.Context, t tenancy.Tenant, unique []Event, ids map[uuid.UUID]struct{}) (func(uuid.UUID) bool, error) {
	if b.ids != nil {
		stored, err := b.ids.InsertIDs(ctx, t, unique)
		if err != nil {
			return nil, err
		}
		if len(stored) == len(unique) {
			return func(uuid.UUID) bool { return true }, nil
		}
		clear(ids)
		for _, id := range stored {
			ids[id] = struct{}{}
		}
		return func(id uuid.UUID) bool { _, ok := ids[id]; return ok }, nil
	}
	n, err := b.store.Insert(ctx, t, unique)
	if err != nil {
		return nil, err
	}
	// Without the ids the first n events count as the new ones.
	return func(uuid.UUID) bool {
		if n == 0 {
			return false
		}
		n--
		return true
	}, nil
}
