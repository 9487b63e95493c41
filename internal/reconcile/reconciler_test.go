package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/carrier"
	"github.com/waybill/waybill/internal/carrier/onfleet"
	"github.com/waybill/waybill/internal/carrier/sandbox"
	"github.com/waybill/waybill/internal/dbtest"
	"github.com/waybill/waybill/internal/orders"
	"github.com/waybill/waybill/internal/ratelimit"
)

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }

type testBundle struct {
	pool       *pgxpool.Pool
	sandbox    *sandbox.Server
	sandboxURL string
	client     *onfleet.Client
	reg        *prometheus.Registry
}

// setup: a migrated database and a sandbox carrier whose tasks walk their lifecycle quickly with
// webhooks off (as if they never arrived).
func setup(t *testing.T, limiter func(*pgxpool.Pool) carrier.Limiter) *testBundle {
	t.Helper()
	pool, _ := dbtest.NewPool(t)
	var lim carrier.Limiter
	if limiter != nil {
		lim = limiter(pool)
	}
	sb := sandbox.New(sandbox.Options{WebhooksOff: true, WebhookURL: "http://127.0.0.1:1/none", WebhookSecret: "00ff",
		WebhookStep: 5 * time.Millisecond, Seed: 3}, slog.New(slog.DiscardHandler))
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(func() { srv.Close(); sb.Close() })
	return &testBundle{pool: pool, sandbox: sb, sandboxURL: srv.URL, reg: prometheus.NewRegistry(),
		client: onfleet.New(onfleet.Options{BaseURL: srv.URL, APIKey: "k", Limiter: lim, Timeout: 5 * time.Second})}
}

// dispatchedOrders creates n tasks at the sandbox and n orders dispatched to them an hour ago.
func (b *testBundle) dispatchedOrders(t *testing.T, prefix string, n int) []string {
	t.Helper()
	ctx := context.Background()
	var refs []string
	for i := range n {
		ext := fmt.Sprintf("%s-%d", prefix, i)
		id, _ := dbtest.InsertOrder(t, b.pool, dbtest.Order{ExternalID: ext})
		task, err := b.client.CreateTask(ctx, carrier.Request{OrderID: id, ExternalID: ext,
			Payload: orders.Payload{Recipient: orders.Recipient{Name: "Ada", Phone: "+15550100"}, Address: orders.Address{Line1: "1 Main St", City: "Springfield", Country: "US"}}})
		require.NoError(t, err)
		_, err = b.pool.Exec(ctx, `UPDATE waybill.orders SET status = 'dispatched', carrier_ref = $2, created_at = now() - interval '1 hour',
			dispatched_at = now() - interval '1 hour', status_at = now() - interval '1 hour' WHERE id = $1`, id, task.ID)
		require.NoError(t, err)
		refs = append(refs, task.ID)
	}
	return refs
}

// waitCompleted waits for the sandbox to finish every task's lifecycle.
func (b *testBundle) waitCompleted(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool { return b.sandbox.Stats().Webhooks.InFlight == 0 }, 20*time.Second, 10*time.Millisecond)
}

func (b *testBundle) reconciler(t *testing.T) *Reconciler {
	t.Helper()
	m, err := NewMetrics(b.reg, b.pool, time.Minute, nil, onfleet.Name)
	require.NoError(t, err)
	// No River here: nothing acts on the stored events, so don't wait for it between rounds.
	return New(Config{Pool: b.pool, Onfleet: b.client, After: time.Minute, Metrics: m, ActWait: time.Millisecond})
}

func TestCycleStoresWhatTheCarrierSays(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, nil)
	refs := b.dispatchedOrders(t, "SO", 5)
	b.waitCompleted(t)
	r := b.reconciler(t)

	require.Equal(t, 5.0, testutil.ToFloat64(metricVec(t, b.reg, "waybill_reconcile_due_orders")), "due before the cycle")
	res, err := r.Cycle(ctx)
	require.NoError(t, err)
	got := res[onfleet.Name]
	// Five tasks created within the hour by Waybill: one page of GET /tasks/all beats five GETs.
	require.Equal(t, Result{Due: 5, Checked: 5, Events: 15, Requests: 1, Method: "list"}, got)
	require.EqualValues(t, 1, b.sandbox.Stats().Requests.ListTasks)

	// Each order: assigned, started, completed or failed, stored as polled events with their
	// translate jobs.
	var events, jobs, checks int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM waybill.webhook_events WHERE learnt_by = 'poll' AND source_addr = 'reconcile'`).Scan(&events))
	require.Equal(t, 15, events)
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM waybill.river_job WHERE kind = 'webhook_translate'`).Scan(&jobs))
	require.Equal(t, 15, jobs)
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM waybill.reconcile_checks WHERE carrier_state = '3'`).Scan(&checks))
	require.Equal(t, 5, checks)
	for _, ref := range refs {
		var n int
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM waybill.webhook_events WHERE event_key LIKE '%' || $1 || '%'`, ref).Scan(&n))
		require.Equal(t, 3, n, ref)
	}
	require.Zero(t, testutil.ToFloat64(metricVec(t, b.reg, "waybill_reconcile_due_orders")), "looked up: not due again for WAYBILL_RECONCILE_AFTER")

	// Looked up: not due again until After has passed.
	res, err = r.Cycle(ctx)
	require.NoError(t, err)
	require.Equal(t, Result{}, res[onfleet.Name])

	// A lone due order is one GET.
	b.dispatchedOrders(t, "LONE", 1)
	b.waitCompleted(t)
	res, err = r.Cycle(ctx)
	require.NoError(t, err)
	require.Equal(t, Result{Due: 1, Checked: 1, Events: 3, Requests: 1, Method: "get"}, res[onfleet.Name])
}

// metricVec reads the one series of a gauge the collector reports for onfleet.
func metricVec(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() == name {
			for _, m := range f.GetMetric() {
				return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x"}, func() float64 { return m.GetGauge().GetValue() })
			}
		}
	}
	t.Fatalf("no %s", name)
	return nil
}

// With dispatch keeping the organisation's shared limit busy, reconciliation (Low, patient)
// stands back: dispatch gets the tokens, reconciliation's requests wait until dispatch stops.
func TestCycleYieldsToDispatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const rate = 20
	var limiter *ratelimit.Shared
	b := setup(t, func(pool *pgxpool.Pool) carrier.Limiter {
		limiter = ratelimit.NewShared(pool, onfleet.Name, rate, nil)
		return limiter
	})
	b.dispatchedOrders(t, "Y", 4)
	b.waitCompleted(t)
	// Orders dispatched days apart: a listing would cost more than one GET each.
	_, err := b.pool.Exec(ctx, `UPDATE waybill.orders SET dispatched_at = now() - interval '1 day' * id`)
	require.NoError(t, err)
	// Other orders of ours since then, as a busy organisation has.
	dbtest.InsertMany(t, b.pool, "OTHER", 300, dbtest.Order{})
	_, err = b.pool.Exec(ctx, `UPDATE waybill.orders SET status = 'delivered', dispatched_at = now() WHERE external_id LIKE 'OTHER-%'`)
	require.NoError(t, err)

	// dispatch saturates the limit for a while: 4 workers always waiting for a token.
	saturate := func(d time.Duration) int64 {
		var taken atomic.Int64
		dctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for limiter.Wait(dctx, ratelimit.High) == nil {
					taken.Add(1)
				}
			})
		}
		wg.Wait()
		return taken.Load()
	}
	alone := saturate(2 * time.Second)

	r := b.reconciler(t)
	before := b.sandbox.Stats().Requests.GetTask
	var cycleErr error
	var res map[string]Result
	done := make(chan struct{})
	go func() {
		defer close(done)
		res, cycleErr = r.Cycle(ctx)
	}()
	withReconcile := saturate(2 * time.Second)
	duringSaturation := b.sandbox.Stats().Requests.GetTask - before
	<-done
	require.NoError(t, cycleErr)
	t.Logf("dispatch tokens in 2s: alone %d, with reconciliation waiting %d; reconciliation requests meanwhile: %d, after: %d",
		alone, withReconcile, duringSaturation, res[onfleet.Name].Requests)
	require.LessOrEqual(t, duringSaturation, int64(2), "reconciliation stood back while dispatch needed the whole limit")
	require.Equal(t, 4, res[onfleet.Name].Checked, "and caught up once dispatch stopped")
}
