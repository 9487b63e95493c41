package dbtest

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// NewLogin creates a login on the test server, a member of roles (none: no grants at all, only
// what PUBLIC may do), dropped when t ends, and returns its name and dbURL with it as the user.
// Logins are cluster-wide: the name is random, so that tests run in parallel.
func NewLogin(t testing.TB, dbURL string, roles ...string) (login, loginURL string) {
	t.Helper()
	ctx := context.Background()
	login = "waybill_login_" + randomHex(4)
	admin := adminConn(t, ctx)
	stmt := "CREATE ROLE " + login + " LOGIN"
	if len(roles) > 0 {
		stmt += " IN ROLE " + strings.Join(roles, ", ")
	}
	if _, err := admin.Exec(ctx, stmt); err != nil {
		t.Fatalf("dbtest: %s: %v", stmt, err)
	}
	t.Cleanup(func() { // before admin closes; after the login's own connections close
		_, _ = admin.Exec(context.Background(), "DROP OWNED BY "+login)
		_, _ = admin.Exec(context.Background(), "DROP ROLE IF EXISTS "+login)
	})
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	u.User = url.User(login)
	return login, u.String()
}

// Connect opens a connection of its own to dbURL, closed when t ends: for a login's session, or
// for SET ROLE, which must not leak into a pool.
func Connect(t testing.TB, dbURL string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatalf("dbtest: connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
