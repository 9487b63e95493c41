package orders_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/dbtest"
	"github.com/waybill/waybill/internal/orders"
)

const validPayload = `{"recipient":{"name":"Ada Lovelace","phone":"+14155550100","email":"ada@example.com"},
 "address":{"line1":"1 Market St","line2":"Apt 4","city":"San Francisco","region":"CA","postal_code":"94105","country":"US"},
 "notes":"Leave at the door","window":{"after":"2026-11-22T09:00:00Z","before":"2026-11-22T17:00:00-08:00"},
 "items":[{"sku":"SKU-1","quantity":2}]}`

type testBundle struct {
	pool  *pgxpool.Pool
	store *orders.Store
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	pool, _ := dbtest.NewPool(t)
	return &testBundle{pool: pool, store: orders.NewStore(pool)}
}

func countJobs(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT count(*) FROM waybill.river_job WHERE kind = 'dispatch_order' AND queue = 'dispatch'`).Scan(&n))
	return n
}

// The monolith's contract: a plain INSERT enqueues the dispatch job in the same transaction.
func TestSQLContractInsertEnqueuesJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)

	_, err := b.pool.Exec(ctx, `INSERT INTO waybill.orders (external_id, carrier, payload) VALUES ('SO-1001', 'onfleet', $1)`, validPayload)
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `INSERT INTO waybill.orders (external_id, carrier, kind, payload) VALUES ('RET-1', 'onfleet', 'pickup', $1)`, validPayload)
	require.NoError(t, err)

	var status, kind string
	var args []byte
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT o.status, o.kind, j.args FROM waybill.orders o
		JOIN waybill.river_job j ON (j.args->>'order_id')::bigint = o.id WHERE o.external_id = 'RET-1'`).Scan(&status, &kind, &args))
	require.Equal(t, "pending", status)
	require.Equal(t, "pickup", kind)
	var decoded map[string]any
	require.NoError(t, json.Unmarshal(args, &decoded))
	// The job names the order; the worker reads the rest by primary key.
	require.Equal(t, map[string]any{"order_id": decoded["order_id"], "external_id": "RET-1", "carrier": "onfleet"}, decoded)
	require.Equal(t, 2, countJobs(t, b.pool))

	// A multi-row INSERT gets one job per row.
	_, err = b.pool.Exec(ctx, `INSERT INTO waybill.orders (external_id, carrier, payload) VALUES ('M-1', 'onfleet', $1), ('M-2', 'onfleet', $1)`, validPayload)
	require.NoError(t, err)
	require.Equal(t, 4, countJobs(t, b.pool))
}

// No order without its job, no job without its order.
func TestSQLContractRollbackLeavesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)

	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO waybill.orders (external_id, carrier, payload) VALUES ('SO-RB', 'onfleet', $1)`, validPayload)
		require.NoError(t, err)
		return errRollback
	})
	require.ErrorIs(t, err, errRollback)
	var orders int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM waybill.orders`).Scan(&orders))
	require.Zero(t, orders)
	require.Zero(t, countJobs(t, b.pool))
}

var errRollback = &pgconn.PgError{Message: "rollback on purpose"}

// Rows that can never be dispatched fail at INSERT with a message naming the problem.
func TestSQLContractRejectsUndispatchableRows(t *testing.T) {
	t.Parallel()
	b := setup(t)

	tests := []struct {
		name, sql string
		args      []any
		want      []string // substrings of the error message
	}{
		{"unknown carrier", `INSERT INTO waybill.orders (external_id, carrier, payload) VALUES ('X1', 'fedex', $1)`,
			[]any{validPayload}, []string{`unknown carrier 'fedex'`, "onfleet"}},
		{"bad kind", `INSERT INTO waybill.orders (external_id, carrier, kind, payload) VALUES ('X2', 'onfleet', 'return', $1)`,
			[]any{validPayload}, []string{"kind: must be delivery or pickup"}},
		{"empty payload", `INSERT INTO waybill.orders (external_id, carrier, payload) VALUES ('X3', 'onfleet', '{}')`,
			nil, []string{"payload.recipient: required object", "payload.address: required object"}},
		{"payload not an object", `INSERT INTO waybill.orders (external_id, carrier, payload) VALUES ('X4', 'onfleet', '[1]')`,
			nil, []string{"payload: must be a JSON object"}},
		{"missing fields", `INSERT INTO waybill.orders (external_id, carrier, payload) VALUES ('X5', 'onfleet',
			'{"recipient":{"name":" "},"address":{"line1":"1 Main","country":"US"}}')`,
			nil, []string{"payload.recipient.name: required", "payload.recipient.phone: required", "payload.address.city: required"}},
		{"bad window", `INSERT INTO waybill.orders (external_id, carrier, payload) VALUES ('X6', 'onfleet',
			'{"recipient":{"name":"A","phone":"1"},"address":{"line1":"1","city":"c","country":"US"},"window":{"after":"tomorrow"}}')`,
			nil, []string{"payload.window.after: must be an RFC 3339 timestamp"}},
		{"window backwards", `INSERT INTO waybill.orders (external_id, carrier, payload) VALUES ('X7', 'onfleet',
			'{"recipient":{"name":"A","phone":"1"},"address":{"line1":"1","city":"c","country":"US"},"window":{"after":"2026-01-02T00:00:00Z","before":"2026-01-01T00:00:00Z"}}')`,
			nil, []string{"after must be earlier than before"}},
		{"bad items", `INSERT INTO waybill.orders (external_id, carrier, payload) VALUES ('X8', 'onfleet',
			'{"recipient":{"name":"A","phone":"1"},"address":{"line1":"1","city":"c","country":"US"},"items":[{"sku":"A","quantity":0},{"sku":"","quantity":1}]}')`,
			nil, []string{"payload.items[0]", "payload.items[1]"}},
		{"bad email", `INSERT INTO waybill.orders (external_id, carrier, payload) VALUES ('X9', 'onfleet',
			'{"recipient":{"name":"A","phone":"1","email":"nope"},"address":{"line1":"1","city":"c","country":"US"}}')`,
			nil, []string{"payload.recipient.email"}},
		{"status preset", `INSERT INTO waybill.orders (external_id, carrier, status, payload) VALUES ('X10', 'onfleet', 'delivered', $1)`,
			[]any{validPayload}, []string{"set by Waybill"}},
		{"blank external_id", `INSERT INTO waybill.orders (external_id, carrier, payload) VALUES (' ', 'onfleet', $1)`,
			[]any{validPayload}, []string{"orders_external_id_format"}},
		{"null payload", `INSERT INTO waybill.orders (external_id, carrier, payload) VALUES ('X11', 'onfleet', NULL)`,
			nil, []string{"payload"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := b.pool.Exec(context.Background(), tt.sql, tt.args...)
			require.Error(t, err)
			for _, w := range tt.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
	require.Zero(t, countJobs(t, b.pool), "a rejected row never leaves a job behind")
}

func TestStoreCreateIdempotentAndConflict(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)

	n := orders.NewOrder{ExternalID: "SO-7", Carrier: "onfleet", Payload: json.RawMessage(validPayload)}
	first, created, err := b.store.Create(ctx, n)
	require.NoError(t, err)
	require.True(t, created)
	require.Equal(t, orders.StatusPending, first.Status)
	require.Equal(t, orders.KindDelivery, first.Kind)

	// Same content, other key order and spacing: the same order, no second job.
	var v map[string]any
	require.NoError(t, json.Unmarshal([]byte(validPayload), &v))
	reordered, err := json.Marshal(v)
	require.NoError(t, err)
	again, created, err := b.store.Create(ctx, orders.NewOrder{ExternalID: "SO-7", Carrier: "onfleet", Kind: orders.KindDelivery, Payload: reordered})
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, first.ID, again.ID)
	require.Equal(t, 1, countJobs(t, b.pool))

	_, _, err = b.store.Create(ctx, orders.NewOrder{ExternalID: "SO-7", Carrier: "onfleet", Kind: orders.KindPickup, Payload: reordered})
	require.ErrorIs(t, err, orders.ErrConflict)
	require.Equal(t, 1, countJobs(t, b.pool))

	_, err = b.store.GetByExternalID(ctx, "nope")
	require.ErrorIs(t, err, orders.ErrNotFound)
}

func TestStoreCreateValidationError(t *testing.T) {
	t.Parallel()
	b := setup(t)

	_, _, err := b.store.Create(context.Background(), orders.NewOrder{ExternalID: "SO-8", Carrier: "dhl", Payload: json.RawMessage(`{"recipient":{"name":"A"}}`)})
	var verr *orders.ValidationError
	require.ErrorAs(t, err, &verr)
	fields := map[string]bool{}
	for _, p := range verr.Problems {
		fields[p.Field] = true
	}
	require.True(t, fields["carrier"], "%v", verr.Problems)
	require.True(t, fields["payload.recipient.phone"], "%v", verr.Problems)
	require.True(t, fields["payload.address"], "%v", verr.Problems)
}
