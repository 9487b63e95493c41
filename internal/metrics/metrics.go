package metrics

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds Waybill's own series. A nil *Metrics is valid and records nothing, so packages
// can take one optionally.
type Metrics struct {
	carrierRequests *prometheus.CounterVec
	dispatchLatency prometheus.Histogram
	alarmsSent      *prometheus.CounterVec
	batchesStuck    *prometheus.CounterVec
}

// New registers Waybill's series on reg, including the collector that reads Postgres on each
// scrape. It panics if they are already registered there, as prometheus.MustRegister does.
// waybill_webhooks_total is not here: webhook.NewMetrics registers it on the same registry.
func New(reg prometheus.Registerer, pool *pgxpool.Pool, logger *slog.Logger) *Metrics {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := &Metrics{
		carrierRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "waybill_carrier_requests_total",
			Help: "Requests to carriers by operation (create, create_batch, batch_status, find, find_batch) and outcome (ok, transient, rate_limited, unauthorized, rejected).",
		}, []string{"carrier", "operation", "outcome"}),
		dispatchLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "waybill_dispatch_latency_seconds",
			Help:    "Time from an order's INSERT to the carrier accepting it.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}),
		alarmsSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "waybill_alarms_sent_total",
			Help: "Alarm messages enqueued, by alarm and state (firing, resolved).",
		}, []string{"alarm", "state"}),
	}
	m.batchesStuck = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "waybill_dispatch_batches_stuck_total",
		Help: "Carrier batch jobs that did not finish within WAYBILL_BATCH_STUCK_AFTER and were settled by a lookup.",
	}, []string{"carrier"})
	scrapeErrors := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "waybill_scrape_errors_total",
		Help: "Scrapes whose Postgres queries failed; the series read from Postgres were left out.",
	})
	reg.MustRegister(m.carrierRequests, m.dispatchLatency, m.alarmsSent, m.batchesStuck, newDBCollector(pool, logger, scrapeErrors))
	return m
}

// CarrierRequest counts one carrier call. It has the signature of dispatch.Hooks.
func (m *Metrics) CarrierRequest(carrier, operation, outcome string) {
	if m == nil {
		return
	}
	m.carrierRequests.WithLabelValues(carrier, operation, outcome).Inc()
}

// Dispatched observes an order's insert→dispatched latency. It has the signature of
// dispatch.Hooks.
func (m *Metrics) Dispatched(createdAt, dispatchedAt time.Time) {
	if m == nil {
		return
	}
	m.dispatchLatency.Observe(max(dispatchedAt.Sub(createdAt).Seconds(), 0))
}

// BatchStuck counts a carrier batch job that did not finish in time.
func (m *Metrics) BatchStuck(carrier string) {
	if m == nil {
		return
	}
	m.batchesStuck.WithLabelValues(carrier).Inc()
}

// AlarmSent counts one alarm message; state is "firing" or "resolved".
func (m *Metrics) AlarmSent(alarm, state string) {
	if m == nil {
		return
	}
	m.alarmsSent.WithLabelValues(alarm, state).Inc()
}

// Handler serves g in the Prometheus text format, for /metrics.
func Handler(g prometheus.Gatherer) http.Handler {
	// ContinueOnError: one bad collector must not hide every other series.
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
