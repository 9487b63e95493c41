package generic

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/carrier"
	"github.com/waybill/waybill/internal/dbsqlc"
	"github.com/waybill/waybill/internal/dbtest"
	"github.com/waybill/waybill/internal/dispatch"
	"github.com/waybill/waybill/internal/orders"
	"github.com/waybill/waybill/internal/webhook"
)

// fastRetry keeps the retry after a carrier failure short.
type fastRetry struct{}

func (fastRetry) NextRetry(job *rivertype.JobRow) time.Time {
	return time.Now().Add(time.Duration(job.Attempt) * 50 * time.Millisecond)
}

type e2eBundle struct {
	pool     *pgxpool.Pool
	acme     *acmeServer
	webhooks *httptest.Server
}

// setupEndToEnd runs what `waybill serve` runs for a configured carrier, wired as the daemon
// wires it: the carrier registered in waybill.carriers, River with the dispatch worker and the
// webhook pipeline's workers, and the webhook intake, against the Acme API server.
func setupEndToEnd(t *testing.T) *e2eBundle {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	pool, _ := dbtest.NewPool(t)
	acme := newAcmeServer(t)

	cfg := exampleConfig(t, acmeEnv(acme.baseURL()))
	acmeCarrier, err := New(cfg, logger)
	require.NoError(t, err)
	require.NoError(t, dbsqlc.New().CarrierEnsure(ctx, pool, []string{acmeCarrier.Name()}))
	onfleetSource, err := webhook.NewOnfleet(nil)
	require.NoError(t, err)
	sources, err := webhook.NewSources(onfleetSource, acmeCarrier.WebhookSource())
	require.NoError(t, err)

	completer := dispatch.NewBatchCompleter(pool, nil, logger)
	workers := river.NewWorkers()
	river.AddWorker(workers, dispatch.NewWorker(dispatch.WorkerConfig{
		Carriers:  map[string]carrier.Carrier{acmeCarrier.Name(): acmeCarrier},
		Completer: completer,
		Pool:      pool,
		Logger:    logger,
	}))
	require.NoError(t, webhook.AddWorkers(workers, webhook.Deps{Pool: pool, Sources: sources, Logger: logger}))
	queues := webhook.Queues(5)
	queues[dispatch.QueueDispatch] = river.QueueConfig{MaxWorkers: 5}
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Schema:            "waybill",
		Logger:            logger,
		Workers:           workers,
		Queues:            queues,
		FetchPollInterval: 20 * time.Millisecond,
		FetchCooldown:     5 * time.Millisecond,
		RetryPolicy:       fastRetry{},
		JobTimeout:        10 * time.Second,
		// Email and Slack jobs are enqueued for the notify workers, which are not run here.
		SkipUnknownJobCheck: true,
	})
	require.NoError(t, err)
	completerCtx, stopCompleter := context.WithCancel(ctx)
	completerDone := make(chan struct{})
	go func() { defer close(completerDone); completer.Run(completerCtx) }()
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, client.Stop(stopCtx))
		stopCompleter()
		<-completerDone
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

	var orderID int64
	require.NoError(t, b.pool.QueryRow(ctx, `INSERT INTO waybill.orders (external_id, carrier, payload) VALUES ($1, 'acme', $2) RETURNING id`,
		"SO-E2E-1", `{"recipient": {"name": "Ada Lovelace", "phone": "+14155550100"},
		"address": {"line1": "1 Market St", "city": "San Francisco", "country": "US"}, "notes": "side door"}`).Scan(&orderID))

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

	var orderID int64
	require.NoError(t, b.pool.QueryRow(ctx, `INSERT INTO waybill.orders (external_id, carrier, kind, payload) VALUES ($1, 'acme', 'pickup', $2) RETURNING id`,
		"SO-E2E-2", `{"recipient": {"name": "Ada Lovelace", "phone": "+14155550100"},
		"address": {"line1": "1 Market St", "city": "San Francisco", "country": "US"}}`).Scan(&orderID))
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

	var orderID int64
	require.NoError(t, b.pool.QueryRow(ctx, `INSERT INTO waybill.orders (external_id, carrier, kind, payload) VALUES ($1, 'acme', 'pickup', $2) RETURNING id`,
		"RET-E2E-1", `{"recipient": {"name": "Ada Lovelace", "phone": "+14155550100"},
		"address": {"line1": "1 Market St", "city": "San Francisco", "country": "US"}}`).Scan(&orderID))
	o := b.waitStatus(t, orderID, orders.StatusDispatched)
	require.Equal(t, http.StatusOK, b.postWebhook(t, acmeEvent("evt_pk_1", *o.CarrierRef, "RET-E2E-1", "complete", "2025-03-01T15:00:00Z"), testSecret))
	b.waitStatus(t, orderID, orders.StatusPickedUp)
	history, err := dbsqlc.New().OrderEventListByOrderID(ctx, b.pool, orderID)
	require.NoError(t, err)
	require.Len(t, history, 1)
	require.Equal(t, "picked_up", *history[0].Status)
}
