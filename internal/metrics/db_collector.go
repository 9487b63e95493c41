package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/waybill/waybill/internal/dbsqlc"
	"github.com/waybill/waybill/internal/orders"
)

// jobStates are River's job states, as River names them.
var jobStates = []string{"available", "running", "retryable", "scheduled", "completed", "discarded", "cancelled", "pending"}

// inFlightStatuses are counted exactly on every scrape (waybill.orders_in_flight_idx covers
// them); the others only grow, so they are read from a cache refreshed every slowEvery.
var inFlightStatuses = []orders.Status{orders.StatusPending, orders.StatusDispatched, orders.StatusAssigned, orders.StatusInTransit}

var (
	jobsDesc = prometheus.NewDesc("waybill_jobs",
		"River jobs by queue and state. Unfinished states are exact at scrape time; completed, discarded and cancelled are refreshed every minute.",
		[]string{"queue", "state"}, nil)
	oldestAvailableDesc = prometheus.NewDesc("waybill_oldest_available_job_age_seconds",
		"How long the oldest available job of each queue has waited to be worked; 0 when none waits.",
		[]string{"queue"}, nil)
	ordersDesc = prometheus.NewDesc("waybill_orders",
		"Orders by status. pending, dispatched, assigned and in_transit are exact at scrape time; the final statuses are refreshed every minute, exact while the table is small and estimated from the planner's statistics once it is large.",
		[]string{"status"}, nil)
	deadLettersDesc = prometheus.NewDesc("waybill_dead_letters_open",
		"Dead jobs not yet redriven (waybill.dead_jobs).", nil, nil)
)

// dbCollector reads gauges from Postgres when Prometheus scrapes. Every scrape costs a few
// indexed queries whose size is the work in flight, never the history; counts that grow with
// history (finished jobs, delivered orders) are cached for slowEvery.
type dbCollector struct {
	pool         *pgxpool.Pool
	logger       *slog.Logger
	queries      *dbsqlc.Queries
	scrapeErrors prometheus.Counter

	timeout   time.Duration // for all queries of one scrape
	slowEvery time.Duration
	// exactOrdersBelow: settled orders are counted exactly while the table is smaller than this
	// many bytes, estimated above it.
	exactOrdersBelow int64

	mu sync.Mutex // one scrape at a time: concurrent scrapes must not multiply the queries
	// queues is every queue seen since start, so a queue that empties reports 0 rather than
	// vanishing.
	queues map[string]bool
	slow   *slowCounts
}

type slowCounts struct {
	at        time.Time
	finalized map[[2]string]float64 // by queue and state
	settled   map[orders.Status]float64
}

func newDBCollector(pool *pgxpool.Pool, logger *slog.Logger, scrapeErrors prometheus.Counter) *dbCollector {
	return &dbCollector{
		pool:             pool,
		logger:           logger,
		queries:          dbsqlc.New(),
		scrapeErrors:     scrapeErrors,
		timeout:          2 * time.Second,
		slowEvery:        time.Minute,
		exactOrdersBelow: 64 << 20,
		queues:           map[string]bool{},
	}
}

func (c *dbCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- jobsDesc
	ch <- oldestAvailableDesc
	ch <- ordersDesc
	ch <- deadLettersDesc
	c.scrapeErrors.Describe(ch)
}

// Collect never fails the scrape: a query error is counted in waybill_scrape_errors_total and
// logged, and the series it would have produced are left out (absent, not stale).
func (c *dbCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()

	// A failed query leaves its series out; the others are still reported.
	var errs []error
	unfinished, errJobs := c.queries.MetricsJobsUnfinished(ctx, c.pool)
	if errJobs != nil {
		errs = append(errs, fmt.Errorf("unfinished jobs: %w", errJobs))
	}
	inFlight, errOrders := c.queries.MetricsOrdersInFlight(ctx, c.pool)
	if errOrders != nil {
		errs = append(errs, fmt.Errorf("orders in flight: %w", errOrders))
	}
	dead, errDead := c.queries.DeadJobCountOpen(ctx, c.pool)
	if errDead != nil {
		errs = append(errs, fmt.Errorf("open dead letters: %w", errDead))
	}
	if c.slow == nil || time.Since(c.slow.at) >= c.slowEvery {
		if slow, err := c.readSlow(ctx); err != nil {
			errs = append(errs, err)
		} else {
			c.slow = slow
		}
	}
	// After a failed refresh the previous counts are reported for a few minutes, then dropped.
	if c.slow != nil && time.Since(c.slow.at) > 5*c.slowEvery {
		c.slow = nil
	}
	if err := errors.Join(errs...); err != nil {
		c.scrapeErrors.Inc()
		c.logger.Warn("metrics: reading Postgres failed; those series are left out of this scrape", "error", err)
	}
	// Emitted here, after the queries, so a scrape shows its own failure: the registry collects
	// collectors concurrently, so a separately registered counter could be read before this.
	c.scrapeErrors.Collect(ch)

	if errJobs == nil {
		for _, r := range unfinished {
			c.queues[r.Queue] = true
		}
		if c.slow != nil {
			for k := range c.slow.finalized {
				c.queues[k[0]] = true
			}
		}
		c.collectJobs(ch, unfinished)
	}
	if errOrders == nil {
		counts := map[string]int64{}
		for _, r := range inFlight {
			counts[r.Status] = r.Orders
		}
		for _, s := range inFlightStatuses {
			ch <- prometheus.MustNewConstMetric(ordersDesc, prometheus.GaugeValue, float64(counts[string(s)]), string(s))
		}
	}
	if c.slow != nil {
		for _, s := range orders.Statuses {
			if !slices.Contains(inFlightStatuses, s) {
				ch <- prometheus.MustNewConstMetric(ordersDesc, prometheus.GaugeValue, c.slow.settled[s], string(s))
			}
		}
	}
	if errDead == nil {
		ch <- prometheus.MustNewConstMetric(deadLettersDesc, prometheus.GaugeValue, float64(dead))
	}
}

func (c *dbCollector) collectJobs(ch chan<- prometheus.Metric, unfinished []dbsqlc.MetricsJobsUnfinishedRow) {
	for q := range c.queues {
		var oldest float64
		counts := map[string]float64{}
		for _, r := range unfinished {
			if r.Queue == q {
				counts[r.State] = float64(r.Jobs)
				oldest = max(oldest, r.OldestAvailableSeconds)
			}
		}
		for _, state := range jobStates {
			n := counts[state]
			if isFinal(state) {
				if c.slow == nil {
					continue // unknown, not zero
				}
				n = c.slow.finalized[[2]string{q, state}]
			}
			ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, n, q, state)
		}
		ch <- prometheus.MustNewConstMetric(oldestAvailableDesc, prometheus.GaugeValue, oldest, q)
	}
}

func isFinal(state string) bool {
	return state == "completed" || state == "discarded" || state == "cancelled"
}

func (c *dbCollector) readSlow(ctx context.Context) (*slowCounts, error) {
	s := &slowCounts{at: time.Now(), finalized: map[[2]string]float64{}, settled: map[orders.Status]float64{}}
	rows, err := c.queries.MetricsJobsFinalized(ctx, c.pool)
	if err != nil {
		return nil, fmt.Errorf("finalized jobs: %w", err)
	}
	for _, r := range rows {
		s.finalized[[2]string{r.Queue, r.State}] = float64(r.Jobs)
	}

	size, err := c.queries.MetricsOrdersTableSize(ctx, c.pool)
	if err != nil {
		return nil, fmt.Errorf("orders table size: %w", err)
	}
	if size.Bytes < c.exactOrdersBelow {
		exact, err := c.queries.MetricsOrdersSettled(ctx, c.pool)
		if err != nil {
			return nil, fmt.Errorf("settled orders: %w", err)
		}
		for _, r := range exact {
			s.settled[orders.Status(r.Status)] = float64(r.Orders)
		}
		return s, nil
	}
	estimates, err := c.queries.MetricsOrdersStatusEstimate(ctx, c.pool)
	if err != nil {
		return nil, fmt.Errorf("estimate settled orders: %w", err)
	}
	for _, r := range estimates {
		s.settled[orders.Status(r.Status)] = r.Orders
	}
	return s, nil
}
