package reconcile

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/carrier"
	"github.com/waybill/waybill/internal/carrier/onfleet"
	"github.com/waybill/waybill/internal/orders"
)

func TestOnfleetSteps(t *testing.T) {
	t.Parallel()
	const (
		created    = `"timeCreated":1000`
		assigned   = `"id":"T1","state":1,"worker":"W",` + created + `,"timeLastModified":2000`
		active     = `"id":"T1","state":2,"worker":"W",` + created + `,"timeLastModified":3000,"completionDetails":{"events":[{"name":"start","time":3000}]}`
		done       = `"id":"T1","state":3,"worker":"W",` + created + `,"timeLastModified":4000,"completionDetails":{"success":true,"time":4000,"events":[{"name":"start","time":3000},{"name":"arrival","time":4000}]}`
		failed     = `"id":"T1","state":3,"worker":"W",` + created + `,"timeLastModified":4000,"completionDetails":{"success":false,"failureReason":"NO_ANSWER","time":4000,"events":[{"name":"start","time":3000}]}`
		adminDone  = `"id":"T1","state":3,` + created + `,"timeLastModified":4000,"completionDetails":{"success":true,"time":4000,"events":[]}`
		unassigned = `"id":"T1","state":0,` + created + `,"timeLastModified":5000`
	)
	tests := []struct {
		name     string
		task     string
		cur      orders.Status
		keys     []string
		statuses []orders.Status
	}{
		{"assigned, order dispatched", assigned, orders.StatusDispatched, []string{"poll:T1:9:2000"}, []orders.Status{orders.StatusAssigned}},
		{"assigned, order assigned", assigned, orders.StatusAssigned, nil, nil},
		{"started, order dispatched", active, orders.StatusDispatched, []string{"poll-inferred:T1:9:3000", "poll:T1:0:3000"},
			[]orders.Status{orders.StatusAssigned, orders.StatusInTransit}},
		{"started, order assigned", active, orders.StatusAssigned, []string{"poll:T1:0:3000"}, []orders.Status{orders.StatusInTransit}},
		{"started, order in transit", active, orders.StatusInTransit, nil, nil},
		{"completed, order dispatched", done, orders.StatusDispatched, []string{"poll-inferred:T1:9:3000", "poll:T1:0:3000", "poll:T1:3:4000"},
			[]orders.Status{orders.StatusAssigned, orders.StatusInTransit, orders.StatusDelivered}},
		{"completed, order in transit", done, orders.StatusInTransit, []string{"poll:T1:3:4000"}, []orders.Status{orders.StatusDelivered}},
		{"failed, order assigned", failed, orders.StatusAssigned, []string{"poll:T1:0:3000", "poll:T1:4:4000"},
			[]orders.Status{orders.StatusInTransit, orders.StatusFailedAttempt}},
		{"completed by an admin, never started", adminDone, orders.StatusDispatched, []string{"poll-inferred:T1:9:4000", "poll:T1:3:4000"},
			[]orders.Status{orders.StatusAssigned, orders.StatusDelivered}},
		{"unassigned, order assigned", unassigned, orders.StatusAssigned, []string{"poll:T1:10:5000"}, []orders.Status{orders.StatusDispatched}},
		{"unassigned, order dispatched", unassigned, orders.StatusDispatched, nil, nil},
	}
	src, err := onfleet.NewSource(nil)
	require.NoError(t, err)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			steps, _, err := onfleetSteps(json.RawMessage("{"+tt.task+`,"metadata":[{"name":"waybill_external_id","type":"string","value":"SO-1"}]}`), tt.cur)
			require.NoError(t, err)
			var keys []string
			var statuses []orders.Status
			for i, s := range steps {
				keys = append(keys, s.key)
				// What the translate job will read: the same Source and Vocabulary as a webhook.
				ev, err := src.Parse(s.body)
				require.NoError(t, err)
				require.Empty(t, ev.Problem)
				require.Equal(t, "T1", ev.TaskID)
				require.Equal(t, "SO-1", ev.ExternalID)
				tr := src.Vocabulary().Translate(ev)
				require.Equal(t, carrier.OutcomeStatus, tr.Outcome)
				statuses = append(statuses, tr.Status)
				if i < len(steps)-1 {
					require.NotContains(t, string(s.body), "completionDetails", "an earlier step carries no completion")
				}
				if tr.Status == orders.StatusFailedAttempt {
					require.True(t, strings.Contains(ev.Reason, "NO_ANSWER"), ev.Reason)
				}
			}
			require.Equal(t, tt.keys, keys)
			require.Equal(t, tt.statuses, statuses)
		})
	}
	_, _, err = onfleetSteps(json.RawMessage(`{"id":"T1"}`), orders.StatusDispatched)
	require.Error(t, err, "a task without a state is unreadable")
}
