package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/dbtest"
)

func TestRunUsage(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	getenv := func(string) string { return "" }

	require.ErrorIs(t, run(context.Background(), nil, getenv, &stdout, &stderr), errUsage)
	require.Contains(t, stderr.String(), "waybill serve")

	stderr.Reset()
	require.ErrorIs(t, run(context.Background(), []string{"fly"}, getenv, &stdout, &stderr), errUsage)
	require.Contains(t, stderr.String(), `unknown command "fly"`)

	require.ErrorIs(t, run(context.Background(), []string{"migrate", "sideways"}, getenv, &stdout, &stderr), errUsage)
	err := run(context.Background(), []string{"migrate", "up"}, getenv, &stdout, &stderr)
	require.ErrorContains(t, err, "DATABASE_URL: required")
}

// A missing or malformed required variable stops serve at once with a message naming it.
func TestServeRefusesBadConfig(t *testing.T) {
	t.Parallel()
	p := startWaybill(t, "serve", []string{"DATABASE_URL=mysql://nope", "ONFLEET_RATE_LIMIT=lots"}, "serve")
	require.Error(t, p.Wait(30*time.Second))
	out := p.Output()
	require.Contains(t, out, "DATABASE_URL: scheme")
	require.Contains(t, out, "ONFLEET_API_KEY: required")
	require.Contains(t, out, "ONFLEET_RATE_LIMIT")
	require.Equal(t, 1, p.cmd.ProcessState.ExitCode())
}

func TestServeRefusesUnmigratedDatabase(t *testing.T) {
	t.Parallel()
	dbURL := dbtest.NewDatabase(t)
	conn, err := pgx.Connect(context.Background(), dbURL)
	require.NoError(t, err)
	_, err = conn.Exec(context.Background(), `DELETE FROM waybill.goose_db_version WHERE version_id = (SELECT max(version_id) FROM waybill.goose_db_version)`)
	require.NoError(t, err)
	conn.Close(context.Background())

	p := startWaybill(t, "serve", []string{"DATABASE_URL=" + dbURL, "ONFLEET_API_KEY=k", "WAYBILL_HTTP_ADDR=" + freeAddr(t)}, "serve")
	require.Error(t, p.Wait(30*time.Second))
	require.Contains(t, p.Output(), "waybill migrate up")
}

func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	dbURL := dbtest.NewDatabase(t)
	var stdout, stderr bytes.Buffer
	getenv := func(k string) string {
		if k == "DATABASE_URL" {
			return dbURL
		}
		return ""
	}
	require.NoError(t, run(context.Background(), []string{"migrate", "status"}, getenv, &stdout, &stderr))
	require.Contains(t, stdout.String(), "River schema version")
	require.NotContains(t, stdout.String(), "pending")

	stdout.Reset()
	require.NoError(t, run(context.Background(), []string{"migrate", "up"}, getenv, &stdout, &stderr))
	require.Equal(t, "up to date", strings.TrimSpace(stdout.String()))
}

// WAYBILL_CARRIERS_FILE adds carriers by configuration: serve registers them (so the monolith
// may INSERT orders for them) and refuses a broken file, naming it.
func TestServeCarriersFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := dbtest.NewDatabase(t)
	addr := freeAddr(t)
	env := []string{"DATABASE_URL=" + dbURL, "ONFLEET_API_KEY=k", "WAYBILL_HTTP_ADDR=" + addr,
		"WAYBILL_CARRIERS_FILE=../../examples/carriers.yaml", "ACME_API_KEY=acme-key", "ACME_WEBHOOK_SECRET=acme-secret"}
	p := startServe(t, "serve", addr, env)
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var known bool
	require.NoError(t, conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM waybill.carriers WHERE name = 'acme')`).Scan(&known))
	require.True(t, known)
	require.NoError(t, p.Stop(30*time.Second))

	broken := t.TempDir() + "/carriers.yaml"
	require.NoError(t, os.WriteFile(broken, []byte("carriers:\n  - name: Bad Name\n"), 0o600))
	p = startWaybill(t, "serve", []string{"DATABASE_URL=" + dbURL, "ONFLEET_API_KEY=k", "WAYBILL_HTTP_ADDR=" + freeAddr(t), "WAYBILL_CARRIERS_FILE=" + broken}, "serve")
	require.Error(t, p.Wait(30*time.Second))
	require.Contains(t, p.Output(), "WAYBILL_CARRIERS_FILE")
}
