package main

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/dbtest"
)

// `waybill serve` runs under a login that may only read and write rows (waybill_service): it
// serves, dispatches and takes webhooks; the same login cannot change the schema.
func TestE2EServeAsServiceRole(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, dbURL := dbtest.NewPool(t)

	login, serviceURL := dbtest.NewLogin(t, dbURL, "waybill_service")

	// No DDL: migrating as this login fails, and it owns nothing.
	down := exec.Command(waybillBin, "migrate", "down")
	down.Env = []string{"DATABASE_URL=" + serviceURL}
	out, err := down.CombinedOutput()
	require.Error(t, err, "migrate down as the service login: %s", out)
	var canCreate bool
	require.NoError(t, pool.QueryRow(ctx, `SELECT has_schema_privilege($1, 'waybill', 'CREATE')`, login).Scan(&canCreate))
	require.False(t, canCreate)

	sandboxURL := startSandbox(t, "--latency", "5ms")
	addr := freeAddr(t)
	srv := startServe(t, "serve", addr, append(serveEnv(serviceURL, addr, sandboxURL), "WAYBILL_LOG_LEVEL=info"))
	insertN(t, pool, "SVC", 20, time.Millisecond)
	waitDispatched(t, pool, 20, 60*time.Second)
	require.Contains(t, srv.Output(), "River's nightly reindex is off")
}
