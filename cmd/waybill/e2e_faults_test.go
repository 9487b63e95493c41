package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/dbtest"
	"github.com/waybill/waybill/internal/devenv"
	"github.com/waybill/waybill/internal/migrate"
)

// Two instances against one Postgres share the work and never both send an order.
func TestE2ETwoInstancesShareWork(t *testing.T) {
	t.Parallel()
	pool, dbURL := dbtest.NewPool(t)
	sandboxURL := startSandbox(t, "--latency", "20ms")

	var addrs []string
	for i := range 2 {
		addr := freeAddr(t)
		startServe(t, fmt.Sprintf("serve-%d", i), addr, serveEnv(dbURL, addr, sandboxURL))
		addrs = append(addrs, addr)
	}
	const total = 300
	insertN(t, pool, "TWO", total, 2*time.Millisecond)
	waitDispatched(t, pool, total, 60*time.Second)

	requireOneTaskEach(t, sandboxURL, total)
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
	srv := startServe(t, "serve", addr, serveEnv(pg.URL, addr, sandboxURL))

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
	requireOneTaskEach(t, sandboxURL, total)
	select {
	case <-srv.done:
		t.Fatal("the service exited instead of recovering")
	default:
	}
}
