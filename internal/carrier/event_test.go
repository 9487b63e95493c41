package carrier

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/orders"
)

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
