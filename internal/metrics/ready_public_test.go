package metrics

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/dbtest"
)

// /readyz is unauthenticated: with Postgres unreachable it says so, and names no user, host or
// database; the driver's detail goes to the log.
func TestReadyHandlerHidesConnectionDetails(t *testing.T) {
	t.Parallel()
	_, dbURL := dbtest.NewPool(t)

	// The same login and database, on a port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	deadAddr := ln.Addr().String()
	require.NoError(t, ln.Close())
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	u.Host = deadAddr
	u.User = url.User("waybill_ready_probe")
	down, err := pgxpool.New(context.Background(), u.String())
	require.NoError(t, err)
	t.Cleanup(down.Close)
	database := u.Path[1:]

	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	srv := httptest.NewServer(ReadyHandler(down, func() error { return nil }, logger))
	t.Cleanup(srv.Close)

	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Equal(t, "not ready: database unreachable\n", string(body))
	for _, secret := range []string{"waybill_ready_probe", database, "127.0.0.1", deadAddr} {
		require.NotContains(t, string(body), secret)
	}
	require.Contains(t, logs.String(), "waybill_ready_probe", "the detail is logged")

	err = Ready(context.Background(), down, func() error { return errors.New("client stopped") })
	var nre *NotReadyError
	require.ErrorAs(t, err, &nre)
	require.Equal(t, "database unreachable; river not running", nre.PublicReason())
}
