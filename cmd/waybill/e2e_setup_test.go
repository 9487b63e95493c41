package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/dbtest"
)

// The end-to-end tests' shared setup: a fresh database with the monolith's pool on it
// (dbtest.NewPool), a sandbox carrier (startSandbox), `waybill serve` against both (serveEnv,
// startServe), orders inserted as the monolith inserts them (insertN), and what the tests wait
// for and check (waitDispatched, getStats, requireOneTaskEach).

// serveEnv is the environment of a `waybill serve` against a sandbox.
func serveEnv(dbURL, addr, sandboxURL string) []string {
	return []string{
		"DATABASE_URL=" + dbURL, "WAYBILL_HTTP_ADDR=" + addr, "ONFLEET_BASE_URL=" + sandboxURL,
		"ONFLEET_API_KEY=e2e", "WAYBILL_DISPATCH_WORKERS=40",
		"WAYBILL_DB_MAX_CONNS=8", "WAYBILL_LOG_LEVEL=warn", "WAYBILL_CARRIER_TIMEOUT=2s",
	}
}

// startSandbox runs `waybill sandbox args…` on a free port, waits until it answers, and returns
// its base URL.
func startSandbox(t *testing.T, args ...string) string {
	t.Helper()
	addr := freeAddr(t)
	sb := startWaybill(t, "sandbox", nil, append([]string{"sandbox", "--addr", addr}, args...)...)
	waitOK(t, sb, "http://"+addr+"/sandbox/stats", 30*time.Second)
	return "http://" + addr
}

// webhookSecret is the Onfleet webhook secret the sandbox signs with and serve checks.
const webhookSecret = "00112233445566778899aabbccddeeff"

// startWebhookSandbox starts a sandbox (see startSandbox) that sends the serve at addr its
// webhooks, signed with webhookSecret.
func startWebhookSandbox(t *testing.T, addr string, args ...string) string {
	t.Helper()
	return startSandbox(t, append([]string{"--webhook-url", "http://" + addr + "/webhooks/onfleet", "--webhook-secret", webhookSecret}, args...)...)
}

// startServe runs `waybill serve` with env, whose WAYBILL_HTTP_ADDR is addr, and waits until it
// is ready.
func startServe(t *testing.T, name, addr string, env []string) *process {
	t.Helper()
	p := startWaybill(t, name, env, "serve")
	waitOK(t, p, "http://"+addr+"/readyz", 60*time.Second)
	return p
}

// insertN inserts n orders, prefix-0 … prefix-(n-1), one statement at a time as the monolith
// does, pausing between: a statement that fails because its connection is gone (Postgres
// restarted under the pool) is tried again on a fresh one, and a unique violation on such a
// retry means the earlier attempt committed.
func insertN(t *testing.T, pool *pgxpool.Pool, prefix string, n int, pause time.Duration) {
	t.Helper()
	for i := range n {
		o := dbtest.Order{ExternalID: fmt.Sprintf("%s-%d", prefix, i)}
		var err error
		for attempt := 0; attempt < 50; attempt++ {
			_, err = o.Insert(context.Background(), pool)
			if err == nil || (attempt > 0 && isUniqueViolation(err)) {
				err = nil
				break
			}
			if !isConnectionLost(err) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		require.NoError(t, err, "insert %s", o.ExternalID)
		time.Sleep(pause)
	}
}

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == pgerrcode.UniqueViolation
}

// isConnectionLost reports an error a monolith retries: the server went away (admin shutdown,
// crash, connection refused while it restarts) rather than refusing the statement.
func isConnectionLost(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgerrcode.IsOperatorIntervention(pgErr.Code) || pgerrcode.IsConnectionException(pgErr.Code)
	}
	return true // no answer from the server at all: network or connect error
}

// waitDispatched waits until exactly n orders are dispatched.
func waitDispatched(t *testing.T, pool *pgxpool.Pool, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var got int
	for time.Now().Before(deadline) {
		if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM waybill.orders WHERE status = 'dispatched'`).Scan(&got); err == nil && got == n {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%d of %d orders dispatched after %s", got, n, timeout)
}

// sandboxStats is what the sandbox counted (GET /sandbox/stats).
type sandboxStats struct {
	TasksCreated          int      `json:"tasks_created"`
	DuplicatedExternalIDs []string `json:"duplicated_external_ids"`
	Requests              struct {
		CreatedLate   int `json:"created_late"`
		MetadataQuery int `json:"metadata_query"`
		RateLimited   int `json:"rate_limited"`
	} `json:"requests"`
	RequestsByRoute map[string]int `json:"requests_by_route"`
	Batch           struct {
		Jobs int `json:"jobs"`
	} `json:"batch"`
	Webhooks struct {
		InFlight   int `json:"in_flight"`
		Duplicated int `json:"duplicated"`
		Reordered  int `json:"reordered"`
		Dropped    int `json:"dropped"`
	} `json:"webhooks"`
}

func getStats(t *testing.T, sandboxURL string) sandboxStats {
	t.Helper()
	resp, err := http.Get(sandboxURL + "/sandbox/stats")
	require.NoError(t, err)
	defer resp.Body.Close()
	var s sandboxStats
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&s))
	return s
}

// requireOneTaskEach checks the sandbox's own records: n tasks, never two for one order.
func requireOneTaskEach(t *testing.T, sandboxURL string, n int) {
	t.Helper()
	stats := getStats(t, sandboxURL)
	require.Empty(t, stats.DuplicatedExternalIDs, "never two tasks for one order")
	require.Equal(t, n, stats.TasksCreated)
}
