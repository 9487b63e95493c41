package orders

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestAdvance(t *testing.T) {
	t.Parallel()

	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(sec int) *time.Time { v := t0.Add(time.Duration(sec) * time.Second); return &v }

	tests := []struct {
		name   string
		cur    Status
		curAt  *time.Time
		next   Status
		nextAt time.Time
		want   Status
		moved  bool
	}{
		// The happy path, one event after another.
		{"created while pending", StatusPending, nil, StatusDispatched, *at(0), StatusDispatched, true},
		{"assigned", StatusDispatched, at(0), StatusAssigned, *at(10), StatusAssigned, true},
		{"started", StatusAssigned, at(10), StatusInTransit, *at(20), StatusInTransit, true},
		{"delivered", StatusInTransit, at(20), StatusDelivered, *at(30), StatusDelivered, true},
		{"picked up", StatusInTransit, at(20), StatusPickedUp, *at(30), StatusPickedUp, true},

		// Waybill's own dispatched carries no carrier time: any carrier event is newer.
		{"assigned after dispatch on Waybill's clock", StatusDispatched, nil, StatusAssigned, *at(-5), StatusAssigned, true},
		{"carrier event skips stages", StatusPending, nil, StatusDelivered, *at(0), StatusDelivered, true},

		// Repeated events.
		{"repeat of the current status", StatusInTransit, at(20), StatusInTransit, *at(20), StatusInTransit, false},
		{"same status again later", StatusAssigned, at(10), StatusAssigned, *at(50), StatusAssigned, false},
		{"repeated delivery", StatusDelivered, at(30), StatusDelivered, *at(30), StatusDelivered, false},

		// Late and out-of-order events.
		{"late started after delivered", StatusDelivered, at(30), StatusInTransit, *at(20), StatusDelivered, false},
		{"started newer than delivered still cannot reopen", StatusDelivered, at(30), StatusInTransit, *at(40), StatusDelivered, false},
		{"late assigned after started", StatusInTransit, at(20), StatusAssigned, *at(10), StatusInTransit, false},
		{"late created after assigned", StatusAssigned, at(10), StatusDispatched, *at(0), StatusAssigned, false},
		{"late started after failed attempt", StatusFailedAttempt, at(40), StatusInTransit, *at(20), StatusFailedAttempt, false},
		{"delivered arriving before started", StatusAssigned, at(10), StatusDelivered, *at(30), StatusDelivered, true},

		// Unassignment is a real step back, when it is news.
		{"unassigned after assigned", StatusAssigned, at(10), StatusDispatched, *at(15), StatusDispatched, true},
		{"unassigned after started", StatusInTransit, at(20), StatusDispatched, *at(25), StatusDispatched, true},
		{"late unassigned before assigned", StatusAssigned, at(10), StatusDispatched, *at(5), StatusAssigned, false},
		{"reassigned after unassigned", StatusDispatched, at(15), StatusAssigned, *at(16), StatusAssigned, true},

		// Same millisecond: the later stage wins.
		{"tie: started beats assigned", StatusAssigned, at(10), StatusInTransit, *at(10), StatusInTransit, true},
		{"tie: assigned loses to started", StatusInTransit, at(10), StatusAssigned, *at(10), StatusInTransit, false},
		{"tie: failed beats started", StatusInTransit, at(10), StatusFailedAttempt, *at(10), StatusFailedAttempt, true},

		// failed_attempt and exception are not final: the carrier may try again.
		{"retry after failed attempt", StatusFailedAttempt, at(40), StatusAssigned, *at(50), StatusAssigned, true},
		{"delivered after failed attempt", StatusFailedAttempt, at(40), StatusDelivered, *at(60), StatusDelivered, true},
		{"exception then delivered", StatusException, at(40), StatusDelivered, *at(60), StatusDelivered, true},

		// Final statuses stay final.
		{"cancelled stays cancelled", StatusCancelled, at(40), StatusAssigned, *at(60), StatusCancelled, false},
		{"returned stays returned", StatusReturned, at(40), StatusDelivered, *at(60), StatusReturned, false},
		{"rejected stays rejected", StatusRejected, nil, StatusDispatched, *at(60), StatusRejected, false},
		{"picked up stays picked up", StatusPickedUp, at(30), StatusFailedAttempt, *at(60), StatusPickedUp, false},
		{"delivered is not cancelled later", StatusDelivered, at(30), StatusCancelled, *at(60), StatusDelivered, false},

		// Nonsense never moves anything.
		{"unknown status", StatusAssigned, at(10), Status("teleported"), *at(60), StatusAssigned, false},
		{"back to pending", StatusDispatched, at(10), StatusPending, *at(60), StatusDispatched, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, moved := Advance(tt.cur, tt.curAt, tt.next, tt.nextAt)
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.moved, moved)
		})
	}
}

// Whatever order a task's events arrive in, the order ends where the newest event says.
func TestAdvanceConvergesRegardlessOfArrivalOrder(t *testing.T) {
	t.Parallel()

	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	type event struct {
		status Status
		at     time.Time
	}
	history := []event{
		{StatusDispatched, t0},
		{StatusAssigned, t0.Add(time.Minute)},
		{StatusInTransit, t0.Add(2 * time.Minute)},
		{StatusDelivered, t0.Add(3 * time.Minute)},
	}
	// Every permutation, each event also delivered twice.
	var permute func(prefix, rest []event)
	permute = func(prefix, rest []event) {
		if len(rest) == 0 {
			cur, curAt := StatusPending, (*time.Time)(nil)
			for _, e := range append(prefix, prefix...) {
				if next, moved := Advance(cur, curAt, e.status, e.at); moved {
					at := e.at
					cur, curAt = next, &at
				}
			}
			require.Equal(t, StatusDelivered, cur, "arrival order %v", prefix)
			return
		}
		for i := range rest {
			next := append(append([]event{}, rest[:i]...), rest[i+1:]...)
			permute(append(append([]event{}, prefix...), rest[i]), next)
		}
	}
	permute(nil, history)
}

func TestTerminal(t *testing.T) {
	t.Parallel()
	var final []Status
	for _, s := range Statuses {
		require.True(t, s.Known(), s)
		if s.Terminal() {
			final = append(final, s)
		}
	}
	require.ElementsMatch(t, []Status{StatusDelivered, StatusPickedUp, StatusReturned, StatusCancelled, StatusRejected}, final)
}

func TestEventStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		s      Status
		kind   Kind
		failed bool
		want   Status
	}{
		{"delivery completed", StatusDelivered, KindDelivery, false, StatusDelivered},
		{"pickup completed as delivered", StatusDelivered, KindPickup, false, StatusPickedUp},
		{"pickup completed as picked_up", StatusPickedUp, KindPickup, false, StatusPickedUp},
		{"failed completion", StatusDelivered, KindDelivery, true, StatusFailedAttempt},
		{"failed pickup completion", StatusDelivered, KindPickup, true, StatusFailedAttempt},
		{"failed picked_up", StatusPickedUp, KindPickup, true, StatusFailedAttempt},
		{"other statuses of a pickup stay", StatusInTransit, KindPickup, false, StatusInTransit},
		{"failed flag only concerns completions", StatusAssigned, KindDelivery, true, StatusAssigned},
		{"history only", "", KindPickup, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, EventStatus(tt.s, tt.kind, tt.failed))
		})
	}
}

func TestProblemsAndReasons(t *testing.T) {
	t.Parallel()
	tests := []struct {
		s                  Status
		problem, hasReason bool
	}{
		{StatusPending, false, false},
		{StatusDispatched, false, false},
		{StatusAssigned, false, false},
		{StatusInTransit, false, false},
		{StatusDelivered, false, false},
		{StatusPickedUp, false, false},
		{StatusFailedAttempt, true, true},
		{StatusReturned, true, true},
		{StatusCancelled, true, true},
		{StatusException, true, true},
		{StatusRejected, false, true}, // refused by the carrier: not the logistics team's problem
	}
	require.Len(t, tests, len(Statuses), "every status is decided")
	for _, tt := range tests {
		require.Equal(t, tt.problem, tt.s.Problem(), tt.s)
		require.Equal(t, tt.hasReason, tt.s.HasReason(), tt.s)
	}
}

func TestCarrierTime(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	later := t0.Add(time.Minute)
	tests := []struct {
		name string
		o    Order
		want *time.Time
	}{
		{"pending: Waybill's clock", Order{Status: StatusPending, StatusAt: &t0}, nil},
		{"dispatched by dispatch: Waybill's clock", Order{Status: StatusDispatched, StatusAt: &t0, DispatchedAt: &t0}, nil},
		{"dispatched by the carrier (taskUnassigned)", Order{Status: StatusDispatched, StatusAt: &later, DispatchedAt: &t0}, &later},
		{"dispatched, never stamped", Order{Status: StatusDispatched}, nil},
		{"assigned by the carrier", Order{Status: StatusAssigned, StatusAt: &later, DispatchedAt: &t0}, &later},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, tt.o.CarrierTime())
		})
	}
}

func TestDispatchStep(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		order Order
		want  DispatchStep
	}{
		{"pending", Order{Status: StatusPending}, DispatchSend},
		{"at the carrier", Order{Status: StatusDispatched, CarrierRef: "t1"}, DispatchDone},
		{"delivered by webhook before dispatch recorded", Order{Status: StatusDelivered, CarrierRef: "t1"}, DispatchDone},
		{"refused", Order{Status: StatusRejected, StatusReason: "bad address"}, DispatchRefused},
		{"redriven after a refusal (pending again)", Order{Status: StatusPending}, DispatchSend},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.order.DispatchStep())
		})
	}
}
