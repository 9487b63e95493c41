package dispatch

import "github.com/riverqueue/river"

// QueueDispatch is the River queue the outbox trigger enqueues into.
const QueueDispatch = "dispatch"

// Args are a dispatch job's arguments. The outbox trigger (waybill.orders_enqueue_dispatch)
// writes them in SQL, so field names, kind, queue and max attempts here and there must agree:
// internal/migrate/river_contract_test.go compares the trigger's row with River's own insert. Only the order's identity: the
// worker reads the rest by primary key (a payload in River's GIN-indexed args slows every
// INSERT the monolith makes).
type Args struct {
	OrderID    int64  `json:"order_id"`
	ExternalID string `json:"external_id"`
	Carrier    string `json:"carrier"`
}

// Kind must match the trigger's kind.
func (Args) Kind() string { return "dispatch_order" }

func (Args) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueDispatch, MaxAttempts: 25}
}
