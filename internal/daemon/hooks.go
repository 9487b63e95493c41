package daemon

import (
	"context"
	"time"
)

// hooks connects dispatch to metrics and alarms.
type hooks struct{}

func newHooks() *hooks { return &hooks{} }

func (h *hooks) CarrierRequest(carrier, op, outcome string)               {}
func (h *hooks) Dispatched(createdAt, dispatchedAt time.Time)             {}
func (h *hooks) CarrierAuth(ctx context.Context, carrier string, ok bool) {}
