package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/dbtest"
	"github.com/waybill/waybill/internal/devenv"
	"github.com/waybill/waybill/internal/migrate"
)

// serveEnv is the environment of a `waybill serve` against a sandbox.
func serveEnv(dbURL, addr, sandboxURL string) []string {
	return []string{
		"DATABASE_URL=" + dbURL, "WAYBILL_HTTP_ADDR=" + addr, "ONFLEET_BASE_URL=" + sandboxURL,
		"ONFLEET_API_KEY=e2e", "WAYBILL_DISPATCH_WORKERS=40",
		"WAYBILL_DB_MAX_CONNS=8", "WAYBILL_LOG_LEVEL=warn", "WAYBILL_CARRIER_TIMEOUT=2s",
	}
}

func startSandbox(t *testing.T, args ...string) string {
	t.Helper()
	addr := freeAddr(t)
	sb := startWaybill(t, "sandbox", nil, append([]string{"sandbox", "--addr", addr}, args...)...)
	waitOK(t, sb, "http://"+addr+"/sandbox/stats", 30*time.Second)
	return "http://" + addr
}

// insertN inserts n orders one statement at a time, as the monolith does: a statement that fails
// because its connection is gone (Postgres restarted under the pool) is tried again on a fresh
// one, and a unique violation on such a retry means the earlier attempt committed.
func insertN(t *testing.T, pool *pgxpool.Pool, prefix string, n int, pause time.Duration) {
	t.Helper()
	for i := range n {
		externalID := fmt.Sprintf("%s-%d", prefix, i)
		var err error
		for attempt := 0; attempt < 50; attempt++ {
			_, err = pool.Exec(context.Background(), `INSERT INTO waybill.orders (external_id, carrier, payload) VALUES ($1, 'onfleet', $2)`,
				externalID, e2ePayload)
			if err == nil || (attempt > 0 && isUniqueViolation(err)) {
				err = nil
				break
			}
			if !isConnectionLost(err) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		require.NoError(t, err, "insert %s", externalID)
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

// Two instances against one Postgres share the work and never both send an order.
func TestE2ETwoInstancesShareWork(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := dbtest.NewDatabase(t)
	pool, err := pgxpool.New(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	sandboxURL := startSandbox(t, "--latency", "20ms")

	var addrs []string
	for i := range 2 {
		addr := freeAddr(t)
		p := startWaybill(t, fmt.Sprintf("serve-%d", i), serveEnv(dbURL, addr, sandboxURL), "serve")
		waitOK(t, p, "http://"+addr+"/readyz", 60*time.Second)
		addrs = append(addrs, addr)
	}
	const total = 300
	insertN(t, pool, "TWO", total, 2*time.Millisecond)
	waitDispatched(t, pool, total, 60*time.Second)

	stats := getStats(t, sandboxURL)
	require.Empty(t, stats.DuplicatedExternalIDs)
	require.Equal(t, total, stats.TasksCreated)
	// Done dispatch jobs are deleted, so each instance's own count tells who did the work.
	sum := 0
	for _, addr := range addrs {
		n := dispatchedBy(t, "http://"+addr+"/metrics")
		require.Positive(t, n, "instance %s dispatched nothing", addr)
		sum += n
	}
	require.Equal(t, total, sum, "each order dispatched by exactly one instance")
}

// dispatchedBy reads how many orders one instance recorded as dispatched: the count of its
// waybill_dispatch_latency_seconds histogram.
func dispatchedBy(t *testing.T, metricsURL string) int {
	t.Helper()
	resp, err := http.Get(metricsURL)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(line, "waybill_dispatch_latency_seconds_count "); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			require.NoError(t, err)
			return n
		}
	}
	t.Fatalf("no waybill_dispatch_latency_seconds_count in %s", metricsURL)
	return 0
}

// Postgres restarts mid-load: the service notices (/readyz 503), recovers by itself without a
// restart, and loses nothing. Runs on a private cluster so other tests keep their server.
func TestE2EPostgresRestartMidLoad(t *testing.T) {
	if os.Getenv("WAYBILL_SKIP_PG_RESTART") != "" {
		t.Skip("WAYBILL_SKIP_PG_RESTART is set")
	}
	t.Parallel()
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := t.TempDir()
	opts := devenv.Options{LocalURL: "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=1", Dir: dir, DevDatabase: "restart"}
	pg, err := devenv.FindPostgres(ctx, opts, logger)
	require.NoError(t, err, "a private cluster needs the machine's PostgreSQL binaries")
	require.Equal(t, devenv.SourcePrivateCluster, pg.Source)
	t.Cleanup(func() { _ = pg.Stop(context.Background()) })
	require.NoError(t, migrate.Up(ctx, pg.URL, logger))
	pool, err := pgxpool.New(ctx, pg.URL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)

	sandboxURL := startSandbox(t, "--latency", "20ms")
	addr := freeAddr(t)
	srv := startWaybill(t, "serve", serveEnv(pg.URL, addr, sandboxURL), "serve")
	waitOK(t, srv, "http://"+addr+"/readyz", 60*time.Second)

	const total = 200
	insertN(t, pool, "PG", total/2, 5*time.Millisecond)

	require.NoError(t, pg.Stop(ctx))
	// While Postgres is away, /readyz says so.
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	}, 20*time.Second, 100*time.Millisecond)

	pg2, err := devenv.FindPostgres(ctx, opts, logger)
	require.NoError(t, err)
	require.Equal(t, pg.URL, pg2.URL, "same cluster, same port")
	t.Cleanup(func() { _ = pg2.Stop(context.Background()) })
	waitOK(t, srv, "http://"+addr+"/readyz", 60*time.Second)

	// The monolith's pool still holds connections the restart killed; a monolith would notice on
	// its next statement and reconnect, which insertN does.
	insertN(t, pool, "PG2", total/2, 5*time.Millisecond)
	waitDispatched(t, pool, total, 90*time.Second)
	stats := getStats(t, sandboxURL)
	require.Empty(t, stats.DuplicatedExternalIDs)
	require.Equal(t, total, stats.TasksCreated)
	select {
	case <-srv.done:
		t.Fatal("the service exited instead of recovering")
	default:
	}
}
