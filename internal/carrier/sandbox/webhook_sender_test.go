package sandbox

import (
	"crypto/hmac"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const webhookSecret = "0123456789abcdef0123456789abcdef"

// TestSignVector checks the signature against a value computed outside Go:
// printf '%s' "$body" | openssl dgst -sha512 -mac HMAC -macopt hexkey:$secret
func TestSignVector(t *testing.T) {
	t.Parallel()
	secret, err := hex.DecodeString(webhookSecret)
	require.NoError(t, err)
	require.Equal(t,
		"33e76382d853f68a123221abfb692a405f87e314172a088199283c88f7d9a8a2c786ce702375bd34194e5c33c7488ff9fab275ce4aa02b157de13b1e86d53375",
		sign(secret, []byte(`{"taskId":"kc8SS1tzuZ~jqjlebKGrUmpe","triggerId":6}`)))
}

// receiver is a webhook endpoint that verifies every signature on its own and records events
// per task in arrival order.
type receiver struct {
	t      *testing.T
	mu     sync.Mutex
	events map[string][]WebhookPayload
	raws   map[string][]json.RawMessage // the same events as sent
	bodies map[string]int               // times each body was answered 200
	// failFirst answers 500 to the first delivery of each distinct body.
	failFirst bool
	seen      map[string]bool
}

func newReceiver(t *testing.T, failFirst bool) (*receiver, string) {
	rc := &receiver{t: t, events: map[string][]WebhookPayload{}, raws: map[string][]json.RawMessage{},
		bodies: map[string]int{}, seen: map[string]bool{}, failFirst: failFirst}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	return rc, srv.URL + "/webhooks/onfleet"
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet { // Onfleet's validation of a webhook URL being registered
		_, _ = io.WriteString(w, r.URL.Query().Get("check"))
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	key, _ := hex.DecodeString(webhookSecret)
	mac := hmac.New(sha512.New, key)
	mac.Write(body)
	want := hex.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(want), []byte(r.Header.Get("X-Onfleet-Signature"))) {
		rc.t.Errorf("bad signature %q for %s", r.Header.Get("X-Onfleet-Signature"), body)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var p WebhookPayload
	if err := json.Unmarshal(body, &p); err != nil {
		rc.t.Errorf("undecodable webhook: %v", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.failFirst && !rc.seen[string(body)] {
		rc.seen[string(body)] = true
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	rc.events[p.TaskID] = append(rc.events[p.TaskID], p)
	rc.raws[p.TaskID] = append(rc.raws[p.TaskID], body)
	rc.bodies[string(body)]++
}

// triggers returns the trigger ids received for a task, in arrival order.
func (rc *receiver) triggers(taskID string) []int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []int
	for _, p := range rc.events[taskID] {
		out = append(out, p.TriggerID)
	}
	return out
}

// rawEvents returns the bodies received for a task ("" for events without one), in arrival order.
func (rc *receiver) rawEvents(taskID string) []json.RawMessage {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]json.RawMessage(nil), rc.raws[taskID]...)
}

func (rc *receiver) payloads(taskID string) []WebhookPayload {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]WebhookPayload(nil), rc.events[taskID]...)
}

// createTasks creates n tasks through the adapter and returns their ids.
func createTasks(t *testing.T, b *testBundle, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		task, err := b.client.CreateTask(t.Context(), order(fmt.Sprintf("SO-hook-%d", i)))
		require.NoError(t, err)
		ids[i] = task.ID
	}
	return ids
}

func waitFor(t *testing.T, b *testBundle, rc *receiver, ids []string, perTask int) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, id := range ids {
			if len(rc.triggers(id)) < perTask {
				return false
			}
		}
		return b.sandbox.Stats().Webhooks.InFlight == 0
	}, 20*time.Second, 10*time.Millisecond)
}

// runLifecycles creates tasks on a sandbox that sends webhooks to a verifying receiver, and
// waits until every task has had perTask deliveries and no lifecycle is left.
func runLifecycles(t *testing.T, failFirst bool, change func(*Options), tasks, perTask int) (*testBundle, *receiver, []string) {
	t.Helper()
	rc, url := newReceiver(t, failFirst)
	opts := hookOptions(url)
	change(&opts)
	b := setup(t, opts, 0)
	ids := createTasks(t, b, tasks)
	waitFor(t, b, rc, ids, perTask)
	return b, rc, ids
}

func hookOptions(url string) Options {
	return Options{WebhookURL: url, WebhookSecret: webhookSecret, WebhookStep: 10 * time.Millisecond, WebhookWorkers: 4, Seed: 3}
}

func TestWebhookLifecycle(t *testing.T) {
	t.Parallel()
	b, rc, ids := runLifecycles(t, false, func(*Options) {}, 5, 4)

	for i, id := range ids {
		require.Equal(t, []int{TriggerTaskCreated, TriggerTaskAssigned, TriggerTaskStarted, TriggerTaskCompleted}, rc.triggers(id))
		var last int64
		for step, p := range rc.payloads(id) {
			require.Equal(t, id, p.TaskID)
			require.Equal(t, id, p.Data.Task.ID)
			require.Equal(t, step, p.Data.Task.State, "state follows the lifecycle")
			require.Equal(t, triggerNames[p.TriggerID], p.TriggerName)
			require.GreaterOrEqual(t, p.Time, last)
			last = p.Time
			ext, ok := externalID(p.Data.Task)
			require.True(t, ok)
			require.Equal(t, fmt.Sprintf("SO-hook-%d", i), ext)
			require.NotNil(t, p.ActionContext)
		}
		final := rc.payloads(id)[3].Data.Task
		require.True(t, final.CompletionDetails.Success)
		require.Equal(t, "NONE", final.CompletionDetails.FailureReason)
		require.NotNil(t, final.Worker)

		// GET /tasks/{id} shows the end state too.
		stored, ok := b.sandbox.store.get(id)
		require.True(t, ok)
		require.Equal(t, StateCompleted, stored.State)
	}
	st := b.sandbox.Stats().Webhooks
	require.Equal(t, WebhookStats{Sent: 20}, st)
}

func TestWebhookRawShape(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var first map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		_ = json.NewDecoder(r.Body).Decode(&m)
		mu.Lock()
		if first == nil {
			first = m
		}
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	b := setup(t, hookOptions(srv.URL), 0)
	ids := createTasks(t, b, 1)
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return first != nil }, 10*time.Second, 5*time.Millisecond)

	mu.Lock()
	defer mu.Unlock()
	for _, key := range []string{"taskId", "time", "triggerId", "triggerName", "workerId", "adminId", "actionContext", "data"} {
		require.Contains(t, first, key)
	}
	require.Equal(t, ids[0], first["taskId"])
	require.Equal(t, "taskCreated", first["triggerName"])
	require.Nil(t, first["workerId"])
	require.Equal(t, map[string]any{"id": b.sandbox.admin, "type": "ADMIN"}, first["actionContext"])
	task := first["data"].(map[string]any)["task"].(map[string]any)
	require.Equal(t, ids[0], task["id"])
	require.Contains(t, task, "metadata")
	require.Contains(t, task, "completionDetails")
}

func TestWebhookFailures(t *testing.T) {
	t.Parallel()
	b, rc, ids := runLifecycles(t, false, func(o *Options) { o.WebhookFailureRate = 1 }, 16, 4)

	seen := map[int]bool{}
	for _, id := range ids {
		triggers := rc.triggers(id)
		require.Equal(t, []int{TriggerTaskCreated, TriggerTaskAssigned, TriggerTaskStarted}, triggers[:3])
		last := rc.payloads(id)[3]
		require.Contains(t, []int{TriggerTaskCompleted, TriggerTaskFailed}, last.TriggerID)
		seen[last.TriggerID] = true
		d := last.Data.Task.CompletionDetails
		require.Equal(t, StateCompleted, last.Data.Task.State)
		require.False(t, d.Success)
		require.Contains(t, failureReasons, d.FailureReason)
	}
	require.Len(t, seen, 2, "both failure shapes occur (each task tosses a coin)")
	require.EqualValues(t, 16, b.sandbox.Stats().Webhooks.Failures)
}

func TestWebhookReorder(t *testing.T) {
	t.Parallel()
	b, rc, ids := runLifecycles(t, false, func(o *Options) { o.WebhookReorderRate = 1 }, 3, 4)

	for _, id := range ids {
		// Every pair swapped: assigned before created, completed before started.
		require.Equal(t, []int{TriggerTaskAssigned, TriggerTaskCreated, TriggerTaskCompleted, TriggerTaskStarted}, rc.triggers(id))
		p := rc.payloads(id)
		require.Less(t, p[1].Time, p[0].Time, "event times stay true: created happened first")
		require.Equal(t, StateActive, p[3].Data.Task.State, "a late taskStarted still carries its own state")
	}
	require.EqualValues(t, 6, b.sandbox.Stats().Webhooks.Reordered)
}

func TestWebhookDuplicates(t *testing.T) {
	t.Parallel()
	b, rc, ids := runLifecycles(t, false, func(o *Options) { o.WebhookDuplicateRate = 1 }, 3, 8)

	c, a, s, f := TriggerTaskCreated, TriggerTaskAssigned, TriggerTaskStarted, TriggerTaskCompleted
	for _, id := range ids {
		// Each event again right after the next one: repeats arrive late, as Onfleet's do.
		require.Equal(t, []int{c, a, c, s, a, f, s, f}, rc.triggers(id))
		p := rc.payloads(id)
		require.Equal(t, p[0], p[2], "a duplicate is the same event: same taskId, triggerId and time")
	}
	rc.mu.Lock()
	for body, n := range rc.bodies {
		require.Equal(t, 2, n, body)
	}
	rc.mu.Unlock()
	st := b.sandbox.Stats().Webhooks
	require.EqualValues(t, 12, st.Duplicated)
	require.EqualValues(t, 24, st.Sent)
}

func TestWebhookRetries(t *testing.T) {
	t.Parallel()
	b, rc, ids := runLifecycles(t, true, func(*Options) {}, 3, 4)

	for _, id := range ids {
		require.Equal(t, []int{TriggerTaskCreated, TriggerTaskAssigned, TriggerTaskStarted, TriggerTaskCompleted}, rc.triggers(id))
	}
	require.Equal(t, WebhookStats{Sent: 12, FailedAttempts: 12}, b.sandbox.Stats().Webhooks)
}

func TestWebhookGivesUp(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	attempts := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		attempts++
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent) // Onfleet wants 200, nothing else
	}))
	t.Cleanup(srv.Close)
	b := setup(t, hookOptions(srv.URL), 0)
	createTasks(t, b, 1)
	require.Eventually(t, func() bool {
		return b.sandbox.Stats().Webhooks.Dropped == 4 && b.sandbox.Stats().Webhooks.InFlight == 0
	}, 30*time.Second, 20*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, 4*webhookAttempts, attempts)
}

// TestCloseStopsWebhooks: after Close nothing more is sent (TestMain checks the goroutines end).
func TestCloseStopsWebhooks(t *testing.T) {
	t.Parallel()
	rc, url := newReceiver(t, false)
	opts := hookOptions(url)
	opts.WebhookStep = time.Hour
	b := setup(t, opts, 0)
	ids := createTasks(t, b, 50)
	b.sandbox.Close()
	b.sandbox.Close() // idempotent
	require.Empty(t, rc.triggers(ids[0]))
	require.EqualValues(t, 50, b.sandbox.Stats().Webhooks.InFlight)
}
