package sandbox

import (
	"bytes"
	"container/heap"
	"context"
	"crypto/hmac"
	"crypto/sha512"
	"encoding/hex"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Onfleet webhook triggers the sandbox sends.
const (
	TriggerTaskStarted                 = 0
	TriggerTaskCompleted               = 3
	TriggerTaskFailed                  = 4
	TriggerTaskCreated                 = 6
	TriggerTaskAssigned                = 9
	TriggerTaskBatchCreateJobCompleted = 19
)

// triggerNames are Onfleet's trigger ids and names (there is no 11); POST /webhooks accepts
// any of them, the sandbox sends those above.
var triggerNames = map[int]string{
	0: "taskStarted", 1: "taskEta", 2: "taskArrival", 3: "taskCompleted", 4: "taskFailed", 5: "workerDuty",
	6: "taskCreated", 7: "taskUpdated", 8: "taskDeleted", 9: "taskAssigned", 10: "taskUnassigned",
	12: "taskDelayed", 13: "taskCloned", 14: "smsRecipientResponseMissed", 15: "workerCreated",
	16: "workerDeleted", 17: "SMSRecipientOptOut", 18: "autoDispatchJobCompleted", 19: "taskBatchCreateJobCompleted",
}

// failureReasons are what the sandbox's workers give when a task fails. Onfleet reports "NONE"
// for a success; these stand in for its failure reasons.
var failureReasons = []string{"NO_ANSWER", "WRONG_ADDRESS", "CLOSED", "OTHER"}

// WebhookPayload is Onfleet's webhook body for task triggers.
type WebhookPayload struct {
	TaskID        string         `json:"taskId"`
	Time          int64          `json:"time"`
	TriggerID     int            `json:"triggerId"`
	TriggerName   string         `json:"triggerName"`
	WorkerID      *string        `json:"workerId"`
	AdminID       *string        `json:"adminId"`
	ActionContext *ActionContext `json:"actionContext"`
	Data          WebhookData    `json:"data"`
}

type ActionContext struct {
	ID   string `json:"id"`
	Type string `json:"type"` // ADMIN or WORKER
}

type WebhookData struct {
	Task *Task `json:"task"`
}

// Delivery: Onfleet gives an endpoint 10 s; a non-200 answer is retried.
const (
	webhookTimeout  = 10 * time.Second
	webhookAttempts = 5
	webhookBackoff  = 100 * time.Millisecond
)

// Lifecycle steps of a task; stepTail delivers what is still held after the last event.
const (
	stepCreated = iota
	stepAssigned
	stepStarted
	stepFinished
	stepTail
)

// lifecycle is one task's walk through its webhooks. One goroutine at a time owns it: the
// scheduler while it waits in the heap, then a worker while it runs a step. A lone event (a
// batch job's completion) is a lifecycle at stepTail holding that event.
type lifecycle struct {
	taskID  string
	step    int
	due     time.Time
	later   []event // events to deliver after the next step's own event
	holding bool    // the previous step's event is in later (reordered)
}

// event is one webhook body and the trigger it is about, which picks its destinations.
type event struct {
	trigger int
	body    []byte
}

// webhookSender runs every task's lifecycle: a scheduler goroutine keeps lifecycles in a heap
// by due time and hands due ones to a fixed pool of workers, so thousands of tasks cost one
// heap entry each, not a goroutine. Each event goes to the command line's webhook URL (every
// trigger) and to the enabled webhooks registered for its trigger.
type webhookSender struct {
	s      *Server
	url    string // from the command line; may be empty
	secret []byte
	step   time.Duration
	client *http.Client
	counts webhookCounts

	mu    sync.Mutex
	queue lifecycleHeap
	wake  chan struct{}
	work  chan *lifecycle

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newWebhookSender(s *Server, opts Options) *webhookSender {
	secret := s.secret
	workers := opts.WebhookWorkers
	if workers == 0 {
		workers = DefaultWebhookWorkers
	}
	step := opts.WebhookStep
	if step == 0 {
		step = DefaultWebhookStep
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = workers
	ws := &webhookSender{
		s: s, url: opts.WebhookURL, secret: secret, step: step,
		client: &http.Client{Transport: t, Timeout: webhookTimeout},
		wake:   make(chan struct{}, 1),
		work:   make(chan *lifecycle),
	}
	ws.ctx, ws.cancel = context.WithCancel(context.Background())
	ws.wg.Add(1 + workers)
	go ws.schedule()
	for range workers {
		go ws.runWorker()
	}
	return ws
}

func (ws *webhookSender) close() {
	ws.cancel()
	ws.wg.Wait()
	ws.client.CloseIdleConnections()
}

// start begins a new task's lifecycle with its taskCreated event.
func (ws *webhookSender) start(taskID string) { ws.startAt(taskID, stepCreated) }

// startAt begins a new task's lifecycle at step: stepAssigned for a task created by a batch,
// which has no taskCreated event.
func (ws *webhookSender) startAt(taskID string, step int) {
	ws.counts.inFlight.Add(1)
	ws.push(&lifecycle{taskID: taskID, step: step, due: time.Now().Add(ws.jitter())})
}

// send delivers one event that belongs to no task's lifecycle, as soon as a worker is free.
func (ws *webhookSender) send(ev event) {
	ws.counts.inFlight.Add(1)
	ws.push(&lifecycle{step: stepTail, later: []event{ev}, due: time.Now()})
}

// jitter is one step ±50%.
func (ws *webhookSender) jitter() time.Duration {
	return time.Duration(float64(ws.step) * (0.5 + ws.s.dice.float64()))
}

func (ws *webhookSender) push(lc *lifecycle) {
	ws.mu.Lock()
	heap.Push(&ws.queue, lc)
	ws.mu.Unlock()
	select {
	case ws.wake <- struct{}{}:
	default:
	}
}

// schedule hands each lifecycle to a worker when it is due.
func (ws *webhookSender) schedule() {
	defer ws.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		ws.mu.Lock()
		var due *lifecycle
		wait := time.Duration(-1)
		if len(ws.queue) > 0 {
			if d := time.Until(ws.queue[0].due); d <= 0 {
				due = heap.Pop(&ws.queue).(*lifecycle)
			} else {
				wait = d
			}
		}
		ws.mu.Unlock()

		if due != nil {
			select {
			case ws.work <- due:
			case <-ws.ctx.Done():
				return
			}
			continue
		}
		if wait >= 0 {
			timer.Reset(wait)
		}
		select {
		case <-timer.C:
		case <-ws.wake:
		case <-ws.ctx.Done():
			return
		}
	}
}

func (ws *webhookSender) runWorker() {
	defer ws.wg.Done()
	for {
		select {
		case lc := <-ws.work:
			ws.run(lc)
		case <-ws.ctx.Done():
			return
		}
	}
}

// run performs one step: it moves the task on, delivers the step's event and whatever was held
// behind it, in order, and schedules the next step.
func (ws *webhookSender) run(lc *lifecycle) {
	f := ws.s.faults.Load()
	held := lc.later
	lc.later = nil
	var batch []event

	if lc.step < stepTail {
		ev, ok := ws.advance(lc.taskID, lc.step, f.WebhookFailureRate)
		if !ok {
			ws.counts.inFlight.Add(-1) // the task is gone
			return
		}
		// Reordering swaps two consecutive events: this one goes out after the next. Never the
		// last event (there is no next) and never two swaps in a row.
		if lc.step < stepFinished && !lc.holding && ws.s.dice.hit(f.WebhookReorderRate) {
			ws.counts.reordered.Add(1)
			lc.later = append(lc.later, ev)
			lc.holding = true
		} else {
			batch = append(batch, ev)
			lc.holding = false
		}
		if ws.s.dice.hit(f.WebhookDuplicateRate) {
			ws.counts.duplicated.Add(1)
			lc.later = append(lc.later, ev)
		}
	}
	batch = append(batch, held...)
	for _, ev := range batch {
		if !ws.deliver(ev) && ws.ctx.Err() != nil {
			return
		}
	}

	if lc.step >= stepFinished && len(lc.later) == 0 {
		ws.counts.inFlight.Add(-1)
		return
	}
	lc.step++
	lc.due = time.Now().Add(ws.jitter())
	ws.push(lc)
}

// advance applies step to the stored task and returns its event.
func (ws *webhookSender) advance(taskID string, step int, failureRate float64) (event, bool) {
	s := ws.s
	now := time.Now().UnixMilli()
	trigger := TriggerTaskCreated
	worker, admin := &s.worker, &s.admin
	actor := &ActionContext{ID: s.admin, Type: "ADMIN"}
	change := func(*Task) {}

	switch step {
	case stepCreated:
		worker = nil
	case stepAssigned:
		trigger = TriggerTaskAssigned
		change = func(t *Task) {
			t.State = StateAssigned
			t.Worker = &s.worker
			t.Container = Container{Type: "WORKER", Worker: s.worker}
		}
	case stepStarted:
		trigger, admin = TriggerTaskStarted, nil
		actor = &ActionContext{ID: s.worker, Type: "WORKER"}
		change = func(t *Task) {
			t.State = StateActive
			t.CompletionDetails.Events = append(slices.Clip(t.CompletionDetails.Events), CompletionEvent{Name: "start", Time: now})
		}
	case stepFinished:
		trigger, admin = TriggerTaskCompleted, nil
		actor = &ActionContext{ID: s.worker, Type: "WORKER"}
		failed := s.dice.hit(failureRate)
		reason := "NONE"
		if failed {
			ws.counts.failures.Add(1)
			reason = failureReasons[s.dice.uint64()%uint64(len(failureReasons))]
			// Onfleet reports a failure either way; receivers must handle both.
			if s.dice.hit(0.5) {
				trigger = TriggerTaskFailed
			}
		}
		change = func(t *Task) {
			t.State = StateCompleted
			d := &t.CompletionDetails
			d.Success = !failed
			d.Time = &now
			d.FailureReason = reason
			d.Events = append(slices.Clip(d.Events), CompletionEvent{Name: "arrival", Time: now, Location: t.Destination.Location})
			if failed {
				d.FailureNotes = "Sandbox: the delivery attempt failed."
			} else {
				d.Notes = "Sandbox: delivered."
			}
		}
	}

	t, ok := s.store.update(taskID, func(t *Task) {
		change(t)
		t.TimeLastModified = now
	})
	if !ok {
		return event{}, false
	}
	return event{trigger: trigger, body: mustJSON(WebhookPayload{
		TaskID: taskID, Time: now, TriggerID: trigger, TriggerName: triggerNames[trigger],
		WorkerID: worker, AdminID: admin, ActionContext: actor, Data: WebhookData{Task: t},
	})}, true
}

// deliver sends one event to each of its destinations, signed, unless webhooks are switched
// off. It reports false when a delivery was given up.
func (ws *webhookSender) deliver(ev event) bool {
	f := ws.s.faults.Load()
	if f.WebhooksOff {
		ws.counts.suppressed.Add(1)
		return true
	}
	signature := sign(ws.secret, ev.body)
	if ws.s.dice.hit(f.WebhookBadSignatureRate) {
		ws.counts.badSignature.Add(1)
		signature = sign(append([]byte("not the secret:"), ws.secret...), ev.body)
	}
	if ev.trigger == TriggerTaskBatchCreateJobCompleted {
		ws.counts.batchCompleted.Add(1)
	}
	ok := true
	if ws.url != "" {
		ok = ws.deliverTo(ws.url, "", ev.body, signature) && ok
	}
	for _, h := range ws.s.webhooks.matching(ev.trigger) {
		ok = ws.deliverTo(h.URL, h.ID, ev.body, signature) && ok
	}
	return ok
}

// deliverTo posts one signed event to one URL, retrying with backoff until it is answered 200.
// hookID names the registered webhook the URL belongs to, "" for the command line's.
func (ws *webhookSender) deliverTo(url, hookID string, body []byte, signature string) bool {
	backoff := webhookBackoff
	for attempt := 1; ; attempt++ {
		ok := ws.post(url, body, signature)
		if hookID != "" {
			ws.s.webhooks.record(hookID, ok)
		}
		if ok {
			ws.counts.sent.Add(1)
			return true
		}
		ws.counts.failedAttempts.Add(1)
		if attempt == webhookAttempts {
			ws.counts.dropped.Add(1)
			return false
		}
		select {
		case <-time.After(backoff):
		case <-ws.ctx.Done():
			return false
		}
		backoff *= 2
	}
}

// sign is Onfleet's X-Onfleet-Signature: lowercase hex HMAC-SHA512 of the raw body, keyed with
// the hex-decoded secret.
func sign(secret, body []byte) string {
	mac := hmac.New(sha512.New, secret)
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

func (ws *webhookSender) post(url string, body []byte, signature string) bool {
	req, err := http.NewRequestWithContext(ws.ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Onfleet-Signature", signature)
	resp, err := ws.client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// lifecycleHeap orders lifecycles by due time.
type lifecycleHeap []*lifecycle

func (h lifecycleHeap) Len() int           { return len(h) }
func (h lifecycleHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h lifecycleHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *lifecycleHeap) Push(x any)        { *h = append(*h, x.(*lifecycle)) }

func (h *lifecycleHeap) Pop() any {
	old := *h
	n := len(old)
	lc := old[n-1]
	old[n-1] = nil
	*h = old[:n-1]
	return lc
}
