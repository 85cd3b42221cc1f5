// Package metrics builds the Prometheus registry of a process and the RED (rate, errors,
// duration) instrumentation of its gRPC and HTTP servers and its connection pool. Registries
// are injected, never global.
package metrics

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// NewRegistry returns a registry with the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// poolCollector exports pgxpool statistics.
type poolCollector struct {
	pool                                       *pgxpool.Pool
	total, idle, acquired, max                 *prometheus.Desc
	acquireCount, acquireWait, emptyAcquire    *prometheus.Desc
	canceledAcquire, newConns, destroyLifetime *prometheus.Desc
}

// RegisterPool exports the pool's statistics as herald_db_pool_* metrics.
func RegisterPool(reg prometheus.Registerer, pool *pgxpool.Pool) error {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("herald_db_pool_"+name, help, nil, nil)
	}
	return reg.Register(&poolCollector{
		pool:            pool,
		total:           d("connections", "Connections currently open."),
		idle:            d("idle_connections", "Idle connections."),
		acquired:        d("acquired_connections", "Connections in use."),
		max:             d("max_connections", "Maximum pool size."),
		acquireCount:    d("acquires_total", "Connections acquired from the pool."),
		acquireWait:     d("acquire_wait_seconds_total", "Time spent waiting for a connection."),
		emptyAcquire:    d("empty_acquires_total", "Acquires that had to wait because the pool was empty."),
		canceledAcquire: d("canceled_acquires_total", "Acquires cancelled by their context."),
		newConns:        d("new_connections_total", "Connections opened."),
		destroyLifetime: d("lifetime_destroyed_total", "Connections closed for reaching their maximum lifetime."),
	})
}

// Describe implements prometheus.Collector.
func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.total, c.idle, c.acquired, c.max, c.acquireCount,
		c.acquireWait, c.emptyAcquire, c.canceledAcquire, c.newConns, c.destroyLifetime} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	g := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	k := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	g(c.total, float64(s.TotalConns()))
	g(c.idle, float64(s.IdleConns()))
	g(c.acquired, float64(s.AcquiredConns()))
	g(c.max, float64(s.MaxConns()))
	k(c.acquireCount, float64(s.AcquireCount()))
	k(c.acquireWait, s.AcquireDuration().Seconds())
	k(c.emptyAcquire, float64(s.EmptyAcquireCount()))
	k(c.canceledAcquire, float64(s.CanceledAcquireCount()))
	k(c.newConns, float64(s.NewConnsCount()))
	k(c.destroyLifetime, float64(s.MaxLifetimeDestroyCount()))
}
