// Package notify tells people and systems what happened: email to the logistics team, Slack to
// the developers, a signed HTTP callback to the monolith. Each is a River job on QueueNotify.
package notify

import "time"

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
	Subject string `json:"subject,omitempty"`
	Body    string `json:"body,omitempty"`
}

func (EmailArgs) Kind() string { return "notify_email" }

// SlackArgs is a message to the developers' Slack about an integration problem.
type SlackArgs struct {
	Title  string            `json:"title"`
	Text   string            `json:"text"`
	Fields map[string]string `json:"fields,omitempty"`
	// Severity is "alarm", "resolved" or "info"; it picks the message's emoji.
	Severity string `json:"severity"`
}

func (SlackArgs) Kind() string { return "notify_slack" }

// CallbackArgs is a status change POSTed to the monolith's WAYBILL_CALLBACK_URL.
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
