package dispatch_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/background"
	"github.com/waybill/waybill/internal/carrier"
	"github.com/waybill/waybill/internal/carrier/onfleet"
	"github.com/waybill/waybill/internal/carrier/sandbox"
	"github.com/waybill/waybill/internal/dbtest"
	"github.com/waybill/waybill/internal/dispatch"
	"github.com/waybill/waybill/internal/ratelimit"
)

type testBundle struct {
	pool       *pgxpool.Pool
	sandbox    *sandbox.Server
	sandboxURL string
	hooks      *recordingHooks
	client     *river.Client[pgx.Tx]
	maxAttempt *atomic.Int64 // highest attempt a dispatch job ran with
}

// tasksFor asks the sandbox, over its HTTP API, which tasks exist for an order.
func (b *testBundle) tasksFor(t *testing.T, externalID string) []sandbox.Task {
	t.Helper()
	resp, err := http.Get(b.sandboxURL + "/sandbox/tasks?external_id=" + url.QueryEscape(externalID))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var tasks []sandbox.Task
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&tasks))
	return tasks
}

type setupOpts struct {
	sandbox       sandbox.Options
	clientTimeout time.Duration
	rateLimit     float64 // requests/s shared through Postgres; 0: none
	stuckAfter    time.Duration
	workers       int // River's dispatch workers (default 20)
	keepFinished  bool
	inFlight      int // requests in flight per carrier (default: the dispatcher's)
}

// setup runs a real River client with the dispatch worker against a real sandbox carrier.
func setup(t *testing.T, opts setupOpts) *testBundle {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	pool, _ := dbtest.NewPool(t)

	sb := sandbox.New(opts.sandbox, logger)
	t.Cleanup(sb.Close)
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)

	if opts.clientTimeout == 0 {
		opts.clientTimeout = 5 * time.Second
	}
	hooks := &recordingHooks{}
	completer := dispatch.NewStore(dispatch.StoreConfig{Pool: pool, Hooks: hooks, Logger: logger, KeepFinishedJobs: opts.keepFinished})
	limiters := map[string]carrier.Limiter{}
	if opts.rateLimit > 0 {
		limiters["onfleet"] = ratelimit.NewShared(pool, "onfleet", opts.rateLimit, logger)
	}
	dispatcher := dispatch.NewDispatcher(dispatch.DispatcherConfig{
		Pool: pool,
		Carriers: map[string]carrier.Carrier{"onfleet": onfleet.New(onfleet.Options{
			BaseURL: srv.URL, APIKey: "test-key", Timeout: opts.clientTimeout, Logger: logger, Limiter: limiters["onfleet"],
		})},
		Limiters:       limiters,
		Store:          completer,
		Hooks:          hooks,
		Logger:         logger,
		AmbiguousAfter: time.Second,
		PollEvery:      200 * time.Millisecond,
		StuckAfter:     cmp.Or(opts.stuckAfter, time.Minute),
		InFlight:       opts.inFlight,
	})
	workers := river.NewWorkers()
	river.AddWorker(workers, dispatch.NewWorker(dispatch.WorkerConfig{
		Dispatcher: dispatcher,
		Store:      completer,
		Pool:       pool,
		Logger:     logger,
		AuthRetry:  200 * time.Millisecond,
	}))
	var loops background.Group
	loops.Start(ctx, completer.Run)
	loops.Start(ctx, dispatcher.Run)
	t.Cleanup(loops.Stop) // after River stops: the dispatcher, then the completer
	maxAttempt := &atomic.Int64{}
	client, _ := dbtest.StartRiver(t, pool, &river.Config{
		Middleware: []rivertype.Middleware{river.WorkerMiddlewareFunc(
			func(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
				for cur := maxAttempt.Load(); int64(job.Attempt) > cur && !maxAttempt.CompareAndSwap(cur, int64(job.Attempt)); {
					cur = maxAttempt.Load()
				}
				return doInner(ctx)
			})},
		Workers:           workers,
		Queues:            map[string]river.QueueConfig{dispatch.QueueDispatch: {MaxWorkers: cmp.Or(opts.workers, 20)}},
		FetchPollInterval: 20 * time.Millisecond,
		FetchCooldown:     5 * time.Millisecond,
		RetryPolicy:       dbtest.FastRetry{},
		JobTimeout:        10 * time.Second,
	})
	return &testBundle{pool: pool, sandbox: sb, sandboxURL: srv.URL, hooks: hooks, client: client, maxAttempt: maxAttempt}
}

// waitFor polls query (a single count) until it returns want.
func waitFor(t *testing.T, pool *pgxpool.Pool, want int, timeout time.Duration, query string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var got int
	for time.Now().Before(deadline) {
		require.NoError(t, pool.QueryRow(context.Background(), query, args...).Scan(&got))
		if got == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: got %d, want %d after %s", query, got, want, timeout)
}

// requireExactlyOneTaskEach checks the sandbox's own records: one task per order, and the
// order's carrier_ref is that task.
func requireExactlyOneTaskEach(t *testing.T, b *testBundle, n int) {
	t.Helper()
	stats := b.sandbox.Stats()
	require.Empty(t, stats.DuplicatedExternalIDs)
	require.EqualValues(t, n, stats.TasksCreated)
	rows, err := b.pool.Query(context.Background(), `SELECT external_id, carrier_ref, tracking_url FROM waybill.orders`)
	require.NoError(t, err)
	orders, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct{ ExternalID, CarrierRef, TrackingURL string }])
	require.NoError(t, err)
	require.Len(t, orders, n)
	for _, o := range orders {
		tasks := b.tasksFor(t, o.ExternalID)
		require.Len(t, tasks, 1, o.ExternalID)
		require.Equal(t, tasks[0].ID, o.CarrierRef)
		require.Equal(t, tasks[0].TrackingURL, o.TrackingURL)
	}
}

func TestDispatchHappyPath(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	dbtest.InsertOrders(t, b.pool, "SO", 50, dbtest.Order{})

	waitFor(t, b.pool, 50, 20*time.Second, `SELECT count(*) FROM waybill.orders WHERE status = 'dispatched' AND dispatched_at IS NOT NULL`)
	// The order update and the end of its job commit together: done jobs are deleted.
	waitFor(t, b.pool, 0, 5*time.Second, `SELECT count(*) FROM waybill.river_job WHERE kind = 'dispatch_order'`)
	requireExactlyOneTaskEach(t, b, 50)
	require.Equal(t, 50, b.hooks.count("dispatched"))
}

// A dispatch job run for an order already at the carrier (a redrive, or a rescued job whose
// first run got through) ends without calling the carrier.
func TestDispatchAlreadyAtCarrier(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, setupOpts{})
	dbtest.InsertOrders(t, b.pool, "AGAIN", 1, dbtest.Order{})
	waitFor(t, b.pool, 1, 20*time.Second, `SELECT count(*) FROM waybill.orders WHERE external_id = 'AGAIN-0' AND carrier_ref IS NOT NULL`)
	waitFor(t, b.pool, 0, 5*time.Second, `SELECT count(*) FROM waybill.river_job WHERE kind = 'dispatch_order'`)
	calls := b.hooks.count("create:ok")

	var a dispatch.Args
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT id, external_id, carrier FROM waybill.orders WHERE external_id = 'AGAIN-0'`).
		Scan(&a.OrderID, &a.ExternalID, &a.Carrier))
	_, err := b.client.Insert(ctx, a, nil)
	require.NoError(t, err)
	waitFor(t, b.pool, 0, 20*time.Second, `SELECT count(*) FROM waybill.river_job WHERE kind = 'dispatch_order'`)
	require.Equal(t, calls, b.hooks.count("create:ok"))
	require.Zero(t, b.hooks.count("find:ok"))
	requireExactlyOneTaskEach(t, b, 1)
}

// 503s, 429s and answers that come after our timeout (the task exists): nothing lost, nothing
// created twice.
func TestDispatchUnderFaults(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{
		sandbox: sandbox.Options{
			ErrorRate: 0.25, RateLimitRate: 0.2, LateRate: 0.2, LateDelay: 700 * time.Millisecond,
			Seed: 42, WebhookStep: time.Second, WebhookWorkers: 1,
		},
		clientTimeout: 300 * time.Millisecond,
	})
	dbtest.InsertOrders(t, b.pool, "F", 60, dbtest.Order{})

	waitFor(t, b.pool, 60, 60*time.Second, `SELECT count(*) FROM waybill.orders WHERE status = 'dispatched'`)
	requireExactlyOneTaskEach(t, b, 60)
	stats := b.sandbox.Stats()
	require.Positive(t, stats.Requests.InjectedError)
	require.Positive(t, stats.Requests.InjectedRateLimit)
	require.Positive(t, stats.Requests.CreatedLate, "some tasks were created although we timed out")
	require.Positive(t, stats.Requests.MetadataQuery, "retries looked the task up first")
	require.Positive(t, b.hooks.count("create:rate_limited"))

	// 429s used up no attempt: only transient failures count as attempts.
	require.Greater(t, b.maxAttempt.Load(), int64(1), "503s and late answers were retried")
	require.Less(t, b.maxAttempt.Load(), int64(10))
}

// A carrier that refuses the order for good: rejected with its words, the job ends dead.
func TestDispatchRejected(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	dbtest.InsertOrders(t, b.pool, "BAD", 1, dbtest.Order{Payload: `{"recipient":{"name":"A","phone":"+14155550100"},"address":{"line1":"UNGEOCODABLE 1","city":"x","country":"US"}}`})
	dbtest.InsertOrders(t, b.pool, "OK", 1, dbtest.Order{})

	waitFor(t, b.pool, 1, 20*time.Second, `SELECT count(*) FROM waybill.orders WHERE status = 'rejected' AND status_reason LIKE '%geocoded%'`)
	waitFor(t, b.pool, 1, 20*time.Second, `SELECT count(*) FROM waybill.orders WHERE status = 'dispatched'`)
	waitFor(t, b.pool, 1, 5*time.Second, `SELECT count(*) FROM waybill.river_job WHERE kind = 'dispatch_order' AND state = 'cancelled' AND attempt = 1`)
	waitFor(t, b.pool, 1, 5*time.Second, `SELECT count(*) FROM waybill.dead_jobs WHERE external_id = 'BAD-0' AND reason LIKE '%geocoded%'`)
}

// Refused credentials: the order waits (snoozed, no attempt used), nothing is rejected, and it
// goes out once the key works.
func TestDispatchUnauthorizedKeepsRetrying(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{sandbox: sandbox.Options{APIKey: "the-real-key", WebhookStep: time.Second, WebhookWorkers: 1}})
	dbtest.InsertOrders(t, b.pool, "AUTH", 3, dbtest.Order{})

	deadline := time.Now().Add(10 * time.Second)
	for b.hooks.count("auth:false") < 6 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	require.GreaterOrEqual(t, b.hooks.count("auth:false"), 6, "jobs keep retrying")
	var pending, attempts int
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT count(*) FROM waybill.orders WHERE status = 'pending'`).Scan(&pending))
	require.Equal(t, 3, pending)
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT max(attempt) FROM waybill.river_job WHERE kind = 'dispatch_order'`).Scan(&attempts))
	require.LessOrEqual(t, attempts, 1, "snoozes use no attempt")
	require.Zero(t, b.sandbox.Stats().TasksCreated)
}

type recordingHooks struct {
	mu     sync.Mutex
	counts map[string]int
}

func (h *recordingHooks) inc(k string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.counts == nil {
		h.counts = map[string]int{}
	}
	h.counts[k]++
}

func (h *recordingHooks) count(k string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.counts[k]
}

func (h *recordingHooks) CarrierRequest(_, op, outcome string)      { h.inc(op + ":" + outcome) }
func (h *recordingHooks) Dispatched(time.Time, time.Time)           { h.inc("dispatched") }
func (h *recordingHooks) BatchStuck(context.Context, string, int64) { h.inc("stuck") }
func (h *recordingHooks) CarrierAuth(_ context.Context, _ string, ok bool) {
	h.inc(fmt.Sprintf("auth:%v", ok))
}

// WAYBILL_KEEP_FINISHED_JOBS: the order is recorded the same, and its job stays, completed, for
// River UI (and River's cleaner), instead of being deleted.
func TestDispatchKeepsFinishedJobs(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{keepFinished: true})
	dbtest.InsertOrders(t, b.pool, "KEEP", 3, dbtest.Order{})
	waitFor(t, b.pool, 3, 20*time.Second, `SELECT count(*) FROM waybill.orders WHERE status = 'dispatched'`)
	waitFor(t, b.pool, 3, 5*time.Second, `SELECT count(*) FROM waybill.river_job WHERE kind = 'dispatch_order' AND state = 'completed' AND finalized_at IS NOT NULL`)
}
