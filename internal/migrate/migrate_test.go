package migrate_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/pressly/goose/v3"
	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/dbtest"
	"github.com/waybill/waybill/internal/migrate"
)

func TestMigrateDownAndUpAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := dbtest.NewDatabase(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	m, err := migrate.New(ctx, dbURL, logger)
	require.NoError(t, err)
	defer m.Close()

	pending, err := m.Pending(ctx)
	require.NoError(t, err)
	require.False(t, pending, "template is fully migrated")

	var status strings.Builder
	require.NoError(t, m.WriteStatus(ctx, &status))
	require.Contains(t, status.String(), "River schema version 8")
	require.Contains(t, status.String(), "00002_orders.sql")

	// Down all the way, then up again: every Down section must undo its Up.
	for {
		res, err := m.Down(ctx)
		if err != nil {
			require.ErrorIs(t, err, goose.ErrNoNextVersion)
			break
		}
		require.NotNil(t, res)
	}
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var tables int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'waybill' AND tablename <> 'goose_db_version'`).Scan(&tables))
	require.Zero(t, tables)

	_, err = m.Up(ctx)
	require.NoError(t, err)
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'waybill' AND tablename IN ('orders', 'river_job')`).Scan(&tables))
	require.Equal(t, 2, tables)
}

// Two instances starting at once: both succeed, the migrations run once.
func TestMigrateConcurrentStart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := dbtest.NewDatabase(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `DROP SCHEMA waybill CASCADE`)
	require.NoError(t, err)

	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = migrate.Up(ctx, dbURL, logger) })
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	var applied int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM waybill.goose_db_version WHERE version_id > 0`).Scan(&applied))
	var files int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(DISTINCT version_id) FROM waybill.goose_db_version WHERE version_id > 0`).Scan(&files))
	require.Equal(t, files, applied, "each migration applied exactly once")
}
