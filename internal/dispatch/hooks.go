package dispatch

import (
	"context"
	"time"
)

// Hooks let metrics and alarms watch dispatch without dispatch knowing them. Calls must be
// cheap and safe for concurrent use.
type Hooks interface {
	// CarrierRequest counts one carrier call: op is "create", "create_batch", "batch_status",
	// "find" or "find_batch", outcome "ok" or a carrier.ErrorClass string.
	CarrierRequest(carrier, op, outcome string)
	// Dispatched observes one order's insert→dispatched latency.
	Dispatched(createdAt, dispatchedAt time.Time)
	// CarrierAuth records whether the carrier accepted our credentials (alarms on refusal).
	CarrierAuth(ctx context.Context, carrier string, ok bool)
	// BatchStuck reports a carrier batch job that did not finish within StuckAfter.
	BatchStuck(ctx context.Context, carrier string, batchID int64)
}

type nopHooks struct{}

func (nopHooks) CarrierRequest(string, string, string)     {}
func (nopHooks) Dispatched(time.Time, time.Time)           {}
func (nopHooks) CarrierAuth(context.Context, string, bool) {}
func (nopHooks) BatchStuck(context.Context, string, int64) {}

func hooksOrNop(h Hooks) Hooks {
	if h == nil {
		return nopHooks{}
	}
	return h
}
