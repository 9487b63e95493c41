package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/dbtest"
	"github.com/waybill/waybill/internal/notify"
)

// reconcileEnv is serve's environment with webhooks, and reconciliation and its alarm on a
// short clock.
func reconcileEnv(dbURL, addr, sandboxURL string, extra ...string) []string {
	return append(serveEnv(dbURL, addr, sandboxURL),
		append([]string{
			"ONFLEET_WEBHOOK_SECRET=" + webhookSecret,
			"WAYBILL_RECONCILE_AFTER=3s", "WAYBILL_RECONCILE_INTERVAL=1s",
			"WAYBILL_ALARM_CHECK_INTERVAL=1s", "WAYBILL_WEBHOOK_GAP_THRESHOLD=5", "WAYBILL_WEBHOOK_GAP_WINDOW=8s",
			"WAYBILL_PUBLIC_URL=http://" + addr,
		}, extra...)...)
}

// sandboxTaskStates reads every task's state from the sandbox (GET /tasks/all), by task id:
// "delivered" or "failed_attempt" for a completed task, else its state number.
func sandboxTaskStates(t *testing.T, sandboxURL string) map[string]string {
	t.Helper()
	out := map[string]string{}
	lastID := ""
	for {
		url := sandboxURL + "/tasks/all?from=0"
		if lastID != "" {
			url += "&lastId=" + lastID
		}
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.SetBasicAuth("e2e", "")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		var page struct {
			Tasks []struct {
				ID                string `json:"id"`
				State             int    `json:"state"`
				CompletionDetails struct {
					Success bool `json:"success"`
				} `json:"completionDetails"`
			} `json:"tasks"`
			LastID string `json:"lastId"`
		}
		if resp.StatusCode == http.StatusTooManyRequests {
			resp.Body.Close()
			time.Sleep(time.Second)
			continue
		}
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&page))
		resp.Body.Close()
		for _, task := range page.Tasks {
			switch {
			case task.State == 3 && task.CompletionDetails.Success:
				out[task.ID] = "delivered"
			case task.State == 3:
				out[task.ID] = "failed_attempt"
			default:
				out[task.ID] = fmt.Sprint(task.State)
			}
		}
		if page.LastID == "" {
			return out
		}
		lastID = page.LastID
	}
}

func postFaults(t *testing.T, sandboxURL, body string) {
	t.Helper()
	resp, err := http.Post(sandboxURL+"/sandbox/faults", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// alarmMessages counts the Slack messages an alarm enqueued, by severity (alarm, resolved).
func alarmMessages(t *testing.T, pool *pgxpool.Pool, alarm string) map[string]int {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT args->>'severity', count(*) FROM waybill.river_job
		WHERE kind = 'notify_slack' AND $1 = ANY(tags) GROUP BY 1`, alarm)
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var sev string
		var n int
		require.NoError(t, rows.Scan(&sev, &n))
		out[sev] = n
	}
	require.NoError(t, rows.Err())
	return out
}

// waitSettled waits until no order of prefix is in flight and no translate or act job is left.
func waitSettled(t *testing.T, pool *pgxpool.Pool, prefix string, timeout time.Duration) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(timeout)
	for {
		var unfinished, busy int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM waybill.orders WHERE external_id LIKE $1 || '%'
			AND status NOT IN ('delivered', 'failed_attempt')`, prefix).Scan(&unfinished))
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM waybill.river_job WHERE kind IN ('webhook_translate', 'webhook_act')
			AND state <> 'completed'`).Scan(&busy))
		if unfinished == 0 && busy == 0 {
			return
		}
		require.True(t, time.Now().Before(deadline), "%s: %d orders not final, %d pipeline jobs left", prefix, unfinished, busy)
		time.Sleep(250 * time.Millisecond)
	}
}

// Webhooks off at the sandbox, 200 orders walking their lifecycle: reconciliation brings every
// order to its task's true final state soon after WAYBILL_RECONCILE_AFTER, with the history
// webhooks would have written (assigned, in_transit, then delivered or failed_attempt, marked
// learnt by polling), and "webhooks not arriving" fires once; webhooks back, it resolves once.
func TestE2EReconcileWebhooksOff(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, dbURL := dbtest.NewPool(t)

	addr := freeAddr(t)
	baseURL := "http://" + addr
	sandboxURL := startWebhookSandbox(t, addr, "--webhook-step", "200ms", "--webhook-failure-rate", "0.2", "--webhooks-off", "--seed", "14")
	startServe(t, "serve", addr, reconcileEnv(dbURL, addr, sandboxURL))

	const total = 200
	insertN(t, pool, "RC", total, 0)
	waitSettled(t, pool, "RC", 120*time.Second)

	// Every order is where its task really is.
	truth := sandboxTaskStates(t, sandboxURL)
	rows, err := pool.Query(ctx, `SELECT external_id, carrier_ref, status, extract(epoch FROM updated_at - dispatched_at)::float8
		FROM waybill.orders WHERE external_id LIKE 'RC-%'`)
	require.NoError(t, err)
	var worst float64
	n := 0
	for rows.Next() {
		var ext, ref, status string
		var took float64
		require.NoError(t, rows.Scan(&ext, &ref, &status, &took))
		require.Equal(t, truth[ref], status, "order %s", ext)
		worst = max(worst, took)
		n++
	}
	require.NoError(t, rows.Err())
	rows.Close()
	require.Equal(t, total, n)
	// RECONCILE_AFTER (3s) + one cycle (1s), plus the lifecycle itself (< 1s) and the pipeline
	// on a loaded race build: a liveness bound, not a speed claim.
	t.Logf("dispatched → final state, worst order: %.1fs (RECONCILE_AFTER 3s, cycle 1s)", worst)
	require.Less(t, worst, 15.0)

	// The history webhooks would have written, once, marked learnt by polling.
	var wrongHistory, notPolled, dupChanges int
	require.NoError(t, pool.QueryRow(ctx, `
		SELECT count(*) FROM waybill.orders o
		WHERE o.external_id LIKE 'RC-%' AND (SELECT array_agg(e.status ORDER BY e.occurred_at, e.id) FROM waybill.order_events e
		      WHERE e.order_id = o.id AND e.status <> 'dispatched') <> ARRAY['assigned', 'in_transit', o.status]::text[]`).Scan(&wrongHistory))
	if wrongHistory > 0 {
		logHistories(t, pool, `SELECT o.id FROM waybill.orders o WHERE o.external_id LIKE 'RC-%' AND (SELECT array_agg(e.status ORDER BY e.occurred_at, e.id)
			FROM waybill.order_events e WHERE e.order_id = o.id AND e.status <> 'dispatched') <> ARRAY['assigned', 'in_transit', o.status]::text[] LIMIT 3`)
	}
	require.Zero(t, wrongHistory, "history: assigned, in_transit, final")
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM waybill.order_events WHERE learnt_by <> 'poll'`).Scan(&notPolled))
	require.Zero(t, notPolled)
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT order_id, status FROM waybill.order_events
		GROUP BY 1, 2 HAVING count(*) > 1) d`).Scan(&dupChanges))
	require.Zero(t, dupChanges)

	// The alarm fired once, naming the carrier and the likely causes.
	require.Eventually(t, func() bool { return alarmMessages(t, pool, "webhooks_not_arriving")["alarm"] == 1 }, 30*time.Second, 250*time.Millisecond)
	var msg notify.SlackArgs
	var raw []byte
	require.NoError(t, pool.QueryRow(ctx, `SELECT args FROM waybill.river_job WHERE kind = 'notify_slack'
		AND 'webhooks_not_arriving' = ANY(tags)`).Scan(&raw))
	require.NoError(t, json.Unmarshal(raw, &msg))
	require.Equal(t, "onfleet webhooks are not arriving", msg.Title)
	for _, cause := range []string{"disabled", "ONFLEET_WEBHOOK_SECRET", "unreachable", "waybill carriers check"} {
		require.Contains(t, msg.Text, cause)
	}

	// /metrics says how far behind reconciliation is.
	resp, err := http.Get(baseURL + "/metrics")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(body), `waybill_reconcile_lag_seconds{carrier="onfleet"}`)
	require.Contains(t, string(body), `waybill_reconcile_due_orders{carrier="onfleet"}`)

	// Webhooks back: new orders move by webhook, and the alarm resolves once.
	postFaults(t, sandboxURL, `{"webhooks-off": false}`)
	insertN(t, pool, "WB", 20, 0)
	waitSettled(t, pool, "WB", 60*time.Second)
	require.Eventually(t, func() bool { return alarmMessages(t, pool, "webhooks_not_arriving")["resolved"] == 1 }, 60*time.Second, 250*time.Millisecond)
	require.Equal(t, 1, alarmMessages(t, pool, "webhooks_not_arriving")["alarm"], "fired once")
	var byWebhook int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM waybill.order_events e JOIN waybill.orders o ON o.id = e.order_id
		WHERE o.external_id LIKE 'WB-%' AND e.learnt_by = 'webhook'`).Scan(&byWebhook))
	require.Positive(t, byWebhook)
}

// callbackCounter is the monolith's callback endpoint: it counts status callbacks per order and
// status. Handlers only record; the test goroutine asserts.
type callbackCounter struct {
	mu    sync.Mutex
	count map[string]int
}

func (c *callbackCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var cb struct {
		ExternalID string `json:"external_id"`
		Status     string `json:"status"`
	}
	_ = json.NewDecoder(r.Body).Decode(&cb)
	c.mu.Lock()
	c.count[cb.ExternalID+" "+cb.Status]++
	c.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (c *callbackCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.count))
	for k, v := range c.count {
		out[k] = v
	}
	return out
}

// Webhooks and polling racing on the same orders (reconciliation after 1s while each lifecycle
// step takes about as long, with duplicated and reordered webhooks): one history row per change
// and one callback per status change, whichever way it was learnt first.
func TestE2EReconcileRacesWebhooks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, dbURL := dbtest.NewPool(t)

	callbacks := &callbackCounter{count: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	cbSrv := &http.Server{Handler: callbacks, ReadHeaderTimeout: 5 * time.Second}
	go cbSrv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { cbSrv.Close() })

	addr := freeAddr(t)
	sandboxURL := startWebhookSandbox(t, addr, "--webhook-step", "1500ms", "--webhook-failure-rate", "0.2", "--webhook-duplicate-rate", "0.2",
		"--webhook-reorder-rate", "0.2", "--seed", "15")
	startServe(t, "serve", addr, reconcileEnv(dbURL, addr, sandboxURL,
		"WAYBILL_RECONCILE_AFTER=1s", "WAYBILL_CALLBACK_URL=http://"+ln.Addr().String()+"/cb", "WAYBILL_CALLBACK_SECRET=s"))

	const total = 60
	insertN(t, pool, "RACE", total, 20*time.Millisecond)
	waitSettled(t, pool, "RACE", 120*time.Second)
	require.Eventually(t, func() bool { return getStats(t, sandboxURL).Webhooks.InFlight == 0 }, 60*time.Second, 250*time.Millisecond)
	waitSettled(t, pool, "RACE", 60*time.Second)

	var polled, hooked, dupChanges int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE learnt_by = 'poll'), count(*) FILTER (WHERE learnt_by = 'webhook')
		FROM waybill.order_events WHERE status IS NOT NULL`).Scan(&polled, &hooked))
	t.Logf("history rows learnt by polling: %d, by webhook: %d", polled, hooked)
	require.Positive(t, polled, "polling raced the webhooks")
	require.Positive(t, hooked)
	// The sandbox walks each task through each status once: one row per order and status.
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT order_id, status FROM waybill.order_events
		WHERE status IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1) d`).Scan(&dupChanges))
	require.Zero(t, dupChanges, "one history row per change")

	// One callback per status change.
	var changes int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM waybill.order_events WHERE applied`).Scan(&changes))
	require.Eventually(t, func() bool {
		sum := 0
		for _, n := range callbacks.snapshot() {
			sum += n
		}
		return sum >= changes
	}, 60*time.Second, 250*time.Millisecond)
	time.Sleep(time.Second) // anything extra would have arrived by now
	for k, n := range callbacks.snapshot() {
		require.Equal(t, 1, n, "callbacks for %s", k)
	}
}

// logHistories logs the history of the orders idQuery selects, for a failure report.
func logHistories(t *testing.T, pool *pgxpool.Pool, idQuery string) {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT e.order_id, coalesce(e.status, ''), e.carrier_status, e.occurred_at, e.applied, e.learnt_by, e.event_key, e.created_at
		FROM waybill.order_events e WHERE e.order_id IN (`+idQuery+`) ORDER BY e.order_id, e.id`)
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var id int64
		var status, cs, by, key string
		var at, created time.Time
		var applied bool
		require.NoError(t, rows.Scan(&id, &status, &cs, &at, &applied, &by, &key, &created))
		t.Logf("order %d: %-14s %-28s at %s applied=%v by=%s key=%s created=%s", id, status, cs, at.Format("15:04:05.000"), applied, by, key, created.Format("15:04:05.000"))
	}
}

// `waybill carriers check` lists what the carrier lacks and exits 1; `register --url` creates one
// webhook per trigger (the sandbox checks the URL with ?check= against the running service);
// then check is clean.
func TestE2EReconcileCarriersCommands(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, dbURL := dbtest.NewPool(t)
	addr := freeAddr(t)
	baseURL := "http://" + addr
	sandboxURL := startSandbox(t, "--webhook-secret", webhookSecret) // sends no webhooks
	env := append(serveEnv(dbURL, addr, sandboxURL), "ONFLEET_WEBHOOK_SECRET="+webhookSecret)
	startServe(t, "serve", addr, env)

	dir := t.TempDir()
	res := runCLI(t, dir, env, "carriers", "check", "--url", baseURL)
	require.Equal(t, 1, res.code, "stdout: %s\nstderr: %s", res.stdout, res.stderr)
	require.Contains(t, res.stdout, "3 taskCompleted")
	require.Contains(t, res.stdout, "missing: 8")
	require.Contains(t, res.stdout, "carriers register --url "+baseURL+"/webhooks/onfleet")

	res = runCLI(t, dir, env, "carriers", "register", "--url", baseURL)
	require.Equal(t, 0, res.code, "stdout: %s\nstderr: %s", res.stdout, res.stderr)
	require.Equal(t, 8, strings.Count(res.stdout, "created onfleet webhook"))

	res = runCLI(t, dir, append(env, "WAYBILL_PUBLIC_URL="+baseURL), "carriers", "check")
	require.Equal(t, 0, res.code, "stdout: %s\nstderr: %s", res.stdout, res.stderr)
	require.Contains(t, res.stdout, "missing: 0, disabled: 0, pointed elsewhere: 0")

	// The check is recorded for the carrier_webhooks alarm.
	var missing int
	require.NoError(t, pool.QueryRow(ctx, `SELECT cardinality(missing) FROM waybill.carrier_webhook_checks WHERE carrier = 'onfleet'`).Scan(&missing))
	require.Zero(t, missing)
}
