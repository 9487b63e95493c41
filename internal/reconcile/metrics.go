package reconcile

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/waybill/waybill/internal/dbsqlc"
)

// Metrics says on /metrics what reconciliation does and how far behind it is. A nil *Metrics
// records nothing.
type Metrics struct {
	requests *prometheus.CounterVec
	changes  *prometheus.CounterVec
	checked  *prometheus.CounterVec
	cycles   *prometheus.CounterVec
}

// NewMetrics registers reconciliation's series on reg: counters, and two gauges read from
// Postgres on each scrape, for each of carriers (reconciled after after):
//
//	waybill_reconcile_due_orders{carrier}   orders in flight due for a look-up now
//	waybill_reconcile_lag_seconds{carrier}  how long the oldest of them has been due (0: none)
func NewMetrics(reg prometheus.Registerer, pool *pgxpool.Pool, after time.Duration, logger *slog.Logger, carriers ...string) (*Metrics, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "waybill_reconcile_requests_total",
			Help: "Carrier requests reconciliation made, by operation (get_task, list_tasks).",
		}, []string{"carrier", "operation"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "waybill_reconcile_changes_total",
			Help: "Changes reconciliation read off the carrier's tasks and fed to translate → act (before deduplication with webhooks).",
		}, []string{"carrier"}),
		checked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "waybill_reconcile_orders_checked_total",
			Help: "Orders in flight reconciliation looked up at the carrier.",
		}, []string{"carrier"}),
		cycles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "waybill_reconcile_cycles_total",
			Help: "Reconciliation cycles, by how they looked tasks up (get, list, none).",
		}, []string{"carrier", "method"}),
	}
	c := &backlogCollector{
		pool: pool, after: after, logger: logger, carriers: carriers,
		due: prometheus.NewDesc("waybill_reconcile_due_orders",
			"Orders in flight with no carrier event and no look-up for WAYBILL_RECONCILE_AFTER: waiting for reconciliation.", []string{"carrier"}, nil),
		lag: prometheus.NewDesc("waybill_reconcile_lag_seconds",
			"How long the oldest order due for reconciliation has been due: how far behind reconciliation is (0 when it is up to date).", []string{"carrier"}, nil),
	}
	for _, col := range []prometheus.Collector{m.requests, m.changes, m.checked, m.cycles, c} {
		if err := reg.Register(col); err != nil {
			return nil, fmt.Errorf("register reconcile metrics: %w", err)
		}
	}
	for _, carrier := range carriers {
		m.changes.WithLabelValues(carrier)
		m.checked.WithLabelValues(carrier)
	}
	return m, nil
}

func (m *Metrics) request(carrier, operation string) {
	if m != nil {
		m.requests.WithLabelValues(carrier, operation).Inc()
	}
}

func (m *Metrics) learnt(carrier string, changes, checked int) {
	if m != nil {
		m.changes.WithLabelValues(carrier).Add(float64(changes))
		m.checked.WithLabelValues(carrier).Add(float64(checked))
	}
}

func (m *Metrics) cycle(carrier string, res Result) {
	if m != nil {
		m.cycles.WithLabelValues(carrier, cmp.Or(res.Method, "none")).Inc()
	}
}

// backlogCollector reads reconciliation's backlog from Postgres on each scrape.
type backlogCollector struct {
	pool     *pgxpool.Pool
	after    time.Duration
	logger   *slog.Logger
	carriers []string
	due, lag *prometheus.Desc
}

func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.due
	ch <- c.lag
}

func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	now := time.Now()
	rows, err := dbsqlc.New().ReconcileBacklog(ctx, c.pool, now.Add(-c.after))
	if err != nil {
		c.logger.WarnContext(ctx, "metrics: reconciliation backlog", "error", err)
		ch <- prometheus.NewInvalidMetric(c.due, err)
		return
	}
	seen := map[string]bool{}
	for _, r := range rows {
		seen[r.Carrier] = true
		ch <- prometheus.MustNewConstMetric(c.due, prometheus.GaugeValue, float64(r.Due), r.Carrier)
		lag := max(now.Sub(r.OldestHeardAt.Add(c.after)).Seconds(), 0)
		ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, lag, r.Carrier)
	}
	for _, carrier := range c.carriers {
		if !seen[carrier] {
			ch <- prometheus.MustNewConstMetric(c.due, prometheus.GaugeValue, 0, carrier)
			ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, 0, carrier)
		}
	}
}
