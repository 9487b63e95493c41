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
	// LearntBy is LearntByPoll for what reconciliation learnt by asking the carrier; empty for
	// a webhook.
	LearntBy string `json:"learnt_by,omitempty"`
}

// How Waybill learnt a carrier event: waybill.webhook_events.learnt_by and
// waybill.order_events.learnt_by.
const (
	LearntByWebhook = "webhook"
	LearntByPoll    = "poll"
)

// Event keys of what reconciliation learnt (internal/reconcile): PolledKeyPrefix when the carrier
// stated when the change happened, InferredKeyPrefix when the time is Waybill's inference (an
// assignment seen only as an already started task: it happened at or before that time).
const (
	PolledKeyPrefix   = "poll:"
	InferredKeyPrefix = "poll-inferred:"
)

func (ActArgs) Kind() string { return "webhook_act" }

func (ActArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueAct}
}
