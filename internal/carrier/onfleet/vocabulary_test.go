package webhook

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/orders"
)

func TestOnfleetVocabularyTranslate(t *testing.T) {
	t.Parallel()

	task := func(word string) Event { return Event{TaskID: "t1", CarrierStatus: word} }
	status := func(s orders.Status) Translation { return Translation{Outcome: OutcomeStatus, Status: s} }
	with := func(ev Event, f func(*Event)) Event { f(&ev); return ev }

	tests := []struct {
		name string
		ev   Event
		want Translation
	}{
		{"taskCreated", task("taskCreated"), status(orders.StatusDispatched)},
		{"taskAssigned", task("taskAssigned"), status(orders.StatusAssigned)},
		{"taskUnassigned", task("taskUnassigned"), status(orders.StatusDispatched)},
		{"taskStarted", task("taskStarted"), status(orders.StatusInTransit)},
		{"taskCompleted", task("taskCompleted"), status(orders.StatusDelivered)},
		{"taskCompleted, pickup", with(task("taskCompleted"), func(e *Event) { e.IsPickup = true }), status(orders.StatusPickedUp)},
		{"taskCompleted, unsuccessful", with(task("taskCompleted"), func(e *Event) { e.Failed = true }), status(orders.StatusFailedAttempt)},
		{"taskCompleted, unsuccessful pickup", with(task("taskCompleted"), func(e *Event) { e.Failed, e.IsPickup = true, true }), status(orders.StatusFailedAttempt)},
		{"taskFailed", task("taskFailed"), status(orders.StatusFailedAttempt)},
		{"taskFailed on a pickup", with(task("taskFailed"), func(e *Event) { e.IsPickup = true }), status(orders.StatusFailedAttempt)},
		{"taskDeleted", task("taskDeleted"), status(orders.StatusCancelled)},
		{"taskEta", task("taskEta"), Translation{Outcome: OutcomeRecord}},
		{"taskArrival", task("taskArrival"), Translation{Outcome: OutcomeRecord}},
		{"taskDelayed", task("taskDelayed"), Translation{Outcome: OutcomeRecord}},
		{"taskUpdated", task("taskUpdated"), Translation{Outcome: OutcomeRecord}},
		{"taskCloned", task("taskCloned"), Translation{Outcome: OutcomeIgnore, Detail: "taskCloned is not about a delivery"}},
		{"workerDuty", Event{CarrierStatus: "workerDuty"}, Translation{Outcome: OutcomeIgnore, Detail: "workerDuty is not about a delivery"}},
		{"status word without a task", Event{CarrierStatus: "taskStarted"}, Translation{Outcome: OutcomeIgnore, Detail: "taskStarted is not about a task"}},
		{"unknown word", task("taskTeleported"), Translation{Outcome: OutcomeQuarantine, Detail: `unknown carrier status "taskTeleported"`}},
		{"case matters", task("TaskCompleted"), Translation{Outcome: OutcomeQuarantine, Detail: `unknown carrier status "TaskCompleted"`}},
		{"unreadable", Event{Problem: "no time"}, Translation{Outcome: OutcomeQuarantine, Detail: "no time"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, OnfleetVocabulary.Translate(tt.ev))
		})
	}
}

// Every Onfleet trigger has a meaning, and every status word maps to a real status.
func TestOnfleetVocabularyCoversTriggers(t *testing.T) {
	t.Parallel()
	for id, name := range OnfleetTriggers {
		m, ok := OnfleetVocabulary[name]
		require.True(t, ok, "trigger %d %s", id, name)
		if m.Outcome == OutcomeStatus {
			require.True(t, m.Status.Known(), name)
		}
	}
}

// A carrier declared in configuration brings its vocabulary as words.
func TestParseVocabulary(t *testing.T) {
	t.Parallel()

	v, err := ParseVocabulary(map[string]string{
		"created":    "dispatched",
		"driver_set": "assigned",
		"on_way":     "in_transit",
		"complete":   "delivered",
		"failed":     "failed_attempt",
		"rts":        "returned",
		"eta":        "record",
		"ping":       "ignore",
	})
	require.NoError(t, err)
	require.Equal(t, Translation{Outcome: OutcomeStatus, Status: orders.StatusDelivered}, v.Translate(Event{TaskID: "x", CarrierStatus: "complete"}))
	require.Equal(t, Translation{Outcome: OutcomeStatus, Status: orders.StatusPickedUp}, v.Translate(Event{TaskID: "x", CarrierStatus: "complete", IsPickup: true}))
	require.Equal(t, Translation{Outcome: OutcomeStatus, Status: orders.StatusReturned}, v.Translate(Event{TaskID: "x", CarrierStatus: "rts"}))
	require.Equal(t, OutcomeRecord, v.Translate(Event{TaskID: "x", CarrierStatus: "eta"}).Outcome)
	require.Equal(t, OutcomeIgnore, v.Translate(Event{TaskID: "x", CarrierStatus: "ping"}).Outcome)
	require.Equal(t, OutcomeQuarantine, v.Translate(Event{TaskID: "x", CarrierStatus: "lost"}).Outcome)

	_, err = ParseVocabulary(map[string]string{"complete": "done", "new": "pending", "": "delivered"})
	require.ErrorContains(t, err, `"complete": "done" is not a status Waybill knows`)
	require.ErrorContains(t, err, `"new": "pending"`)
	require.ErrorContains(t, err, "empty carrier status")
}
