package dbtest

import (
	"cmp"
	"context"
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

// InsertOrder inserts o as the monolith does (the outbox trigger enqueues its dispatch job in
// the same statement) and returns the order's id and its dispatch job's.
func InsertOrder(t testing.TB, pool *pgxpool.Pool, o Order) (orderID, jobID int64) {
	t.Helper()
	ctx := context.Background()
	err := pool.QueryRow(ctx, `INSERT INTO waybill.orders (external_id, carrier, kind, payload) VALUES ($1, $2, $3, $4) RETURNING id`,
		o.ExternalID, cmp.Or(o.Carrier, "onfleet"), cmp.Or(o.Kind, "delivery"), cmp.Or(o.Payload, Payload)).Scan(&orderID)
	if err != nil {
		t.Fatalf("dbtest: insert order %s: %v", o.ExternalID, err)
	}
	err = pool.QueryRow(ctx, `SELECT id FROM waybill.river_job WHERE kind = 'dispatch_order' AND (args->>'order_id')::bigint = $1`, orderID).Scan(&jobID)
	if err != nil {
		t.Fatalf("dbtest: dispatch job of order %s: %v", o.ExternalID, err)
	}
	return orderID, jobID
}
