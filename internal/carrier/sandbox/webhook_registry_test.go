package sandbox

import (
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func (b *testBundle) registerWebhook(t *testing.T, body string) Webhook {
	t.Helper()
	status, _, raw := b.do(t, http.MethodPost, "/api/v2/webhooks", apiKey, body)
	require.Equal(t, http.StatusOK, status, string(raw))
	var fields map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(raw, &fields))
	for _, k := range []string{"id", "name", "url", "trigger", "isEnabled", "count"} {
		require.Contains(t, fields, k)
	}
	var h Webhook
	require.NoError(t, json.Unmarshal(raw, &h))
	require.Len(t, h.ID, 24)
	return h
}

func (b *testBundle) listWebhooks(t *testing.T) []Webhook {
	t.Helper()
	status, _, raw := b.do(t, http.MethodGet, "/api/v2/webhooks", apiKey, "")
	require.Equal(t, http.StatusOK, status, string(raw))
	var hooks []Webhook
	require.NoError(t, json.Unmarshal(raw, &hooks))
	return hooks
}

func TestRegisteredWebhooks(t *testing.T) {
	t.Parallel()
	rcAll, allURL := newReceiver(t, false)
	rcAssigned, assignedURL := newReceiver(t, false)
	b := setup(t, hookOptions(allURL), 0) // the command line's URL gets every trigger, as before

	h := b.registerWebhook(t, `{"url":"`+assignedURL+`","name":"assigned","trigger":9}`)
	require.Equal(t, Webhook{ID: h.ID, Name: "assigned", URL: assignedURL, Trigger: TriggerTaskAssigned, IsEnabled: true}, h)

	// Refused registrations.
	wrongCheck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/404" {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, "not the check value")
	}))
	t.Cleanup(wrongCheck.Close)
	for name, tc := range map[string]struct {
		body  string
		error int
	}{
		"duplicate":        {`{"url":"` + assignedURL + `","name":"again","trigger":9}`, 1004},
		"no such trigger":  {`{"url":"` + assignedURL + `","name":"x","trigger":11}`, 1000},
		"no url":           {`{"name":"x","trigger":9}`, 1000},
		"not a url":        {`{"url":"ftp://x","name":"x","trigger":9}`, 1000},
		"check not echoed": {`{"url":"` + wrongCheck.URL + `","name":"x","trigger":9}`, 1008},
		"check 404":        {`{"url":"` + wrongCheck.URL + `/404","name":"x","trigger":9}`, 1008},
	} {
		status, _, raw := b.do(t, http.MethodPost, "/webhooks", apiKey, tc.body)
		require.Equal(t, http.StatusBadRequest, status, name)
		require.Equal(t, tc.error, decodeError(t, raw).Message.Error, name)
	}
	require.Equal(t, []Webhook{h}, b.listWebhooks(t))

	ids := createTasks(t, b, 2)
	waitFor(t, b, rcAll, ids, 4)
	for _, id := range ids {
		require.Equal(t, []int{TriggerTaskAssigned}, rcAssigned.triggers(id), "one trigger per registered webhook")
	}
	require.EqualValues(t, 2, b.listWebhooks(t)[0].Count)

	// Disabled, it receives nothing more.
	status, _, raw := b.do(t, http.MethodPut, "/api/v2/webhooks/"+url.PathEscape(h.ID), apiKey, `{"isEnabled":false}`)
	require.Equal(t, http.StatusOK, status, string(raw))
	var updated Webhook
	require.NoError(t, json.Unmarshal(raw, &updated))
	require.False(t, updated.IsEnabled)
	require.Equal(t, h.URL, updated.URL)
	more := createTasks(t, b, 1)
	waitFor(t, b, rcAll, more, 4)
	require.Empty(t, rcAssigned.triggers(more[0]))
	require.False(t, b.listWebhooks(t)[0].IsEnabled)

	status, _, raw = b.do(t, http.MethodDelete, "/api/v2/webhooks/"+url.PathEscape(h.ID), apiKey, "")
	require.Equal(t, http.StatusOK, status)
	require.Empty(t, raw)
	require.Empty(t, b.listWebhooks(t))
	for _, method := range []string{http.MethodDelete, http.MethodPut} {
		status, _, raw = b.do(t, method, "/webhooks/"+url.PathEscape(h.ID), apiKey, `{}`)
		require.Equal(t, http.StatusNotFound, status, method)
		require.Equal(t, "ResourceNotFound", decodeError(t, raw).Code)
	}
}

// TestWebhookRegistrationStartsLifecycles: without a webhook URL tasks stay as created until a
// webhook is registered; from then on new tasks walk their lifecycle.
func TestWebhookRegistrationStartsLifecycles(t *testing.T) {
	t.Parallel()
	rc, hookURL := newReceiver(t, false)
	b := setup(t, Options{WebhookSecret: webhookSecret, WebhookStep: 10 * time.Millisecond, Seed: 3}, 0)
	before := createTasks(t, b, 1)
	require.Nil(t, b.sandbox.hooks.Load())

	b.registerWebhook(t, `{"url":"`+hookURL+`","name":"done","trigger":3}`)
	after, err := b.client.CreateTask(t.Context(), order("SO-after"))
	require.NoError(t, err)
	waitFor(t, b, rc, []string{after.ID}, 1)
	require.Equal(t, []int{TriggerTaskCompleted}, rc.triggers(after.ID))
	task, ok := b.sandbox.store.get(before[0])
	require.True(t, ok)
	require.Equal(t, StateUnassigned, task.State)

	var secret map[string]string
	require.Equal(t, http.StatusOK, b.get(t, "/sandbox/webhook-secret", &secret))
	require.Equal(t, webhookSecret, secret["secret"])
}

func TestWebhooksOff(t *testing.T) {
	t.Parallel()
	rc, hookURL := newReceiver(t, false)
	opts := hookOptions(hookURL)
	opts.WebhooksOff = true
	b := setup(t, opts, 0)

	ids := createTasks(t, b, 3)
	require.Eventually(t, func() bool { return b.sandbox.Stats().Webhooks.InFlight == 0 }, 10*time.Second, 5*time.Millisecond)
	for _, id := range ids {
		require.Empty(t, rc.triggers(id))
		task, ok := b.sandbox.store.get(id)
		require.True(t, ok)
		require.Equal(t, StateCompleted, task.State, "tasks move on; only the webhooks are silent")
	}
	st := b.sandbox.Stats().Webhooks
	require.EqualValues(t, 12, st.Suppressed)
	require.Zero(t, st.Sent)

	b.setFaults(t, `{"webhooks-off": false}`)
	more := createTasks(t, b, 1)
	waitFor(t, b, rc, more, 4)
}

func TestWebhookBadSignature(t *testing.T) {
	t.Parallel()
	key, err := hex.DecodeString(webhookSecret)
	require.NoError(t, err)
	var mu sync.Mutex
	var good, bad int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get("X-Onfleet-Signature") == sign(key, body) {
			good++
		} else {
			bad++
		}
	}))
	t.Cleanup(srv.Close)
	opts := hookOptions(srv.URL)
	opts.WebhookBadSignatureRate = 1
	b := setup(t, opts, 0)
	createTasks(t, b, 2)
	require.Eventually(t, func() bool { return b.sandbox.Stats().Webhooks.Sent == 8 }, 10*time.Second, 5*time.Millisecond)
	mu.Lock()
	require.Equal(t, 0, good)
	require.Equal(t, 8, bad)
	mu.Unlock()
	require.EqualValues(t, 8, b.sandbox.Stats().Webhooks.BadSignature)
}
