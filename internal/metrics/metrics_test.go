package metrics

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/dbsqlc"
	"github.com/waybill/waybill/internal/dbtest"
	"github.com/waybill/waybill/internal/notify"
)

type testBundle struct {
	pool   *pgxpool.Pool
	reg    *prometheus.Registry
	client *river.Client[pgx.Tx] // insert-only
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	pool, _ := dbtest.NewPool(t)
	return &testBundle{pool: pool, reg: prometheus.NewRegistry(), client: dbtest.NewRiver(t, pool, nil)}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// series gathers reg into "name{label="value",…}" → value, labels in name order.
func series(t *testing.T, reg prometheus.Gatherer) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			slices.Sort(labels)
			key := f.GetName()
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			out[key] = value(f.GetType(), m)
		}
	}
	return out
}

func value(typ dto.MetricType, m *dto.Metric) float64 {
	switch typ {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	case dto.MetricType_HISTOGRAM:
		return float64(m.GetHistogram().GetSampleCount())
	}
	return m.GetUntyped().GetValue()
}

func scrape(t *testing.T, reg prometheus.Gatherer) string {
	t.Helper()
	srv := httptest.NewServer(Handler(reg))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(body)
}

func TestScrapeReadsPostgres(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	q := dbsqlc.New()

	idDispatched, _ := dbtest.InsertOrder(t, b.pool, dbtest.Order{ExternalID: "SO-1"})
	idRejected, _ := dbtest.InsertOrder(t, b.pool, dbtest.Order{ExternalID: "SO-2"})
	_, deadJob := dbtest.InsertOrder(t, b.pool, dbtest.Order{ExternalID: "SO-3"})
	dbtest.InsertOrder(t, b.pool, dbtest.Order{ExternalID: "SO-4"})
	_, err := q.OrderMarkDispatchedMany(ctx, b.pool, dbsqlc.OrderMarkDispatchedManyParams{
		Ids: []int64{idDispatched}, CarrierRefs: []string{"task1"}, TrackingUrls: []string{"https://t/1"}})
	require.NoError(t, err)
	_, err = q.OrderMarkRejected(ctx, b.pool, dbsqlc.OrderMarkRejectedParams{ID: idRejected, Reason: new("bad address")})
	require.NoError(t, err)
	// The dead-letter trigger records the discarded job.
	_, err = b.pool.Exec(ctx, `UPDATE waybill.river_job SET state = 'discarded', finalized_at = now() WHERE id = $1`, deadJob)
	require.NoError(t, err)
	// An available job waiting in another queue for a minute.
	res, err := b.client.Insert(ctx, notify.SlackArgs{Title: "hi"}, nil)
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `UPDATE waybill.river_job SET scheduled_at = now() - interval '1 minute' WHERE id = $1`, res.Job.ID)
	require.NoError(t, err)

	m := New(b.reg, b.pool, testLogger(t))
	m.CarrierRequest("onfleet", "create", "ok")
	m.CarrierRequest("onfleet", "create", "ok")
	m.CarrierRequest("onfleet", "find", "unauthorized")
	created := time.Now()
	m.Dispatched(created, created.Add(150*time.Millisecond))
	m.AlarmSent("backlog", "firing")

	body := scrape(t, b.reg)
	require.Contains(t, body, `waybill_jobs{queue="dispatch",state="available"} 3`)
	require.Contains(t, body, `waybill_dispatch_latency_seconds_bucket{le="0.25"} 1`)

	s := series(t, b.reg)
	for k, want := range map[string]float64{
		`waybill_jobs{queue="dispatch",state="available"}`:                                          3,
		`waybill_jobs{queue="dispatch",state="discarded"}`:                                          1,
		`waybill_jobs{queue="dispatch",state="running"}`:                                            0,
		`waybill_jobs{queue="dispatch",state="completed"}`:                                          0,
		`waybill_jobs{queue="notify",state="available"}`:                                            1,
		`waybill_jobs{queue="notify",state="pending"}`:                                              0,
		`waybill_orders{status="pending"}`:                                                          2,
		`waybill_orders{status="dispatched"}`:                                                       1,
		`waybill_orders{status="rejected"}`:                                                         1,
		`waybill_orders{status="delivered"}`:                                                        0,
		`waybill_dead_letters_open`:                                                                 1,
		`waybill_scrape_errors_total`:                                                               0,
		`waybill_carrier_requests_total{carrier="onfleet",operation="create",outcome="ok"}`:         2,
		`waybill_carrier_requests_total{carrier="onfleet",operation="find",outcome="unauthorized"}`: 1,
		`waybill_dispatch_latency_seconds`:                                                          1,
		`waybill_alarms_sent_total{alarm="backlog",state="firing"}`:                                 1,
	} {
		require.Equal(t, want, s[k], k)
	}
	require.Len(t, slices.DeleteFunc(keys(s), func(k string) bool { return !strings.HasPrefix(k, "waybill_jobs{") }), 16,
		"8 states for each of the 2 queues")
	// The notify job was scheduled a minute ago; the dispatch jobs were inserted just now.
	require.GreaterOrEqual(t, s[`waybill_oldest_available_job_age_seconds{queue="notify"}`], 59.0)
	require.Less(t, s[`waybill_oldest_available_job_age_seconds{queue="dispatch"}`], 59.0)
}

func keys(m map[string]float64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// A queue that empties reports zeros rather than vanishing, and the gauges follow the database
// between scrapes.
func TestScrapeFollowsChanges(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	_, jobID := dbtest.InsertOrder(t, b.pool, dbtest.Order{ExternalID: "SO-1"})
	New(b.reg, b.pool, testLogger(t))

	s := series(t, b.reg)
	require.Equal(t, 1.0, s[`waybill_jobs{queue="dispatch",state="available"}`])
	require.Equal(t, 1.0, s[`waybill_orders{status="pending"}`])

	_, err := b.pool.Exec(ctx, `UPDATE waybill.river_job SET state = 'running', attempt = 1, attempted_at = now() WHERE id = $1`, jobID)
	require.NoError(t, err)
	s = series(t, b.reg)
	require.Equal(t, 0.0, s[`waybill_jobs{queue="dispatch",state="available"}`])
	require.Equal(t, 1.0, s[`waybill_jobs{queue="dispatch",state="running"}`])
	require.Equal(t, 0.0, s[`waybill_oldest_available_job_age_seconds{queue="dispatch"}`])
}

// Once the orders table is large, the final statuses come from the planner's statistics.
func TestSettledOrdersEstimated(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	q := dbsqlc.New()
	for _, id := range []string{"SO-1", "SO-2", "SO-3", "SO-4"} {
		orderID, _ := dbtest.InsertOrder(t, b.pool, dbtest.Order{ExternalID: id})
		if id != "SO-4" {
			_, err := q.OrderMarkRejected(ctx, b.pool, dbsqlc.OrderMarkRejectedParams{ID: orderID, Reason: new("no")})
			require.NoError(t, err)
		}
	}
	errs := prometheus.NewCounter(prometheus.CounterOpts{Name: "waybill_scrape_errors_total"})
	c := newDBCollector(b.pool, testLogger(t), errs)
	c.exactOrdersBelow = 0
	b.reg.MustRegister(c)

	// Before ANALYZE there are no statistics: the final statuses read 0, not an error.
	s := series(t, b.reg)
	require.Equal(t, 0.0, s[`waybill_orders{status="rejected"}`])
	require.Equal(t, 0.0, s[`waybill_scrape_errors_total`])

	_, err := b.pool.Exec(ctx, `ANALYZE waybill.orders`)
	require.NoError(t, err)
	c.slow = nil // skip the minute's cache
	s = series(t, b.reg)
	// ANALYZE read every row of this small table, so the estimate is exact.
	require.InDelta(t, 3.0, s[`waybill_orders{status="rejected"}`], 0.001)
	require.Equal(t, 1.0, s[`waybill_orders{status="pending"}`])
}

func TestScrapeErrorKeepsOtherSeries(t *testing.T) {
	t.Parallel()
	b := setup(t)
	closed, err := pgxpool.New(context.Background(), b.pool.Config().ConnString())
	require.NoError(t, err)
	closed.Close()

	m := New(b.reg, closed, testLogger(t))
	m.CarrierRequest("onfleet", "create", "ok")
	body := scrape(t, b.reg) // 200, not a 500 with nothing
	require.Contains(t, body, `waybill_carrier_requests_total{carrier="onfleet",operation="create",outcome="ok"} 1`)
	require.Contains(t, body, `waybill_scrape_errors_total 1`)
	require.NotContains(t, body, `waybill_jobs{`)
	require.NotContains(t, body, `waybill_dead_letters_open`)
}

func TestNilMetricsRecordsNothing(t *testing.T) {
	t.Parallel()
	var m *Metrics
	m.CarrierRequest("onfleet", "create", "ok")
	m.Dispatched(time.Now(), time.Now())
	m.AlarmSent("backlog", "firing")
}
