package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/dbtest"
)

// Orders go out, and the sandbox walks every task through its lifecycle with signed webhooks,
// some failed, duplicated and out of order, while forgeries arrive too: every order ends where
// its newest event says, history has one row per distinct event, nothing forged is stored.
func TestE2EWebhookLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, dbURL := dbtest.NewPool(t)

	addr := freeAddr(t)
	baseURL := "http://" + addr
	sandboxURL := startWebhookSandbox(t, addr, "--webhook-step", "150ms",
		"--webhook-failure-rate", "0.2", "--webhook-duplicate-rate", "0.3", "--webhook-reorder-rate", "0.3", "--seed", "11")
	// Not serveEnv: the default dispatch workers and carrier timeout.
	startServe(t, "serve", addr, []string{
		"DATABASE_URL=" + dbURL, "WAYBILL_HTTP_ADDR=" + addr, "ONFLEET_BASE_URL=" + sandboxURL,
		"ONFLEET_API_KEY=e2e", "ONFLEET_WEBHOOK_SECRET=" + webhookSecret,
		"WAYBILL_DB_MAX_CONNS=8", "WAYBILL_LOG_LEVEL=warn",
	})

	// Onfleet's URL check.
	resp, err := http.Get(baseURL + "/webhooks/onfleet?check=abc123")
	require.NoError(t, err)
	body := make([]byte, 16)
	n, _ := resp.Body.Read(body)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, "abc123", string(body[:n]))

	const total = 30
	insertN(t, pool, "WH", total, 0)

	// Forgeries while real events flow.
	forged := `{"taskId":"x","time":1,"triggerId":3,"triggerName":"taskCompleted","data":{"task":{"id":"x"}}}`
	for _, sig := range []string{"", "deadbeef", strings.Repeat("0", 128)} {
		req, _ := http.NewRequest(http.MethodPost, baseURL+"/webhooks/onfleet", strings.NewReader(forged))
		if sig != "" {
			req.Header.Set("X-Onfleet-Signature", sig)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	}

	// Wait until the sandbox has delivered every lifecycle and Waybill has acted on every event.
	deadline := time.Now().Add(90 * time.Second)
	for {
		var unfinished, busy int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM waybill.orders WHERE status NOT IN ('delivered', 'failed_attempt')`).Scan(&unfinished))
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM waybill.river_job WHERE kind IN ('webhook_translate', 'webhook_act') AND state <> 'completed'`).Scan(&busy))
		if unfinished == 0 && busy == 0 && getStats(t, sandboxURL).Webhooks.InFlight == 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "lifecycles did not finish: %d orders unfinished, %d jobs busy", unfinished, busy)
		time.Sleep(250 * time.Millisecond)
	}
	stats := getStats(t, sandboxURL)
	require.Positive(t, stats.Webhooks.Duplicated)
	require.Positive(t, stats.Webhooks.Reordered)
	require.Zero(t, stats.Webhooks.Dropped)

	var forgedRows, dupEvents, dupHistory, wrongFinal, failed int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM waybill.webhook_events WHERE convert_from(body, 'UTF8') LIKE '%"taskId":"x"%'`).Scan(&forgedRows))
	require.Zero(t, forgedRows, "nothing forged is stored")
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT carrier, event_key FROM waybill.webhook_events GROUP BY 1, 2 HAVING count(*) > 1) d`).Scan(&dupEvents))
	require.Zero(t, dupEvents)
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT order_id, carrier_status, occurred_at FROM waybill.order_events GROUP BY 1, 2, 3 HAVING count(*) > 1) d`).Scan(&dupHistory))
	require.Zero(t, dupHistory, "one history row per distinct carrier event")
	// Each order ends where its newest event put it, whatever the delivery order was.
	require.NoError(t, pool.QueryRow(ctx, `
		SELECT count(*) FROM waybill.orders o
		WHERE o.status <> (SELECT e.status FROM waybill.order_events e WHERE e.order_id = o.id ORDER BY e.occurred_at DESC, e.id DESC LIMIT 1)`).Scan(&wrongFinal))
	require.Zero(t, wrongFinal)
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM waybill.orders WHERE status = 'failed_attempt' AND status_reason IS NOT NULL`).Scan(&failed))
	require.Positive(t, failed)
	var events, eventsPerOrder int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*), min(c) FROM (SELECT order_id, count(*) c FROM waybill.order_events GROUP BY 1) x`).Scan(&events, &eventsPerOrder))
	require.Equal(t, total, events)
	// Batch-created tasks fire no taskCreated (as at Onfleet); a task created alone does.
	require.GreaterOrEqual(t, eventsPerOrder, 3, "assigned, started, completed or failed")
	var aloneWithoutCreated int
	require.NoError(t, pool.QueryRow(ctx, `
		SELECT count(*) FROM waybill.orders o
		WHERE EXISTS (SELECT 1 FROM waybill.dispatch_batches b WHERE b.order_ids = ARRAY[o.id] AND b.settled_by = 'answer')
		  AND NOT EXISTS (SELECT 1 FROM waybill.order_events e WHERE e.order_id = o.id AND e.carrier_status = 'taskCreated')`).Scan(&aloneWithoutCreated))
	require.Zero(t, aloneWithoutCreated)
}
