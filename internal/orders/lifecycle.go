package orders

import (
	"time"
)

// The order lifecycle: which status a carrier event may move an order to.
//
// Carriers deliver events more than once and out of order, so an event only moves an order
// forward in time: one that happened before the event that set the current status is history,
// not news. Within that rule the newest event wins, even when it goes back along the happy path,
// because carriers really do that: Onfleet's taskUnassigned takes an assigned (or started) task
// back to dispatched, and a reassignment follows.
//
// Final statuses (delivered, picked_up, returned, cancelled, rejected) never change again: no
// carrier we integrate reopens a completed, deleted or refused task (Onfleet retries a delivery
// by cloning the task, which is a new task). failed_attempt and exception are not final: a
// carrier may attempt again, and a newer assignment, start or delivery follows them.

// terminal lists the final statuses.
var terminal = map[Status]bool{
	StatusDelivered: true,
	StatusPickedUp:  true,
	StatusReturned:  true,
	StatusCancelled: true,
	StatusRejected:  true,
}

// stage orders statuses along the lifecycle. It only breaks ties between events with the same
// time (carriers stamp milliseconds): the later stage wins.
var stage = map[Status]int{
	StatusPending:       0,
	StatusDispatched:    1,
	StatusAssigned:      2,
	StatusInTransit:     3,
	StatusFailedAttempt: 4,
	StatusException:     4,
	StatusDelivered:     5,
	StatusPickedUp:      5,
	StatusReturned:      5,
	StatusCancelled:     5,
	StatusRejected:      5,
}

// Terminal reports whether s is final: no event changes it again.
func (s Status) Terminal() bool { return terminal[s] }

// Known reports whether s is one of Waybill's canonical statuses.
func (s Status) Known() bool {
	_, ok := stage[s]
	return ok
}

// Advance decides an order's status after an event that means next, at nextAt. cur is the
// order's status and curAt the time of the event that set it; nil when no carrier event did
// (a new order, or a status Waybill set on its own clock, which must not be compared with a
// carrier's). It returns the new status and whether it changed. An event that does not change
// the status still belongs in the order's history.
func Advance(cur Status, curAt *time.Time, next Status, nextAt time.Time) (Status, bool) {
	switch {
	case next == cur, !next.Known(), next == StatusPending:
		return cur, false
	case cur.Terminal():
		return cur, false
	case curAt == nil:
		return next, true
	case nextAt.Before(*curAt):
		return cur, false // late: it happened before what we already know
	case nextAt.Equal(*curAt) && stage[next] <= stage[cur]:
		return cur, false
	}
	return next, true
}

// EventStatus is what a carrier event that means s means for an order of kind k. A completion
// the carrier marks as failed is a failed attempt; a pickup completed is picked_up, since a
// carrier with one word for "done" (Onfleet's taskCompleted, a configured carrier's) completes a
// pickup as delivered.
func EventStatus(s Status, k Kind, failed bool) Status {
	switch {
	case failed && (s == StatusDelivered || s == StatusPickedUp):
		return StatusFailedAttempt
	case k == KindPickup && s == StatusDelivered:
		return StatusPickedUp
	}
	return s
}

// problems are the logistics problems: the logistics team is emailed when an order gets one.
var problems = map[Status]bool{
	StatusFailedAttempt: true,
	StatusReturned:      true,
	StatusCancelled:     true,
	StatusException:     true,
}

// Problem reports whether s is a logistics problem (failed_attempt, returned, cancelled,
// exception): the logistics team is told.
func (s Status) Problem() bool { return problems[s] }

// HasReason reports whether an order at s keeps the carrier's reason in status_reason: the
// problems, and a carrier's refusal.
func (s Status) HasReason() bool { return problems[s] || s == StatusRejected }

// CarrierTime is the carrier event time behind the order's status, for Advance: nil when Waybill
// set the status on its own clock (pending, or dispatched by dispatch, which stamps status_at and
// dispatched_at with the same now()). A carrier's clock is only compared with a carrier's.
func (o Order) CarrierTime() *time.Time {
	switch {
	case o.Status == StatusPending:
		return nil
	case o.Status == StatusDispatched && o.StatusAt != nil && o.DispatchedAt != nil && o.StatusAt.Equal(*o.DispatchedAt):
		return nil
	}
	return o.StatusAt
}

// DispatchStep is what dispatch does with an order its job asks it to send.
type DispatchStep int

const (
	// DispatchSend: the order has never reached a carrier; send it.
	DispatchSend DispatchStep = iota
	// DispatchDone: a carrier has it (an earlier run, a batch's settlement): end the job.
	DispatchDone
	// DispatchRefused: the carrier refused it (rejected): end the job as a dead letter.
	DispatchRefused
)

// DispatchStep decides whether dispatch sends the order. A task reference means the carrier has
// it, whatever the status says: an order is never sent twice.
func (o Order) DispatchStep() DispatchStep {
	switch {
	case o.CarrierRef != "":
		return DispatchDone
	case o.Status == StatusRejected:
		return DispatchRefused
	}
	return DispatchSend
}
