package metrics

import (
	"context"
	"errors"
	"net"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/dbtest"
)

// /readyz is unauthenticated (httpapi's TestReadyzNamesNothingAboutTheDatabase serves it): the public
// reason names the failing dependencies only, never the user, host or database the driver's
// error names.
func TestReadyPublicReason(t *testing.T) {
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

	err = Ready(context.Background(), down, func() error { return errors.New("client stopped") })
	require.ErrorContains(t, err, "waybill_ready_probe", "the detail is in the error, for the log")
	var nre *NotReadyError
	require.ErrorAs(t, err, &nre)
	require.Equal(t, "database unreachable; river not running", nre.PublicReason())
	for _, secret := range []string{"waybill_ready_probe", u.Path[1:], "127.0.0.1", deadAddr} {
		require.NotContains(t, nre.PublicReason(), secret)
	}
}
