package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os/exec"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/dbtest"
)

// `waybill serve` runs under a login that may only read and write rows (waybill_service): it
// serves, dispatches and takes webhooks; the same login cannot change the schema.
func TestE2EServeAsServiceRole(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := dbtest.NewDatabase(t)
	pool, err := pgxpool.New(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)

	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	login := "waybill_app_" + hex.EncodeToString(suffix)
	admin, err := pgx.Connect(ctx, dbtest.AdminURL())
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = admin.Exec(context.Background(), "DROP OWNED BY "+login)
		_, _ = admin.Exec(context.Background(), "DROP ROLE IF EXISTS "+login)
		admin.Close(context.Background())
	})
	_, err = admin.Exec(ctx, "CREATE ROLE "+login+" LOGIN IN ROLE waybill_service")
	require.NoError(t, err)
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	u.User = url.User(login)
	serviceURL := u.String()

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
	srv := startWaybill(t, "serve", append(serveEnv(serviceURL, addr, sandboxURL), "WAYBILL_LOG_LEVEL=info"), "serve")
	waitOK(t, srv, "http://"+addr+"/readyz", 60*time.Second)
	insertN(t, pool, "SVC", 20, time.Millisecond)
	waitDispatched(t, pool, 20, 60*time.Second)
	require.Contains(t, srv.Output(), "River's nightly reindex is off")
}
