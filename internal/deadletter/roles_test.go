package deadletter

// Tests of the roles in db/migrations/00006_roles.sql: what the monolith and ops may do, on
// real connections that SET ROLE.

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/dbsqlc"
	"github.com/waybill/waybill/internal/dbtest"
)

// connectAs opens a connection of its own (SET ROLE must not leak into a pool) acting as role.
func connectAs(t *testing.T, url, role string) *pgx.Conn {
	t.Helper()
	conn := dbtest.Connect(t, url)
	_, err := conn.Exec(context.Background(), "SET ROLE "+role)
	require.NoError(t, err)
	return conn
}

func requireDenied(t *testing.T, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	_, err := conn.Exec(context.Background(), sql, args...)
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "%s: want permission denied, got %v", sql, err)
	require.Equal(t, "42501", pgErr.Code, "%s: %s", sql, pgErr.Message)
}

func requireAllowed(t *testing.T, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	_, err := conn.Exec(context.Background(), sql, args...)
	require.NoError(t, err, sql)
}

const rolesTestPayload = `{"recipient":{"name":"Ada","phone":"+4930123"},"address":{"line1":"Hauptstr. 1","city":"Berlin","country":"DE"}}`

func TestMonolithRole(t *testing.T) {
	t.Parallel()
	pool, url := dbtest.NewPool(t)
	ctx := context.Background()
	shop := connectAs(t, url, "waybill_monolith")

	// The SQL contract works, and the SECURITY DEFINER outbox trigger enqueues the job although
	// the role has no privilege on River's tables.
	var orderID int64
	require.NoError(t, shop.QueryRow(ctx,
		`INSERT INTO waybill.orders (external_id, carrier, payload) VALUES ('SO-ROLE-1', 'onfleet', $1) RETURNING id`,
		rolesTestPayload).Scan(&orderID))
	var jobs int
	require.NoError(t, pool.QueryRow(ctx,
		`SELECT count(*) FROM waybill.river_job WHERE kind = 'dispatch_order' AND (args->>'order_id')::bigint = $1`, orderID).Scan(&jobs))
	require.Equal(t, 1, jobs)

	// The validation trigger still names the problem for this role.
	_, err := shop.Exec(ctx, `INSERT INTO waybill.orders (external_id, carrier, payload) VALUES ('SO-ROLE-2', 'dhl', $1)`, rolesTestPayload)
	require.ErrorContains(t, err, `carrier: unknown carrier 'dhl' (known: onfleet)`)

	requireAllowed(t, shop, `SELECT status, carrier_ref, tracking_url FROM waybill.orders WHERE external_id = 'SO-ROLE-1'`)
	requireAllowed(t, shop, `SELECT * FROM waybill.order_events WHERE order_id = $1`, orderID)

	for _, sql := range []string{
		`UPDATE waybill.orders SET status = 'delivered'`,
		`DELETE FROM waybill.orders`,
		`SELECT * FROM waybill.river_job`,
		`UPDATE waybill.river_job SET state = 'available'`,
		`DELETE FROM waybill.river_job`,
		`INSERT INTO waybill.river_job (args, kind) VALUES ('{}', 'x')`,
		`SELECT * FROM waybill.webhook_events`,
		`INSERT INTO waybill.order_events (order_id, carrier_status, occurred_at, applied, event_key) VALUES (1, 'x', now(), false, 'k')`,
		`DELETE FROM waybill.order_events`,
		`SELECT * FROM waybill.dead_jobs`,
		`SELECT * FROM waybill.dead_letters_open`,
		`SELECT * FROM waybill.redrive(ARRAY[1::bigint])`,
		`INSERT INTO waybill.carriers (name) VALUES ('dhl')`,
	} {
		requireDenied(t, shop, sql)
	}
}

func TestOpsRole(t *testing.T) {
	t.Parallel()
	pool, url := dbtest.NewPool(t)
	ctx := context.Background()

	// A dead dispatch job: the order inserted, its job cancelled the way River UI does it.
	_, jobID := dbtest.InsertOrder(t, pool, dbtest.Order{ExternalID: "SO-OPS-1", Payload: rolesTestPayload})
	client := dbtest.NewRiver(t, pool, nil)
	_, err := client.JobCancel(ctx, jobID)
	require.NoError(t, err)

	ops := connectAs(t, url, "waybill_ops")

	// Every table and view in the schema is readable.
	relations := listRelations(t, pool)
	require.Contains(t, relations, "dead_letters_by_carrier")
	require.Contains(t, relations, "river_job")
	for _, rel := range relations {
		requireAllowed(t, ops, `SELECT * FROM waybill.`+pgx.Identifier{rel}.Sanitize()+` LIMIT 1`)
	}

	// Redrive, with `by` defaulting to the caller's role although the function runs as its owner.
	var outcome string
	require.NoError(t, ops.QueryRow(ctx, `SELECT outcome FROM waybill.redrive(ARRAY[$1::bigint])`, jobID).Scan(&outcome))
	require.Equal(t, "redriven", outcome)
	deaths, err := dbsqlc.New().DeadJobListByJobID(ctx, pool, jobID)
	require.NoError(t, err)
	require.Len(t, deaths, 1)
	require.Equal(t, "waybill_ops", *deaths[0].RedrivenBy)
	require.Equal(t, "sql", *deaths[0].RedrivenVia)
	job, err := client.JobGet(ctx, jobID)
	require.NoError(t, err)
	require.Equal(t, "available", string(job.State))

	for _, sql := range []string{
		`UPDATE waybill.orders SET status = 'delivered'`,
		`INSERT INTO waybill.orders (external_id, carrier, payload) VALUES ('SO-OPS-2', 'onfleet', '` + rolesTestPayload + `')`,
		`DELETE FROM waybill.orders`,
		`UPDATE waybill.river_job SET state = 'available'`,
		`DELETE FROM waybill.river_job`,
		`UPDATE waybill.dead_jobs SET redriven_at = now()`,
		`DELETE FROM waybill.dead_jobs`,
		`DELETE FROM waybill.webhook_events`,
		`SELECT waybill.dead_job_redriven(1, 'dispatch_order', '{}')`,
	} {
		requireDenied(t, ops, sql)
	}
}

func listRelations(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
		SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'waybill' AND c.relkind IN ('r', 'p', 'v', 'm') ORDER BY 1`)
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return names
}
