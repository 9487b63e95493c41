package migrate_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/dbtest"
	"github.com/waybill/waybill/internal/migrate"
)

// `waybill migrate up` warns while every role may connect to the database (Postgres's default),
// and is quiet once CONNECT is revoked from PUBLIC.
func TestMigrateUpWarnsWhenPublicCanConnect(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := dbtest.NewDatabase(t)
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))

	m, err := migrate.New(ctx, dbURL, logger)
	require.NoError(t, err)
	defer m.Close()
	_, err = m.Up(ctx)
	require.NoError(t, err)
	require.Contains(t, logs.String(), "level=WARN")
	require.Contains(t, logs.String(), "CONNECT granted to PUBLIC")

	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `REVOKE CONNECT ON DATABASE `+pgx.Identifier{u.Path[1:]}.Sanitize()+` FROM PUBLIC`)
	require.NoError(t, err)
	logs.Reset()
	_, err = m.Up(ctx)
	require.NoError(t, err)
	require.NotContains(t, logs.String(), "PUBLIC")
	can, err := m.PublicCanConnect(ctx)
	require.NoError(t, err)
	require.False(t, can)
}
