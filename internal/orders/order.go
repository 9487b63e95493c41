package orders

import (
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// Status is Waybill's canonical order status.
type Status string

const (
	StatusPending       Status = "pending"    // in the outbox, not yet accepted by the carrier
	StatusDispatched    Status = "dispatched" // the carrier accepted it
	StatusAssigned      Status = "assigned"
	StatusInTransit     Status = "in_transit"
	StatusDelivered     Status = "delivered"
	StatusPickedUp      Status = "picked_up" // a return pickup completed
	StatusFailedAttempt Status = "failed_attempt"
	StatusReturned      Status = "returned"
	StatusCancelled     Status = "cancelled"
	StatusException     Status = "exception"
	StatusRejected      Status = "rejected" // never accepted: refused by the carrier or unsendable
)

// Statuses lists every canonical status, in lifecycle order.
var Statuses = []Status{
	StatusPending, StatusDispatched, StatusAssigned, StatusInTransit, StatusDelivered, StatusPickedUp,
	StatusFailedAttempt, StatusReturned, StatusCancelled, StatusException, StatusRejected,
}

// Kind says whether the carrier delivers to the recipient or picks up from them.
type Kind string

const (
	KindDelivery Kind = "delivery"
	KindPickup   Kind = "pickup" // a return pickup
)

// Payload is the canonical order payload the monolith writes into waybill.orders.payload. Its
// rules are enforced by waybill.order_payload_problems in SQL; db/order-payload.schema.json
// documents them.
type Payload struct {
	Recipient Recipient `json:"recipient"`
	Address   Address   `json:"address"`
	Notes     string    `json:"notes,omitempty"`
	Window    *Window   `json:"window,omitempty"`
	Items     []Item    `json:"items,omitempty"`
}

type Recipient struct {
	Name  string `json:"name"`
	Phone string `json:"phone"`
	Email string `json:"email,omitempty"`
}

type Address struct {
	Line1      string `json:"line1"`
	Line2      string `json:"line2,omitempty"`
	City       string `json:"city"`
	Region     string `json:"region,omitempty"`
	PostalCode string `json:"postal_code,omitempty"`
	Country    string `json:"country"`
}

// Window is when the carrier may complete the task.
type Window struct {
	After  *time.Time `json:"after,omitempty"`
	Before *time.Time `json:"before,omitempty"`
}

type Item struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

// Order is an order as Waybill stores it.
type Order struct {
	ID         int64           `json:"id"`
	ExternalID string          `json:"external_id"`
	Carrier    string          `json:"carrier"`
	Kind       Kind            `json:"kind"`
	Payload    json.RawMessage `json:"payload"`
	Status     Status          `json:"status"`
	// StatusAt is when what set Status happened: the carrier's event time, or Waybill's clock
	// for pending and dispatch (see CarrierTime).
	StatusAt     *time.Time `json:"status_at,omitempty"`
	StatusReason string     `json:"status_reason,omitempty"`
	CarrierRef   string     `json:"carrier_ref,omitempty"`
	TrackingURL  string     `json:"tracking_url,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	UpdatedAt    time.Time  `json:"updated_at"`
	DispatchedAt *time.Time `json:"dispatched_at,omitempty"`
}

// OneLine is the recipient as an email names them: "name, phone".
func (r Recipient) OneLine() string { return joinNonEmpty(", ", r.Name, r.Phone) }

// OneLine is the address on one line: "line1, line2, city, region postal, country".
func (a Address) OneLine() string {
	return joinNonEmpty(", ", a.Line1, a.Line2, a.City, joinNonEmpty(" ", a.Region, a.PostalCode), a.Country)
}

// joinNonEmpty joins the parts that are not blank, trimmed.
func joinNonEmpty(sep string, parts ...string) string {
	kept := slices.DeleteFunc(slices.Clone(parts), func(p string) bool { return strings.TrimSpace(p) == "" })
	for i := range kept {
		kept[i] = strings.TrimSpace(kept[i])
	}
	return strings.Join(kept, sep)
}
