package orders

import "time"

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
