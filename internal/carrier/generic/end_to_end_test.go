package generic

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/background"
	"github.com/waybill/waybill/internal/carrier"
	"github.com/waybill/waybill/internal/carrier/onfleet"
	"github.com/waybill/waybill/internal/dbsqlc"
	"github.com/waybill/waybill/internal/dbtest"
	"github.com/waybill/waybill/internal/dispatch"
	"github.com/waybill/waybill/internal/orders"
	"github.com/waybill/waybill/internal/ratelimit"
	"github.com/waybill/waybill/internal/webhook"
)

// acmePayload is an order Acme takes as it is: dbtest.Payload's Springfield would draw Acme's
// geocoding warning.
const acmePayload = `{"recipient": {"name": "Ada Lovelace", "phone": "+14155550100"},
		"address": {"line1": "1 Market St", "city": "San Francisco", "country": "US"}}`

type e2eBundle struct {
	pool     *pgxpool.Pool
	acme     *acmeServer
	webhooks *httptest.Server
}

// e2eOptions change what setupEndToEndWith runs.
type e2eOptions struct {
	// rateLimit, when set, is the carrier's budget in requests per second, shared through
	// Postgres by dispatch and the carrier as serve shares it.
	rateLimit float64
	// dispatchWorkers is how many dispatch jobs run at once; 0 means 5.
	dispatchWorkers int
}

// setupEndToEnd runs what `waybill serve` runs for a configured carrier, wired as the daemon
// wires it: the carrier registered in waybill.carriers, River with the dispatch worker and the
// webhook pipeline's workers, and the webhook intake, against the Acme API server.
func setupEndToEnd(t *testing.T) *e2eBundle {
	t.Helper()
	return setupEndToEndWith(t, e2eOptions{})
}

func setupEndToEndWith(t *testing.T, opts e2eOptions) *e2eBundle {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	pool, _ := dbtest.NewPool(t)
	acme := newAcmeServer(t)

	cfg := exampleConfig(t, acmeEnv(acme.baseURL()))
	limiters := map[string]carrier.Limiter{}
	if opts.rateLimit > 0 {
		cfg.RateLimit = opts.rateLimit
		cfg.Limiter = ratelimit.NewShared(pool, cfg.Name, cfg.RateLimit, logger)
		limiters[cfg.Name] = cfg.Limiter
	}
	acmeCarrier, err := New(cfg, logger)
	require.NoError(t, err)
	require.NoError(t, dbsqlc.New().CarrierEnsure(ctx, pool, []string{acmeCarrier.Name()}))
	onfleetSource, err := onfleet.NewSource(nil)
	require.NoError(t, err)
	sources, err := carrier.NewSources(onfleetSource, acmeCarrier.WebhookSource())
	require.NoError(t, err)

	completer := dispatch.NewStore(dispatch.StoreConfig{Pool: pool, Hooks: nil, Logger: logger})
	dispatcher := dispatch.NewDispatcher(dispatch.DispatcherConfig{
		Pool: pool, Store: completer, Logger: logger, AmbiguousAfter: 500 * time.Millisecond,
		Carriers: map[string]carrier.Carrier{acmeCarrier.Name(): acmeCarrier},
		Limiters: limiters,
	})
	workers := river.NewWorkers()
	river.AddWorker(workers, dispatch.NewWorker(dispatch.WorkerConfig{
		Dispatcher: dispatcher,
		Store:      completer,
		Pool:       pool,
		Logger:     logger,
	}))
	pipeline, err := webhook.NewPipeline(webhook.Deps{Pool: pool, Sources: sources, Logger: logger})
	require.NoError(t, err)
	require.NoError(t, pipeline.Add(workers)) // without Run: each job in a transaction of its own
	queues := webhook.Queues(5)
	queues[dispatch.QueueDispatch] = river.QueueConfig{MaxWorkers: cmp.Or(opts.dispatchWorkers, 5)}
	var loops background.Group
	loops.Start(ctx, completer.Run)
	loops.Start(ctx, dispatcher.Run)
	t.Cleanup(loops.Stop) // after River stops: the dispatcher, then the completer
	dbtest.StartRiver(t, pool, &river.Config{
		Workers:           workers,
		Queues:            queues,
		FetchPollInterval: 20 * time.Millisecond,
		FetchCooldown:     5 * time.Millisecond,
		RetryPolicy:       dbtest.FastRetry{},
		JobTimeout:        10 * time.Second,
		// Email and Slack jobs are enqueued for the notify workers, which are not run here.
		SkipUnknownJobCheck: true,
	})

	intake, err := webhook.NewHandler(webhook.HandlerConfig{Pool: pool, Sources: sources, Logger: logger})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /webhooks/{carrier}", intake.ServeEvent)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &e2eBundle{pool: pool, acme: acme, webhooks: srv}
}

// postWebhook sends body to POST /webhooks/acme, signed as Acme signs, and returns the status.
func (b *e2eBundle) postWebhook(t *testing.T, body []byte, secret string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.webhooks.URL+"/webhooks/acme", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Acme-Signature", "sha256="+hex.EncodeToString(hmacOf(secret, body)))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	return resp.StatusCode
}

type e2eOrder struct {
	Status       orders.Status
	StatusReason *string
	CarrierRef   *string
	TrackingURL  *string
}

func (b *e2eBundle) order(t *testing.T, id int64) e2eOrder {
	t.Helper()
	var o e2eOrder
	require.NoError(t, b.pool.QueryRow(context.Background(),
		`SELECT status, status_reason, carrier_ref, tracking_url FROM waybill.orders WHERE id = $1`, id).
		Scan(&o.Status, &o.StatusReason, &o.CarrierRef, &o.TrackingURL))
	return o
}

func (b *e2eBundle) waitStatus(t *testing.T, id int64, want orders.Status) e2eOrder {
	t.Helper()
	var o e2eOrder
	require.Eventually(t, func() bool {
		o = b.order(t, id)
		return o.Status == want
	}, 20*time.Second, 10*time.Millisecond, "order %d never became %s", id, want)
	return o
}

// waitTranslated waits until every stored webhook has been translated and acted on.
func (b *e2eBundle) waitIdle(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool {
		var n int
		err := b.pool.QueryRow(context.Background(), `SELECT count(*) FROM waybill.river_job
			WHERE queue IN ('translate', 'act') AND state IN ('available', 'running', 'pending', 'scheduled', 'retryable')`).Scan(&n)
		return err == nil && n == 0
	}, 20*time.Second, 10*time.Millisecond)
}

func acmeEvent(eventID, deliveryID, reference, status, at string) []byte {
	return fmt.Appendf(nil, `{"id": %q, "type": "delivery.updated", "occurred_at": %q,
		"data": {"delivery_id": %q, "reference": %q, "status": %q, "status_reason": null,
		"tracking_url": "https://track.acme.example/%s", "eta": null, "courier": {"name": "Jo Rider"}}}`,
		eventID, at, deliveryID, reference, status, deliveryID)
}

// An order for the configured carrier is dispatched through Acme's API, and Acme's signed
// "complete" webhook makes it delivered, with its history: configuration only, no Acme code.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupEndToEnd(t)

	orderID, _ := dbtest.InsertOrder(t, b.pool, dbtest.Order{ExternalID: "SO-E2E-1", Carrier: "acme",
		Payload: strings.Replace(acmePayload, "}}", `}, "notes": "side door"}`, 1)})

	o := b.waitStatus(t, orderID, orders.StatusDispatched)
	require.NotNil(t, o.CarrierRef)
	taskID := *o.CarrierRef
	require.Equal(t, "https://track.acme.example/"+taskID, *o.TrackingURL)
	require.Equal(t, 1, b.acme.taskCount())
	sent := b.acme.lastRequest(t)
	require.Equal(t, "SO-E2E-1", sent.Header.Get("Idempotency-Key"))
	require.Contains(t, string(sent.Body), `"instructions": "side door"`)
	require.Contains(t, string(sent.Body), fmt.Sprintf(`"metadata": {"waybill_order_id": %d}`, orderID))

	// A forged webhook is refused and changes nothing.
	complete := acmeEvent("evt_e2e_3", taskID, "SO-E2E-1", "complete", "2025-03-01T15:00:00Z")
	require.Equal(t, http.StatusUnauthorized, b.postWebhook(t, complete, "not-the-secret"))

	require.Equal(t, http.StatusOK, b.postWebhook(t, acmeEvent("evt_e2e_1", taskID, "SO-E2E-1", "courier_assigned", "2025-03-01T12:00:00Z"), testSecret))
	b.waitStatus(t, orderID, orders.StatusAssigned)
	require.Equal(t, http.StatusOK, b.postWebhook(t, complete, testSecret))
	b.waitStatus(t, orderID, orders.StatusDelivered)
	// Redelivered, and a late "collected" that must not move a delivered order back.
	require.Equal(t, http.StatusOK, b.postWebhook(t, complete, testSecret))
	require.Equal(t, http.StatusOK, b.postWebhook(t, acmeEvent("evt_e2e_2", taskID, "SO-E2E-1", "collected", "2025-03-01T13:00:00Z"), testSecret))
	b.waitIdle(t)
	require.Equal(t, orders.StatusDelivered, b.order(t, orderID).Status)

	history, err := dbsqlc.New().OrderEventListByOrderID(ctx, b.pool, orderID)
	require.NoError(t, err)
	type row struct {
		Status        string
		CarrierStatus string
		OccurredAt    time.Time
		Applied       bool
		EventKey      string
	}
	var got []row
	for _, ev := range history {
		var status string
		if ev.Status != nil {
			status = *ev.Status
		}
		got = append(got, row{status, ev.CarrierStatus, ev.OccurredAt.UTC(), ev.Applied, ev.EventKey})
	}
	require.Equal(t, []row{
		{"assigned", "courier_assigned", time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), true, "evt_e2e_1"},
		{"in_transit", "collected", time.Date(2025, 3, 1, 13, 0, 0, 0, time.UTC), false, "evt_e2e_2"},
		{"delivered", "complete", time.Date(2025, 3, 1, 15, 0, 0, 0, time.UTC), true, "evt_e2e_3"},
	}, got)

	var stored int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM waybill.webhook_events WHERE carrier = 'acme'`).Scan(&stored))
	require.Equal(t, 3, stored, "the redelivery is not stored twice; the forgery not at all")
}

// Acme creates the task but answers 503: the retry finds the task instead of creating a second.
func TestEndToEndAmbiguousCreate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupEndToEnd(t)
	var failed atomic.Bool
	b.acme.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPost || !failed.CompareAndSwap(false, true) {
			return false
		}
		b.acme.addTask("SO-E2E-2")
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	})

	orderID, _ := dbtest.InsertOrder(t, b.pool, dbtest.Order{ExternalID: "SO-E2E-2", Carrier: "acme", Kind: "pickup", Payload: acmePayload})
	o := b.waitStatus(t, orderID, orders.StatusDispatched)
	require.Equal(t, "dlv_0001", *o.CarrierRef)
	require.Equal(t, 1, b.acme.taskCount())
	require.Equal(t, http.MethodGet, b.acme.lastRequest(t).Method, "the second attempt looked the task up")

	// A failed attempt reaches the order with Acme's reason.
	failedBody := bytes.Replace(acmeEvent("evt_e2e_9", "dlv_0001", "SO-E2E-2", "attempt_failed", "2025-03-01T16:00:00Z"),
		[]byte(`"status_reason": null`), []byte(`"status_reason": "nobody home"`), 1)
	require.Equal(t, http.StatusOK, b.postWebhook(t, failedBody, testSecret))
	o = b.waitStatus(t, orderID, orders.StatusFailedAttempt)
	require.NotNil(t, o.StatusReason)
	require.Contains(t, *o.StatusReason, "nobody home")

	var n int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM waybill.river_job WHERE kind = 'notify_email'`).Scan(&n))
	require.Equal(t, 1, n, "the logistics team is told")
}

// A carrier with one word for "done": its "complete" on a pickup order means picked up.
func TestEndToEndPickupCompleted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupEndToEnd(t)

	orderID, _ := dbtest.InsertOrder(t, b.pool, dbtest.Order{ExternalID: "RET-E2E-1", Carrier: "acme", Kind: "pickup", Payload: acmePayload})
	o := b.waitStatus(t, orderID, orders.StatusDispatched)
	require.Equal(t, http.StatusOK, b.postWebhook(t, acmeEvent("evt_pk_1", *o.CarrierRef, "RET-E2E-1", "complete", "2025-03-01T15:00:00Z"), testSecret))
	b.waitStatus(t, orderID, orders.StatusPickedUp)
	history, err := dbsqlc.New().OrderEventListByOrderID(ctx, b.pool, orderID)
	require.NoError(t, err)
	require.Len(t, history, 1)
	require.Equal(t, "picked_up", *history[0].Status)
}

// Orders inserted in one statement go out in a few create_batch requests at the carrier's
// limit, each order once: created ones are dispatched from their own result (matched by
// reference, Acme answering out of order), the one Acme refuses alone is rejected with Acme's
// words and its own dead letter, and a warning lands in its order's history.
func TestEndToEndBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupEndToEndWith(t, e2eOptions{rateLimit: 4, dispatchWorkers: 300})
	const n = 250 // more than one request's max (100)

	rows, err := b.pool.Query(ctx, `INSERT INTO waybill.orders (external_id, carrier, payload)
		SELECT 'SO-B-' || i, 'acme', jsonb_build_object(
			'recipient', jsonb_build_object('name', 'Ada Lovelace', 'phone', '+14155550100'),
			'address', jsonb_build_object('line1', i || ' Market St', 'country', 'US',
				'city', CASE i WHEN 7 THEN 'Atlantis' WHEN 8 THEN 'Springfield' ELSE 'San Francisco' END))
		FROM generate_series(1, $1::int) AS i
		RETURNING external_id, id`, n)
	require.NoError(t, err)
	ids := map[string]int64{}
	for rows.Next() {
		var ext string
		var id int64
		require.NoError(t, rows.Scan(&ext, &id))
		ids[ext] = id
	}
	require.NoError(t, rows.Err())
	require.Len(t, ids, n)

	require.Eventually(t, func() bool {
		var pending int
		err := b.pool.QueryRow(ctx, `SELECT count(*) FROM waybill.orders WHERE status = 'pending'`).Scan(&pending)
		return err == nil && pending == 0
	}, 30*time.Second, 20*time.Millisecond, "every order dispatched or rejected")

	// Few requests, each order in exactly one of them.
	sizes := b.acme.batchSizes()
	singles := 0
	for _, r := range b.acme.allRequests() {
		if r.Method == http.MethodPost && r.Path == "/v1/deliveries" {
			singles++
		}
	}
	t.Logf("%d orders went out in batches of %v and %d alone", n, sizes, singles)
	sent := singles
	for _, size := range sizes {
		require.LessOrEqual(t, size, 100, "create_batch.max")
		sent += size
	}
	require.Equal(t, n, sent, "no order was sent twice: batches %v and %d alone", sizes, singles)
	require.GreaterOrEqual(t, len(sizes), 3)
	require.LessOrEqual(t, len(sizes)+singles, 12, "requests follow the rate limit, not the orders: batches %v", sizes)

	tasks := b.acme.tasksByReference()
	require.Len(t, tasks, n-1)
	require.NotContains(t, tasks, "SO-B-7")
	for ext, id := range ids {
		o := b.order(t, id)
		if ext == "SO-B-7" {
			require.Equal(t, orders.StatusRejected, o.Status)
			require.NotNil(t, o.StatusReason)
			require.Contains(t, *o.StatusReason, "address could not be geocoded")
			continue
		}
		require.Equal(t, 1, tasks[ext], "one task for %s", ext)
		require.Equal(t, orders.StatusDispatched, o.Status, ext)
		require.NotNil(t, o.CarrierRef)
		require.Equal(t, "https://track.acme.example/"+*o.CarrierRef, *o.TrackingURL)
	}
	// Results were matched by reference: each order holds the task created for it.
	refs := map[string]string{}
	for _, task := range b.acme.allTasks() {
		refs[task.ID] = task.Reference
	}
	for ext, id := range ids {
		if o := b.order(t, id); o.CarrierRef != nil {
			require.Equal(t, ext, refs[*o.CarrierRef])
		}
	}

	// The refused order alone is a dead letter, with Acme's words.
	var dead []struct {
		OrderID int64
		State   string
		Reason  string
	}
	require.Eventually(t, func() bool {
		rows, err := b.pool.Query(ctx, `SELECT order_id, state, reason FROM waybill.dead_jobs WHERE carrier = 'acme'`)
		if err != nil {
			return false
		}
		dead = dead[:0]
		for rows.Next() {
			var d struct {
				OrderID int64
				State   string
				Reason  string
			}
			if rows.Scan(&d.OrderID, &d.State, &d.Reason) != nil {
				return false
			}
			dead = append(dead, d)
		}
		return rows.Err() == nil && len(dead) > 0
	}, 10*time.Second, 20*time.Millisecond)
	require.Len(t, dead, 1)
	require.Equal(t, ids["SO-B-7"], dead[0].OrderID)
	require.Equal(t, "cancelled", dead[0].State)
	require.Contains(t, dead[0].Reason, "address could not be geocoded")

	// The warning is in its order's history.
	var warning string
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT details->>'warning' FROM waybill.order_events
		WHERE order_id = $1 AND carrier_status = 'taskCreatedWithWarnings'`, ids["SO-B-8"]).Scan(&warning))
	require.Equal(t, "several cities named Springfield; matched the first", warning)

	// Every batch request was recorded before it went out and settled by its answer.
	var unsettled, answered int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state <> 'finished'),
		count(*) FILTER (WHERE settled_by = 'answer') FROM waybill.dispatch_batches`).Scan(&unsettled, &answered))
	require.Zero(t, unsettled)
	require.Equal(t, len(sizes)+singles, answered, "every request, batch or lone order, settled by its answer")
}
