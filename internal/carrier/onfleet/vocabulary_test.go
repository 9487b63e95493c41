package onfleet

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/carrier"
	"github.com/waybill/waybill/internal/orders"
)

func TestVocabularyTranslate(t *testing.T) {
	t.Parallel()

	task := func(word string) carrier.Event { return carrier.Event{TaskID: "t1", CarrierStatus: word} }
	status := func(s orders.Status) carrier.Translation {
		return carrier.Translation{Outcome: carrier.OutcomeStatus, Status: s}
	}
	with := func(ev carrier.Event, f func(*carrier.Event)) carrier.Event { f(&ev); return ev }

	tests := []struct {
		name string
		ev   carrier.Event
		want carrier.Translation
	}{
		{"taskCreated", task("taskCreated"), status(orders.StatusDispatched)},
		{"taskAssigned", task("taskAssigned"), status(orders.StatusAssigned)},
		{"taskUnassigned", task("taskUnassigned"), status(orders.StatusDispatched)},
		{"taskStarted", task("taskStarted"), status(orders.StatusInTransit)},
		{"taskCompleted", task("taskCompleted"), status(orders.StatusDelivered)},
		{"taskCompleted, pickup", with(task("taskCompleted"), func(e *carrier.Event) { e.IsPickup = true }), status(orders.StatusPickedUp)},
		{"taskCompleted, unsuccessful", with(task("taskCompleted"), func(e *carrier.Event) { e.Failed = true }), status(orders.StatusFailedAttempt)},
		{"taskCompleted, unsuccessful pickup", with(task("taskCompleted"), func(e *carrier.Event) { e.Failed, e.IsPickup = true, true }), status(orders.StatusFailedAttempt)},
		{"taskFailed", task("taskFailed"), status(orders.StatusFailedAttempt)},
		{"taskFailed on a pickup", with(task("taskFailed"), func(e *carrier.Event) { e.IsPickup = true }), status(orders.StatusFailedAttempt)},
		{"taskDeleted", task("taskDeleted"), status(orders.StatusCancelled)},
		{"taskEta", task("taskEta"), carrier.Translation{Outcome: carrier.OutcomeRecord}},
		{"taskArrival", task("taskArrival"), carrier.Translation{Outcome: carrier.OutcomeRecord}},
		{"taskDelayed", task("taskDelayed"), carrier.Translation{Outcome: carrier.OutcomeRecord}},
		{"taskUpdated", task("taskUpdated"), carrier.Translation{Outcome: carrier.OutcomeRecord}},
		{"taskCloned", task("taskCloned"), carrier.Translation{Outcome: carrier.OutcomeIgnore, Detail: "taskCloned is not about a delivery"}},
		{"workerDuty", carrier.Event{CarrierStatus: "workerDuty"}, carrier.Translation{Outcome: carrier.OutcomeIgnore, Detail: "workerDuty is not about a delivery"}},
		{"status word without a task", carrier.Event{CarrierStatus: "taskStarted"}, carrier.Translation{Outcome: carrier.OutcomeIgnore, Detail: "taskStarted is not about a task"}},
		{"unknown word", task("taskTeleported"), carrier.Translation{Outcome: carrier.OutcomeQuarantine, Detail: `unknown carrier status "taskTeleported"`}},
		{"case matters", task("TaskCompleted"), carrier.Translation{Outcome: carrier.OutcomeQuarantine, Detail: `unknown carrier status "TaskCompleted"`}},
		{"unreadable", carrier.Event{Problem: "no time"}, carrier.Translation{Outcome: carrier.OutcomeQuarantine, Detail: "no time"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, Vocabulary.Translate(tt.ev))
		})
	}
}

// Every Onfleet trigger has a meaning, and every status word maps to a real status.
func TestVocabularyCoversTriggers(t *testing.T) {
	t.Parallel()
	for id, name := range Triggers {
		m, ok := Vocabulary[name]
		require.True(t, ok, "trigger %d %s", id, name)
		if m.Outcome == carrier.OutcomeStatus {
			require.True(t, m.Status.Known(), name)
		}
	}
}
