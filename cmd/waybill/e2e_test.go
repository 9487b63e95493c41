package main

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/dbtest"
)

// The real binary, SQL inserts as the monolith makes them, a sandbox answering some requests
// late, and the service killed with SIGKILL twice mid-load: every order reaches the carrier
// exactly once, within two minutes of the last restart.
func TestE2EKilledTwiceMidLoad(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, dbURL := dbtest.NewPool(t)
	sandboxURL := startSandbox(t, "--latency", "30ms", "--late-rate", "0.05", "--late-delay", "1500ms", "--seed", "7")
	addr := freeAddr(t)
	env := append(serveEnv(dbURL, addr, sandboxURL),
		"WAYBILL_CARRIER_TIMEOUT=500ms", "WAYBILL_JOB_TIMEOUT=5s", "WAYBILL_RESCUE_AFTER=10s")
	serve := func() *process { return startServe(t, "serve", addr, env) }

	const total = 400
	var wg sync.WaitGroup
	wg.Go(func() { // off the test goroutine: errors reported, never FailNow
		for i := range total {
			if _, err := (dbtest.Order{ExternalID: fmt.Sprintf("KILL-%d", i)}).Insert(ctx, pool); err != nil {
				t.Errorf("insert: %v", err)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	p := serve()
	time.Sleep(1500 * time.Millisecond)
	p.Kill()
	p = serve()
	time.Sleep(1500 * time.Millisecond)
	p.Kill()
	p = serve()
	lastRestart := time.Now()
	wg.Wait()

	// Every order dispatched within 2 minutes of the last restart.
	waitDispatched(t, pool, total, time.Until(lastRestart.Add(2*time.Minute)))
	t.Logf("all %d orders dispatched %s after the last restart", total, time.Since(lastRestart).Round(time.Millisecond))

	requireOneTaskEach(t, sandboxURL, total)
	var mismatched int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM waybill.orders WHERE carrier_ref IS NULL OR tracking_url IS NULL`).Scan(&mismatched))
	require.Zero(t, mismatched)
	require.NoError(t, p.Stop(30*time.Second), "graceful stop on SIGTERM")
}
