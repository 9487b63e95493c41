package bench

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/orders"
)

func TestOrderPayloadIsAValidCanonicalPayload(t *testing.T) {
	t.Parallel()

	now := time.Date(2026, 3, 1, 10, 30, 0, 0, time.UTC)
	for _, i := range []int{0, 1, 9999, 123456} {
		var p orders.Payload
		dec := json.NewDecoder(bytes.NewReader(orderPayload(i, now)))
		dec.DisallowUnknownFields()
		require.NoError(t, dec.Decode(&p))
		require.NotEmpty(t, p.Recipient.Name)
		require.Regexp(t, `^\+1415555\d{4}$`, p.Recipient.Phone)
		require.NotEmpty(t, p.Address.Line1)
		require.NotNil(t, p.Window)
		require.True(t, p.Window.After.Before(*p.Window.Before))
		require.Len(t, p.Items, 2)
	}
}

func TestWebhookEventsAreDistinctAndInLifecycleOrder(t *testing.T) {
	t.Parallel()

	targets := []webhookOrder{
		{OrderID: 1, ExternalID: "SO-1", CarrierRef: "task00000000000000000001", TrackingURL: "https://onf.lt/1"},
		{OrderID: 2, ExternalID: "SO-2", CarrierRef: "task00000000000000000002", TrackingURL: "https://onf.lt/2"},
		{OrderID: 3, ExternalID: "SO-3", CarrierRef: "task00000000000000000003", TrackingURL: "https://onf.lt/3"},
	}
	type event struct {
		TaskID      string `json:"taskId"`
		Time        int64  `json:"time"`
		TriggerID   int    `json:"triggerId"`
		TriggerName string `json:"triggerName"`
		Data        struct {
			Task struct {
				ID       string `json:"id"`
				State    int    `json:"state"`
				Metadata []struct {
					Name  string `json:"name"`
					Type  string `json:"type"`
					Value any    `json:"value"`
				} `json:"metadata"`
			} `json:"task"`
		} `json:"data"`
	}
	keys := make(map[string]bool)
	lastStep := make(map[string]int)
	const n = 12
	for e := range n {
		body, err := webhookEventFor(e, targets, 1_700_000_000_000)
		require.NoError(t, err)
		var ev event
		require.NoError(t, json.Unmarshal(body, &ev))
		o := targets[e%len(targets)]
		require.Equal(t, o.CarrierRef, ev.TaskID)
		require.Equal(t, o.CarrierRef, ev.Data.Task.ID)
		require.Equal(t, "waybill_external_id", ev.Data.Task.Metadata[0].Name)
		require.Equal(t, o.ExternalID, ev.Data.Task.Metadata[0].Value)

		key := fmt.Sprintf("%s:%d:%d", ev.TaskID, ev.TriggerID, ev.Time)
		require.False(t, keys[key], "event %d repeats %s", e, key)
		keys[key] = true

		step := -1
		for i, tr := range lifecycle {
			if tr.Name == ev.TriggerName {
				step = i
				require.Equal(t, tr.ID, ev.TriggerID)
				require.Equal(t, tr.State, ev.Data.Task.State)
			}
		}
		require.GreaterOrEqual(t, step, 0)
		if prev, ok := lastStep[ev.TaskID]; ok {
			require.Greater(t, step, prev, "an order's events go forward")
		}
		lastStep[ev.TaskID] = step
	}
	require.Len(t, keys, n)
}

func TestOnfleetSignature(t *testing.T) {
	t.Parallel()

	secretHex := "6f6e666c6565742d62656e63682d736563726574"
	secret, err := hex.DecodeString(secretHex)
	require.NoError(t, err)
	body := []byte(`{"taskId":"abc","time":1,"triggerId":0}`)

	// Independently: the key is the decoded bytes ("onfleet-bench-secret"), not the hex text.
	m := hmac.New(sha512.New, []byte("onfleet-bench-secret"))
	m.Write(body)
	require.Equal(t, hex.EncodeToString(m.Sum(nil)), onfleetSignature(secret, body))
	require.Len(t, onfleetSignature(secret, body), 128)
	require.NotEqual(t, onfleetSignature(secret, body), onfleetSignature([]byte(secretHex), body))
}
