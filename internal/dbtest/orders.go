package dbtest

import (
	"cmp"
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Payload is a valid order payload, recipient and address only, for tests that need an order
// rather than its details.
const Payload = `{"recipient":{"name":"Ada","phone":"+15550100"},"address":{"line1":"1 Main St","city":"Springfield","country":"US"}}`

// Order is an order to insert; empty fields take defaults: carrier onfleet, kind delivery,
// Payload.
type Order struct {
	ExternalID string
	Carrier    string
	Kind       string
	Payload    string
}

// Insert inserts o as the monolith does, one INSERT (the outbox trigger enqueues its dispatch
// job in the same statement), and returns the order's id. It reports to no testing.TB, so it
// may run off the test goroutine, and a test may decide what an error means.
func (o Order) Insert(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	var id int64
	err := pool.QueryRow(ctx, `INSERT INTO waybill.orders (external_id, carrier, kind, payload) VALUES ($1, $2, $3, $4) RETURNING id`,
		o.ExternalID, cmp.Or(o.Carrier, "onfleet"), cmp.Or(o.Kind, "delivery"), cmp.Or(o.Payload, Payload)).Scan(&id)
	return id, err
}

// InsertOrder inserts o (see Order.Insert) and returns the order's id and its dispatch job's.
func InsertOrder(t testing.TB, pool *pgxpool.Pool, o Order) (orderID, jobID int64) {
	t.Helper()
	ctx := context.Background()
	orderID, err := o.Insert(ctx, pool)
	if err != nil {
		t.Fatalf("dbtest: insert order %s: %v", o.ExternalID, err)
	}
	err = pool.QueryRow(ctx, `SELECT id FROM waybill.river_job WHERE kind = 'dispatch_order' AND (args->>'order_id')::bigint = $1`, orderID).Scan(&jobID)
	if err != nil {
		t.Fatalf("dbtest: dispatch job of order %s: %v", o.ExternalID, err)
	}
	return orderID, jobID
}

// InsertOrders inserts n orders like o, external ids prefix-0 … prefix-(n-1), one INSERT each
// as the monolith does.
func InsertOrders(t testing.TB, pool *pgxpool.Pool, prefix string, n int, o Order) {
	t.Helper()
	for i := range n {
		o.ExternalID = fmt.Sprintf("%s-%d", prefix, i)
		if _, err := o.Insert(context.Background(), pool); err != nil {
			t.Fatalf("dbtest: insert order %s: %v", o.ExternalID, err)
		}
	}
}

// InsertMany inserts n orders like o, external ids prefix-1 … prefix-n, in one statement, as a
// monolith's bulk import would: their dispatch jobs are enqueued together.
func InsertMany(t testing.TB, pool *pgxpool.Pool, prefix string, n int, o Order) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `INSERT INTO waybill.orders (external_id, carrier, kind, payload)
		SELECT $1 || '-' || g, $2, $3, $4::jsonb FROM generate_series(1, $5::int) g`,
		prefix, cmp.Or(o.Carrier, "onfleet"), cmp.Or(o.Kind, "delivery"), cmp.Or(o.Payload, Payload), n)
	if err != nil {
		t.Fatalf("dbtest: insert %d orders %s-*: %v", n, prefix, err)
	}
}
