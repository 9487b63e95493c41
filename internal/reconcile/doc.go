// Package reconcile keeps the way back from carriers from going silent. Orders in flight that no
// carrier event has mentioned for WAYBILL_RECONCILE_AFTER are looked up at the carrier, and what
// the carrier says is stored as a synthetic carrier event (waybill.webhook_events, learnt_by
// 'poll') with its translate job: the same translate → act path a webhook takes, so the same
// vocabulary, forward-only rule, history, notifications and callbacks apply, and the history rows
// are marked learnt_by 'poll'. The act job keeps one history row per change whichever of the
// webhook and the poll comes first (webhook/known_changes.go).
//
// Carrier requests go through the carrier's client at ratelimit.Low and ratelimit.Patient: they
// use only what the organisation's shared limit leaves after dispatch, and pause while dispatch
// waits for tokens. The package also checks the carrier's webhook registrations
// (`waybill carriers check|register`, and periodically on the leader).
package reconcile
