package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/dbtest"
)

const e2ePayload = `{"recipient":{"name":"Ada Lovelace","phone":"+14155550100"},
 "address":{"line1":"1 Market St","city":"San Francisco","country":"US"}}`

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

// The real binary, SQL inserts as the monolith makes them, a sandbox answering some requests
// late, and the service killed with SIGKILL twice mid-load: every order reaches the carrier
// exactly once, within two minutes of the last restart.
func TestE2EKilledTwiceMidLoad(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := dbtest.NewDatabase(t)
	pool, err := pgxpool.New(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)

	sandboxAddr := freeAddr(t)
	sandboxURL := "http://" + sandboxAddr
	sb := startWaybill(t, "sandbox", nil, "sandbox", "--addr", sandboxAddr,
		"--latency", "30ms", "--late-rate", "0.05", "--late-delay", "1500ms", "--seed", "7")
	waitOK(t, sb, sandboxURL+"/sandbox/stats", 30*time.Second)

	addr := freeAddr(t)
	env := []string{
		"DATABASE_URL=" + dbURL,
		"WAYBILL_HTTP_ADDR=" + addr,
		"ONFLEET_BASE_URL=" + sandboxURL,
		"ONFLEET_API_KEY=e2e",
		"WAYBILL_CARRIER_TIMEOUT=500ms",
		"WAYBILL_JOB_TIMEOUT=5s",
		"WAYBILL_RESCUE_AFTER=10s",
		"WAYBILL_DISPATCH_WORKERS=40",
		"WAYBILL_DB_MAX_CONNS=8",
		"WAYBILL_LOG_LEVEL=warn",
	}
	serve := func() *process {
		p := startWaybill(t, "serve", env, "serve")
		waitOK(t, p, "http://"+addr+"/readyz", 60*time.Second)
		return p
	}

	const total = 400
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range total {
			_, err := pool.Exec(ctx, `INSERT INTO waybill.orders (external_id, carrier, payload) VALUES ($1, 'onfleet', $2)`,
				fmt.Sprintf("KILL-%d", i), e2ePayload)
			if err != nil {
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

	deadline := lastRestart.Add(2 * time.Minute)
	var dispatched int
	for time.Now().Before(deadline) {
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM waybill.orders WHERE status = 'dispatched'`).Scan(&dispatched))
		if dispatched == total {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	require.Equal(t, total, dispatched, "every order dispatched within 2 minutes of the last restart")
	t.Logf("all %d orders dispatched %s after the last restart", total, time.Since(lastRestart).Round(time.Millisecond))

	stats := getStats(t, sandboxURL)
	require.Empty(t, stats.DuplicatedExternalIDs, "never two tasks for one order")
	require.Equal(t, total, stats.TasksCreated)
	var mismatched int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM waybill.orders WHERE carrier_ref IS NULL OR tracking_url IS NULL`).Scan(&mismatched))
	require.Zero(t, mismatched)
	require.NoError(t, p.Stop(30*time.Second), "graceful stop on SIGTERM")
}
