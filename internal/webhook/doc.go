// Package webhook is the way back from carriers: verified intake of their webhooks, translation
// of each carrier's vocabulary into Waybill's canonical statuses, and the act that moves the order,
// writes its history and tells people. Intake → translate → act, each handoff a River job enqueued
// in the transaction that finishes the step before it. It knows carriers only through
// carrier.Source (signature, parsing, vocabulary) and the order's rules through internal/orders.
package webhook
