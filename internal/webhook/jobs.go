package webhook

import (
	"encoding/json"
	"time"

	"github.com/riverqueue/river"

	"github.com/waybill/waybill/internal/orders"
)

// River queues of the webhook pipeline.
const (
	QueueTranslate = "translate"
	QueueAct       = "act"
)

// TranslateArgs: translate the stored webhook event into its canonical meaning.
type TranslateArgs struct {
	WebhookEventID int64  `json:"webhook_event_id"`
	Carrier        string `json:"carrier"`
}

func (TranslateArgs) Kind() string { return "webhook_translate" }

func (TranslateArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueTranslate}
}

// ActArgs: apply one canonical carrier event to its order. It carries the whole event, so the
// act needs neither the raw webhook nor the carrier's Source.
type ActArgs struct {
	OrderID        int64  `json:"order_id"`
	WebhookEventID int64  `json:"webhook_event_id"`
	Carrier        string `json:"carrier"`
	EventKey       string `json:"event_key"`
	CarrierStatus  string `json:"carrier_status"`
	// Status is empty for events that only go into the history (OutcomeRecord).
	Status      orders.Status   `json:"status,omitempty"`
	OccurredAt  time.Time       `json:"occurred_at"`
	Reason      string          `json:"reason,omitempty"`
	TrackingURL string          `json:"tracking_url,omitempty"`
	Details     json.RawMessage `json:"details,omitempty"`
}

func (ActArgs) Kind() string { return "webhook_act" }

func (ActArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueAct}
}
