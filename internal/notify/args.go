package notify

import (
	"time"

	"github.com/riverqueue/river"
)

// QueueNotify is the River queue of every notification job.
const QueueNotify = "notify"

// EmailArgs is an email to the logistics team about a logistics problem with an order.
type EmailArgs struct {
	OrderID       int64     `json:"order_id"`
	ExternalID    string    `json:"external_id"`
	Carrier       string    `json:"carrier"`
	Status        string    `json:"status"`         // canonical status, e.g. failed_attempt
	CarrierStatus string    `json:"carrier_status"` // the carrier's word for it
	Reason        string    `json:"reason,omitempty"`
	Recipient     string    `json:"recipient,omitempty"` // name and phone
	Address       string    `json:"address,omitempty"`   // one line
	TrackingURL   string    `json:"tracking_url,omitempty"`
	OccurredAt    time.Time `json:"occurred_at"`
	// Subject and Body, when set, replace the order template (used by alarms such as silence).
	// Body is plain text; the HTML part shows it escaped, line breaks kept.
	Subject string `json:"subject,omitempty"`
	Body    string `json:"body,omitempty"`
}

func (EmailArgs) Kind() string { return "notify_email" }

// InsertOpts puts the job on QueueNotify wherever it is inserted from.
func (EmailArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: QueueNotify} }

// SlackArgs is a message to the developers' Slack about an integration problem.
type SlackArgs struct {
	Title  string            `json:"title"`
	Text   string            `json:"text"`
	Fields map[string]string `json:"fields,omitempty"`
	// Severity is "alarm", "resolved" or "info"; it picks the message's emoji.
	Severity string `json:"severity"`
}

func (SlackArgs) Kind() string { return "notify_slack" }

// InsertOpts puts the job on QueueNotify wherever it is inserted from.
func (SlackArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: QueueNotify} }

// CallbackArgs is a status change POSTed to the monolith's WAYBILL_CALLBACK_URL. The JSON body of
// the POST is exactly this struct, and its field names are a contract with the monolith:
//
//	{
//	  "order_id": 42,                      // waybill.orders.id
//	  "external_id": "SO-1001",            // the monolith's own order id
//	  "carrier": "onfleet",
//	  "status": "failed_attempt",          // canonical status, now
//	  "previous_status": "in_transit",     // canonical status before this change
//	  "carrier_status": "taskFailed",      // the carrier's word, omitted when unknown
//	  "reason": "Customer not home",       // omitted when none
//	  "tracking_url": "https://…",         // omitted when none
//	  "occurred_at": "2025-01-02T15:04:05Z" // event time at the carrier, RFC 3339
//	}
//
// Headers: Content-Type: application/json; X-Waybill-Timestamp: unix seconds;
// X-Waybill-Signature: v1=<lowercase hex HMAC-SHA256(WAYBILL_CALLBACK_SECRET, timestamp + "." +
// body)>; X-Waybill-Delivery: an id that is the same on every retry of one callback (deduplicate
// on it). Verify with VerifyCallback or its equivalent; answer 2xx, anything else is retried.
type CallbackArgs struct {
	OrderID        int64     `json:"order_id"`
	ExternalID     string    `json:"external_id"`
	Carrier        string    `json:"carrier"`
	Status         string    `json:"status"`
	PreviousStatus string    `json:"previous_status"`
	CarrierStatus  string    `json:"carrier_status,omitempty"`
	Reason         string    `json:"reason,omitempty"`
	TrackingURL    string    `json:"tracking_url,omitempty"`
	OccurredAt     time.Time `json:"occurred_at"`
}

func (CallbackArgs) Kind() string { return "notify_callback" }

// InsertOpts puts the job on QueueNotify wherever it is inserted from.
func (CallbackArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: QueueNotify} }
