package devenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/waybill/waybill/internal/dbsqlc"
	"github.com/waybill/waybill/internal/orders"
)

// demoCarrier is the carrier every demo order names: the one every installation has.
const demoCarrier = "onfleet"

// ExampleInsert is a psql statement, ready to paste, that inserts one realistic delivery as the
// monolith would. Its window starts at the next full hour.
func ExampleInsert(externalID string) string {
	after := time.Now().UTC().Truncate(time.Hour).Add(time.Hour)
	before := after.Add(3 * time.Hour)
	p := orders.Payload{
		Recipient: orders.Recipient{Name: "Ada Lovelace", Phone: "+14155550123", Email: "ada@example.com"},
		Address: orders.Address{Line1: "1 Market St", Line2: "Suite 300", City: "San Francisco", Region: "CA",
			PostalCode: "94105", Country: "US"},
		Notes:  "Leave with the front desk",
		Window: &orders.Window{After: &after, Before: &before},
		Items:  []orders.Item{{SKU: "BOOK-1843", Quantity: 2}, {SKU: "LAMP-07", Quantity: 1}},
	}
	payload, err := json.Marshal(p)
	if err != nil {
		panic(fmt.Sprintf("devenv: marshal example payload: %v", err)) // a fixed struct always marshals
	}
	return fmt.Sprintf("INSERT INTO waybill.orders (external_id, carrier, payload)\nVALUES (%s, %s, %s);",
		sqlString(externalID), sqlString(demoCarrier), sqlString(string(payload)))
}

// ExampleExternalID is an external_id for the example INSERT that no other run prints, so the
// INSERT `waybill dev` shows works again after a restart: SO-<UTC date-time>-<4 random hex>.
func ExampleExternalID(now time.Time) string {
	return "SO-" + now.UTC().Format("20060102-150405") + "-" + randomHex(2)
}

// sqlString is a standard SQL string literal.
func sqlString(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// InsertDemoOrders inserts n varied sample orders for the onfleet carrier, every fourth a return
// pickup, in one transaction, and returns their external_ids (DEMO-<unix ms>-<i>). Each gets its
// dispatch job from the outbox trigger like any other order.
func InsertDemoOrders(ctx context.Context, pool *pgxpool.Pool, n int) ([]string, error) {
	if n < 0 {
		return nil, fmt.Errorf("demo orders: n must not be negative, got %d", n)
	}
	now := time.Now().UTC()
	prefix := fmt.Sprintf("DEMO-%d-", now.UnixMilli())
	ids := make([]string, 0, n)

	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		q := dbsqlc.New()
		for i := range n {
			kind, payload := demoOrder(i, now)
			b, err := json.Marshal(payload)
			if err != nil {
				return err
			}
			id := prefix + strconv.Itoa(i+1)
			_, err = q.OrderInsert(ctx, tx, dbsqlc.OrderInsertParams{ExternalID: id, Carrier: demoCarrier, Kind: string(kind), Payload: b})
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("order %s already exists", id)
			}
			if err != nil {
				return fmt.Errorf("insert %s: %w", id, err)
			}
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("demo orders: %w", err)
	}
	return ids, nil
}

var demoRecipients = []orders.Recipient{
	{Name: "Maya Patel", Phone: "+14155550142", Email: "maya.patel@example.com"},
	{Name: "Jonas Becker", Phone: "+14155550187"},
	{Name: "Sofia Alvarez", Phone: "+12125550119", Email: "sofia@example.org"},
	{Name: "Liam O'Connor", Phone: "+16175550163", Email: "liam.oconnor@example.net"},
	{Name: "Amara Okafor", Phone: "+13125550175"},
	{Name: "Chen Wei", Phone: "+12065550128", Email: "chen.wei@example.com"},
	{Name: "Noah Schmidt", Phone: "+15125550136"},
}

var demoAddresses = []orders.Address{
	{Line1: "500 Howard St", Line2: "Floor 4", City: "San Francisco", Region: "CA", PostalCode: "94105", Country: "US"},
	{Line1: "221 Valencia St", City: "San Francisco", Region: "CA", PostalCode: "94103", Country: "US"},
	{Line1: "85 Broad St", Line2: "Apt 12B", City: "New York", Region: "NY", PostalCode: "10004", Country: "US"},
	{Line1: "1 Kendall Sq", City: "Cambridge", Region: "MA", PostalCode: "02139", Country: "US"},
	{Line1: "233 S Wacker Dr", City: "Chicago", Region: "IL", PostalCode: "60606", Country: "US"},
	{Line1: "400 Broad St", City: "Seattle", Region: "WA", PostalCode: "98109", Country: "US"},
	{Line1: "1100 Congress Ave", City: "Austin", Region: "TX", PostalCode: "78701", Country: "US"},
}

var demoItems = [][]orders.Item{
	{{SKU: "MUG-CERAMIC-12", Quantity: 2}},
	{{SKU: "TSHIRT-M-NAVY", Quantity: 1}, {SKU: "SOCKS-3PK", Quantity: 1}},
	{{SKU: "COFFEE-BEANS-1KG", Quantity: 3}},
	nil,
	{{SKU: "DESK-LAMP-LED", Quantity: 1}},
}

var demoNotes = []string{"", "Ring twice; the bell is broken", "", "Leave with the concierge", ""}

// demoOrder is the i-th sample order: recipients, addresses, items and notes cycle at different
// rates so neighbours differ; every fourth order is a pickup, and windows vary.
func demoOrder(i int, now time.Time) (orders.Kind, orders.Payload) {
	p := orders.Payload{
		Recipient: demoRecipients[i%len(demoRecipients)],
		Address:   demoAddresses[(i*3)%len(demoAddresses)],
		Notes:     demoNotes[i%len(demoNotes)],
		Items:     demoItems[i%len(demoItems)],
	}
	kind := orders.KindDelivery
	if i%4 == 3 {
		kind = orders.KindPickup
		p.Notes = "Return pickup: customer has the parcel ready"
	}
	start := now.Truncate(time.Hour).Add(time.Duration(1+i%6) * time.Hour)
	end := start.Add(2 * time.Hour)
	switch i % 3 {
	case 0:
		p.Window = &orders.Window{After: &start, Before: &end}
	case 1:
		p.Window = &orders.Window{Before: &end}
	}
	return kind, p
}
