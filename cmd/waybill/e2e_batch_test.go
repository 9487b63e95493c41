package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/dbtest"
)

// carrierRequests is every request the sandbox counted at its Onfleet routes, 429s included.
func (s sandboxStats) carrierRequests() int {
	n := 0
	for _, c := range s.RequestsByRoute {
		n += c
	}
	return n
}

// registerBatchWebhook registers trigger 19 (taskBatchCreateJobCompleted) with the sandbox, as
// Onfleet's POST /webhooks; the sandbox checks the URL with ?check= first.
func registerBatchWebhook(t *testing.T, sandboxURL, target string) {
	t.Helper()
	body := fmt.Sprintf(`{"url":%q,"name":"waybill","trigger":19}`, target)
	req, err := http.NewRequest(http.MethodPost, sandboxURL+"/webhooks", strings.NewReader(body))
	require.NoError(t, err)
	req.SetBasicAuth("e2e", "")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// dispatchLatency is the p99 of insert→dispatched, in seconds, of the orders whose external id
// starts with prefix.
func dispatchLatency(t *testing.T, pool *pgxpool.Pool, prefix string) (p50, p99 float64) {
	t.Helper()
	require.NoError(t, pool.QueryRow(context.Background(), `
		SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM dispatched_at - created_at)),
		       percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM dispatched_at - created_at))
		FROM waybill.orders WHERE external_id LIKE $1 || '-%'`, prefix).Scan(&p50, &p99))
	return p50, p99
}

// Two instances against a carrier that enforces Onfleet's 20 requests/s per organisation, with
// the default limit (18/s, shared through Postgres): a steady 200 orders/s, then 20,000 orders
// in one statement. Every order reaches the carrier once, almost no request is refused, and the
// requests follow the limit, not the orders.
//
// Not parallel: it measures refusals, which a machine saturated by the other tests of this
// package (race detector on) turns into scheduling noise.
func TestE2EBatchDispatchAtCarrierLimit(t *testing.T) {
	ctx := context.Background()
	pool, dbURL := dbtest.NewPool(t)

	// 20 requests/s enforced; webhooks signed with the secret serve knows, sent only where
	// registered below.
	sandboxURL := startSandbox(t, "--latency", "20ms", "--batch-delay", "300ms", "--webhook-secret", webhookSecret)
	for i := range 2 {
		addr := freeAddr(t)
		// Default dispatch workers and limit; serveEnv's small worker count is for the other tests.
		startServe(t, fmt.Sprintf("serve-%d", i), addr, append(serveEnv(dbURL, addr, sandboxURL),
			"WAYBILL_DISPATCH_WORKERS=10000", "ONFLEET_WEBHOOK_SECRET="+webhookSecret))
		if i == 0 {
			// Onfleet's batch-completed webhook, as `waybill carriers register` sets it up: batches
			// settle when the carrier finishes them, without polls.
			registerBatchWebhook(t, sandboxURL, "http://"+addr+"/webhooks/onfleet")
		}
	}

	// A steady 200 orders/s for 20 s, one-row INSERTs as the monolith makes them.
	const rate, seconds = 200, 20
	start := time.Now()
	for i := range rate * seconds {
		if d := time.Until(start.Add(time.Duration(i) * time.Second / rate)); d > 0 {
			time.Sleep(d)
		}
		_, err := dbtest.Order{ExternalID: fmt.Sprintf("STEADY-%d", i)}.Insert(ctx, pool)
		require.NoError(t, err)
	}
	waitDispatched(t, pool, rate*seconds, 60*time.Second)
	steady := getStats(t, sandboxURL)
	p50, p99 := dispatchLatency(t, pool, "STEADY")
	t.Logf("steady %d orders/s for %ds: %d carrier requests (%v), %d refused for rate; insert→dispatched p50 %.2fs p99 %.2fs",
		rate, seconds, steady.carrierRequests(), steady.RequestsByRoute, steady.Requests.RateLimited, p50, p99)
	require.LessOrEqual(t, float64(steady.Requests.RateLimited), 0.01*float64(steady.carrierRequests()), "at most 1% refused")

	// 20,000 orders in one statement: one request per order would take over 1,000 s at 18/s.
	const bulk = 20000
	bulkStart := time.Now()
	dbtest.InsertMany(t, pool, "BULK", bulk, dbtest.Order{})
	waitDispatched(t, pool, rate*seconds+bulk, 180*time.Second)
	took := time.Since(bulkStart)
	stats := getStats(t, sandboxURL)
	requests := stats.carrierRequests() - steady.carrierRequests()
	t.Logf("bulk %d orders: dispatched in %s with %d carrier requests (%.4f per order), %d refused for rate",
		bulk, took.Round(100*time.Millisecond), requests, float64(requests)/bulk, stats.Requests.RateLimited-steady.Requests.RateLimited)
	require.Empty(t, stats.DuplicatedExternalIDs)
	require.Equal(t, rate*seconds+bulk, stats.TasksCreated)
	require.LessOrEqual(t, float64(requests)/bulk, 0.01, "carrier requests per order at peak")
	require.LessOrEqual(t, float64(stats.Requests.RateLimited), 0.01*float64(stats.carrierRequests()), "at most 1% refused")
}

// SIGKILL at each point of a batch's life, then a restart: every order reaches the carrier
// exactly once. The unfinished batch is settled (by its job's status, or by one metadata lookup
// of the batch id) before anything is sent again.
func TestE2EBatchKilled(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		sandbox  []string
		crashAt  string // WAYBILL_TEST_CRASH_AT of the first process
		killWhen string // SQL that is true when the first process is to be killed
	}{
		{
			name:     "before the answer",
			sandbox:  []string{"--batch-late-rate", "1", "--late-delay", "4s"},
			killWhen: `SELECT count(*) > 0 FROM waybill.dispatch_batches WHERE cardinality(order_ids) > 1`,
		},
		{
			name:    "after the answer, before recording",
			crashAt: "batch-answered",
		},
		{
			name:     "while polling",
			sandbox:  []string{"--batch-delay", "4s"},
			killWhen: `SELECT count(*) > 0 FROM waybill.dispatch_batches WHERE state = 'submitted'`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			pool, dbURL := dbtest.NewPool(t)
			sandboxURL := startSandbox(t, append([]string{"--latency", "20ms"}, tc.sandbox...)...)
			addr := freeAddr(t)
			env := append(serveEnv(dbURL, addr, sandboxURL), "WAYBILL_DISPATCH_WORKERS=500",
				"WAYBILL_JOB_TIMEOUT=10s", "WAYBILL_RESCUE_AFTER=15s")

			first := startServe(t, "serve-1", addr, append(env, "WAYBILL_TEST_CRASH_AT="+tc.crashAt))
			const total = 600
			dbtest.InsertMany(t, pool, "KB", total, dbtest.Order{})

			if tc.killWhen != "" {
				require.Eventually(t, func() bool {
					var ok bool
					return pool.QueryRow(ctx, tc.killWhen).Scan(&ok) == nil && ok
				}, 30*time.Second, 20*time.Millisecond)
				first.Kill()
			} else {
				require.ErrorContains(t, first.Wait(30*time.Second), "killed", "crashes itself at the crash point")
			}
			killedAt := time.Now()

			startServe(t, "serve-2", addr, env)
			waitDispatched(t, pool, total, 2*time.Minute)
			t.Logf("all %d dispatched %s after the kill", total, time.Since(killedAt).Round(100*time.Millisecond))
			requireOneTaskEach(t, sandboxURL, total)
			var unsettled int
			require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM waybill.dispatch_batches WHERE state <> 'finished'`).Scan(&unsettled))
			require.Zero(t, unsettled)
		})
	}
}
