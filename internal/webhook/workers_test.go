package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/carrier"
	"github.com/waybill/waybill/internal/carrier/onfleet/onfleettest"
	"github.com/waybill/waybill/internal/dbsqlc"
	"github.com/waybill/waybill/internal/dbtest"
	"github.com/waybill/waybill/internal/migrate"
	"github.com/waybill/waybill/internal/notify"
	"github.com/waybill/waybill/internal/orders"
)

const testPayload = `{"recipient": {"name": "Ada Lovelace", "phone": "+15551234567"},
	"address": {"line1": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB"}}`

// t0 is the test tasks' creation time at Onfleet; events are offsets from it.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// order inserts an order as the monolith does; with taskID it is then marked dispatched as the
// dispatch job does.
func (b *testBundle) order(t *testing.T, externalID string, kind orders.Kind, taskID string) int64 {
	t.Helper()
	ctx := context.Background()
	id, _ := dbtest.InsertOrder(t, b.pool, dbtest.Order{ExternalID: externalID, Kind: string(kind), Payload: testPayload})
	if taskID != "" {
		_, err := dbsqlc.New().OrderMarkDispatchedMany(ctx, b.pool, dbsqlc.OrderMarkDispatchedManyParams{
			Ids: []int64{id}, CarrierRefs: []string{taskID}, TrackingUrls: []string{"https://onf.lt/" + taskID},
		})
		require.NoError(t, err)
	}
	return id
}

// onfleetEvent is a documented Onfleet payload about Waybill's task for externalID, at t0+offset.
func onfleetEvent(t *testing.T, name, taskID, externalID string, offset time.Duration, changes map[string]any) []byte {
	t.Helper()
	c := map[string]any{
		"taskId":             taskID,
		"data.task.id":       taskID,
		"time":               t0.Add(offset).UnixMilli(),
		"data.task.metadata": onfleettest.WaybillMetadata(externalID, 0),
	}
	for k, v := range changes {
		c[k] = v
	}
	return onfleettest.Derive(t, onfleettest.Fixture(t, name), c)
}

// send posts a signed webhook and requires 200.
func (b *testBundle) send(t *testing.T, body []byte) {
	t.Helper()
	rec := b.post(t, "onfleet", body, "")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
}

// waitIdle waits until the translate and act queues have nothing left to run, and requires that
// every job of theirs succeeded the first time.
func (b *testBundle) waitIdle(t *testing.T) {
	t.Helper()
	const busy = `SELECT count(*) FROM waybill.river_job WHERE queue IN ('translate', 'act') AND state IN ('available', 'running', 'pending', 'scheduled')`
	require.Eventually(t, func() bool {
		var n int
		return b.pool.QueryRow(context.Background(), busy).Scan(&n) == nil && n == 0
	}, 30*time.Second, 5*time.Millisecond)
	rows, err := b.pool.Query(context.Background(), `SELECT kind, state::text, errors::text FROM waybill.river_job
		WHERE queue IN ('translate', 'act') AND (state <> 'completed' OR errors IS NOT NULL)`)
	require.NoError(t, err)
	failed, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var kind, state string
		var errs *string
		err := r.Scan(&kind, &state, &errs)
		return fmt.Sprintf("%s %s %v", kind, state, errs), err
	})
	require.NoError(t, err)
	require.Empty(t, failed)
}

type orderState struct {
	Status       orders.Status
	StatusReason *string
	StatusAt     *time.Time
}

func (b *testBundle) orderState(t *testing.T, id int64) orderState {
	t.Helper()
	var s orderState
	require.NoError(t, b.pool.QueryRow(context.Background(),
		`SELECT status, status_reason, status_at FROM waybill.orders WHERE id = $1`, id).Scan(&s.Status, &s.StatusReason, &s.StatusAt))
	return s
}

func (b *testBundle) history(t *testing.T, orderID int64) []dbsqlc.WaybillOrderEvent {
	t.Helper()
	events, err := dbsqlc.New().OrderEventListByOrderID(context.Background(), b.pool, orderID)
	require.NoError(t, err)
	return events
}

// listener LISTENs on the status channel on its own connection.
type listener struct{ conn *pgx.Conn }

func (b *testBundle) listen(t *testing.T) *listener {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), b.dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	_, err = conn.Exec(context.Background(), "LISTEN "+NotifyChannel)
	require.NoError(t, err)
	return &listener{conn: conn}
}

// next is the next status notification; they arrive in commit order. Its payload holds ids and
// statuses, nothing else.
func (l *listener) next(t *testing.T) StatusNotification {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	n, err := l.conn.WaitForNotification(ctx)
	require.NoError(t, err)
	require.Equal(t, NotifyChannel, n.Channel)
	var fields map[string]any
	require.NoError(t, json.Unmarshal([]byte(n.Payload), &fields))
	require.ElementsMatch(t, []string{"order_id", "external_id", "status", "previous_status"}, slices.Collect(maps.Keys(fields)), n.Payload)
	var change StatusNotification
	require.NoError(t, json.Unmarshal([]byte(n.Payload), &change))
	return change
}

// The whole way back: webhooks in, translated, applied forward-only, history written, the
// monolith told by NOTIFY (and callback jobs), the logistics team by an email job.
func TestPipelineLifecycleWithFailedAttempt(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{work: true, callback: true})
	ctx := context.Background()
	const task = "TaskAAAAAAAAAAAAAAAAAAAA"
	id := b.order(t, "SO-1001", orders.KindDelivery, task)
	l := b.listen(t)

	step := func(name string, offset time.Duration, changes map[string]any) {
		t.Helper()
		b.send(t, onfleetEvent(t, name, task, "SO-1001", offset, changes))
		b.waitIdle(t)
	}

	step("task_created", 0, nil) // Waybill already said dispatched: history only
	step("task_assigned", time.Minute, nil)
	change := l.next(t)
	require.Equal(t, StatusNotification{OrderID: id, ExternalID: "SO-1001", Status: "assigned", PreviousStatus: "dispatched"}, change)

	step("task_started", 2*time.Minute, nil)
	require.Equal(t, "in_transit", l.next(t).Status)

	step("task_failed", 3*time.Minute, nil)
	change = l.next(t)
	require.Equal(t, "failed_attempt", change.Status)
	require.Equal(t, "in_transit", change.PreviousStatus)
	s := b.orderState(t, id)
	require.Equal(t, orders.StatusFailedAttempt, s.Status)
	require.Equal(t, "UNABLE_TO_LOCATE: this is a failure note", *s.StatusReason)
	require.True(t, t0.Add(3*time.Minute).Equal(*s.StatusAt))

	email := rivertest.RequireInserted(ctx, t, riverpgxv5.New(b.pool), notify.EmailArgs{}, &rivertest.RequireInsertedOpts{Schema: migrate.Schema, Queue: notify.QueueNotify})
	require.Equal(t, notify.EmailArgs{
		OrderID: id, ExternalID: "SO-1001", Carrier: "onfleet", Status: "failed_attempt", CarrierStatus: "taskFailed",
		Reason:      "UNABLE_TO_LOCATE: this is a failure note",
		Recipient:   "Ada Lovelace, +15551234567",
		Address:     "12 St James's Square, London, SW1Y 4JH, GB",
		TrackingURL: "https://onf.lt/" + task,
		OccurredAt:  t0.Add(3 * time.Minute),
	}, email.Args)

	// A late start (before the failure) and a redelivery of the failure change nothing.
	step("task_started", 150*time.Second, nil)
	b.send(t, onfleetEvent(t, "task_failed", task, "SO-1001", 3*time.Minute, nil))
	b.waitIdle(t)
	require.Equal(t, orders.StatusFailedAttempt, b.orderState(t, id).Status)

	// A retry that succeeds: delivered. The next notification is this one, so the late start
	// told nobody.
	step("task_completed", 10*time.Minute, nil)
	change = l.next(t)
	require.Equal(t, "delivered", change.Status)
	require.Equal(t, "failed_attempt", change.PreviousStatus)
	s = b.orderState(t, id)
	require.Equal(t, orders.StatusDelivered, s.Status)
	require.Nil(t, s.StatusReason, "a stale failure reason is cleared")

	// Delivered is final: a start even newer than the delivery does not reopen it.
	step("task_started", 20*time.Minute, nil)
	step("task_eta", 21*time.Minute, nil)
	require.Equal(t, orders.StatusDelivered, b.orderState(t, id).Status)

	type row struct {
		Status        string
		CarrierStatus string
		Offset        time.Duration
		Applied       bool
	}
	var got []row
	for _, e := range b.history(t, id) {
		r := row{CarrierStatus: e.CarrierStatus, Offset: e.OccurredAt.Sub(t0), Applied: e.Applied}
		if e.Status != nil {
			r.Status = *e.Status
		}
		got = append(got, r)
		require.True(t, e.WebhookEventID.Valid)
	}
	require.Equal(t, []row{
		{"dispatched", "taskCreated", 0, false},
		{"assigned", "taskAssigned", time.Minute, true},
		{"in_transit", "taskStarted", 2 * time.Minute, true},
		{"in_transit", "taskStarted", 150 * time.Second, false},
		{"failed_attempt", "taskFailed", 3 * time.Minute, true},
		{"delivered", "taskCompleted", 10 * time.Minute, true},
		{"in_transit", "taskStarted", 20 * time.Minute, false},
		{"", "taskEta", 21 * time.Minute, false},
	}, got)

	require.Equal(t, 1, b.jobs(t, notify.EmailArgs{}.Kind()), "one email: only the failure is a logistics problem")
	require.Equal(t, 4, b.jobs(t, notify.CallbackArgs{}.Kind()), "one callback per status change")
	require.Equal(t, 8, b.count(t, "SELECT count(*) FROM waybill.webhook_events"))
	require.Equal(t, 1, b.hooks.get("onfleet", ResultDuplicate))
}

// Events delivered in any order, concurrently and each twice, end where the newest says, with
// exactly one history row per distinct event.
func TestPipelineOutOfOrderAndRepeated(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{work: true})
	const task = "TaskBBBBBBBBBBBBBBBBBBBB"
	id := b.order(t, "SO-2002", orders.KindDelivery, task)

	bodies := [][]byte{
		onfleetEvent(t, "task_created", task, "SO-2002", 0, nil),
		onfleetEvent(t, "task_assigned", task, "SO-2002", time.Minute, nil),
		onfleetEvent(t, "task_unassigned", task, "SO-2002", 2*time.Minute, nil),
		onfleetEvent(t, "task_assigned", task, "SO-2002", 3*time.Minute, nil),
		onfleetEvent(t, "task_started", task, "SO-2002", 4*time.Minute, nil),
		onfleetEvent(t, "task_eta", task, "SO-2002", 5*time.Minute, nil),
		onfleetEvent(t, "task_arrival", task, "SO-2002", 6*time.Minute, nil),
		onfleetEvent(t, "task_completed", task, "SO-2002", 7*time.Minute, nil),
	}
	deliveries := append(append([][]byte{}, bodies...), bodies...)
	rand.Shuffle(len(deliveries), func(i, j int) { deliveries[i], deliveries[j] = deliveries[j], deliveries[i] })

	var wg sync.WaitGroup
	codes := make(chan int, len(deliveries))
	for _, body := range deliveries {
		req := b.request(t, "onfleet", body, "")
		wg.Go(func() { codes <- b.serve(req).Code })
	}
	wg.Wait()
	close(codes)
	for code := range codes {
		require.Equal(t, http.StatusOK, code)
	}
	b.waitIdle(t)

	s := b.orderState(t, id)
	require.Equal(t, orders.StatusDelivered, s.Status)
	require.True(t, t0.Add(7*time.Minute).Equal(*s.StatusAt))
	require.Len(t, b.history(t, id), len(bodies))
	require.Equal(t, len(bodies), b.count(t, "SELECT count(*) FROM waybill.webhook_events WHERE translated_at IS NOT NULL"))
	require.Len(t, b.inserted.of(ActArgs{}.Kind()), len(bodies), "one act job per distinct event")
	require.Equal(t, len(bodies), b.hooks.get("onfleet", ResultDuplicate))
	require.Zero(t, b.jobs(t, notify.CallbackArgs{}.Kind()), "no callback URL configured")
}

// A webhook can beat dispatch's commit: the order is found by the external id in the task's
// metadata. A pickup task's completion is picked_up.
func TestPipelinePickupFoundByMetadata(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{work: true})
	const task = "TaskCCCCCCCCCCCCCCCCCCCC"
	id := b.order(t, "RET-7", orders.KindPickup, "") // still pending, no carrier_ref

	b.send(t, onfleetEvent(t, "task_created", task, "RET-7", 0, map[string]any{"data.task.pickupTask": true}))
	b.waitIdle(t)
	require.Equal(t, orders.StatusDispatched, b.orderState(t, id).Status)
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM waybill.webhook_events WHERE order_id = $1 AND outcome = 'status'", id))

	// Now dispatch commits; its own clock does not hide the carrier's next event.
	_, err := dbsqlc.New().OrderMarkDispatchedMany(context.Background(), b.pool, dbsqlc.OrderMarkDispatchedManyParams{
		Ids: []int64{id}, CarrierRefs: []string{task}, TrackingUrls: []string{"https://onf.lt/ret7"},
	})
	require.NoError(t, err)
	b.send(t, onfleetEvent(t, "task_completed", task, "RET-7", time.Minute, map[string]any{"data.task.pickupTask": true}))
	b.waitIdle(t)
	require.Equal(t, orders.StatusPickedUp, b.orderState(t, id).Status)

	// Another task carrying the same external id (a clone, a duplicate) is not this order's.
	b.send(t, onfleetEvent(t, "task_failed", "TaskDDDDDDDDDDDDDDDDDDDD", "RET-7", 2*time.Minute, nil))
	b.waitIdle(t)
	var outcome, detail string
	require.NoError(t, b.pool.QueryRow(context.Background(),
		`SELECT outcome, outcome_detail FROM waybill.webhook_events WHERE event_key LIKE 'TaskDDDD%'`).Scan(&outcome, &detail))
	require.Equal(t, "ignored", outcome)
	require.Contains(t, detail, "not a Waybill order's")
	require.Equal(t, orders.StatusPickedUp, b.orderState(t, id).Status)
	require.Zero(t, b.jobs(t, notify.EmailArgs{}.Kind()))
}

// Dispatch stamps dispatched with its own clock, which may run ahead of the carrier's: the
// first carrier event still moves the order.
func TestPipelineCarrierClockBehindDispatch(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{work: true})
	const task = "TaskEEEEEEEEEEEEEEEEEEEE"
	id := b.order(t, "SO-3003", orders.KindDelivery, task) // status_at = now()

	b.send(t, onfleetEvent(t, "task_assigned", task, "SO-3003", 0, nil)) // t0 is long before now()
	b.waitIdle(t)
	require.Equal(t, orders.StatusAssigned, b.orderState(t, id).Status)
}

func TestPipelineIgnoredRecordedQuarantined(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{work: true})
	ctx := context.Background()
	const task = "TaskFFFFFFFFFFFFFFFFFFFF"
	id := b.order(t, "SO-4004", orders.KindDelivery, task)

	outcomeOf := func(key string) (string, *string, *int64) {
		var outcome string
		var detail *string
		var orderID *int64
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT outcome, outcome_detail, order_id FROM waybill.webhook_events WHERE event_key = $1`, key).
			Scan(&outcome, &detail, &orderID))
		return outcome, detail, orderID
	}

	// Not about a task; a task that is not ours (the documented payload, no metadata).
	duty := onfleettest.Fixture(t, "worker_duty")
	b.send(t, duty)
	b.send(t, onfleettest.Fixture(t, "task_completed"))
	// History only.
	b.send(t, onfleetEvent(t, "task_delayed", task, "SO-4004", time.Minute, nil))
	// A trigger Waybill has no word for, about our task; and a signed body that is JSON but not
	// an Onfleet event.
	b.send(t, onfleetEvent(t, "task_started", task, "SO-4004", 2*time.Minute, map[string]any{"triggerId": 30, "triggerName": "predictedTaskDelay"}))
	junk := []byte(`["not", "an", "event"]`)
	b.send(t, junk)
	b.waitIdle(t)

	outcome, detail, orderID := outcomeOf(carrier.BodyKey(duty))
	require.Equal(t, "ignored", outcome)
	require.Equal(t, "workerDuty is not about a delivery", *detail)
	require.Nil(t, orderID)

	outcome, detail, _ = outcomeOf("kwKafWU5jRmzeOpazE8WE9Ye:3:1686611636796")
	require.Equal(t, "ignored", outcome)
	require.Equal(t, "task kwKafWU5jRmzeOpazE8WE9Ye is not a Waybill order's", *detail)

	outcome, _, orderID = outcomeOf(fmt.Sprintf("%s:12:%d", task, t0.Add(time.Minute).UnixMilli()))
	require.Equal(t, "recorded", outcome)
	require.Equal(t, id, *orderID)

	outcome, detail, orderID = outcomeOf(fmt.Sprintf("%s:30:%d", task, t0.Add(2*time.Minute).UnixMilli()))
	require.Equal(t, "quarantined", outcome)
	require.Equal(t, `unknown carrier status "predictedTaskDelay"`, *detail)
	require.Equal(t, id, *orderID)

	outcome, detail, _ = outcomeOf(carrier.BodyKey(junk))
	require.Equal(t, "quarantined", outcome)
	require.Contains(t, *detail, "not an Onfleet webhook")

	slack := rivertest.RequireManyInserted(ctx, t, riverpgxv5.New(b.pool), []rivertest.ExpectedJob{
		{Args: notify.SlackArgs{}, Opts: &rivertest.RequireInsertedOpts{Schema: migrate.Schema, Queue: notify.QueueNotify}},
		{Args: notify.SlackArgs{}},
	})
	var messages []notify.SlackArgs
	for _, job := range slack {
		var m notify.SlackArgs
		require.NoError(t, json.Unmarshal(job.EncodedArgs, &m))
		require.Equal(t, "alarm", m.Severity)
		messages = append(messages, m)
	}
	require.ElementsMatch(t, []string{"predictedTaskDelay", ""}, []string{messages[0].Fields["carrier_status"], messages[1].Fields["carrier_status"]})
	for _, m := range messages {
		if m.Fields["carrier_status"] == "predictedTaskDelay" {
			require.Equal(t, "SO-4004", m.Fields["external_id"])
			require.Equal(t, task, m.Fields["task_id"])
		}
	}

	// The order did not move; its history has the delay only.
	require.Equal(t, orders.StatusDispatched, b.orderState(t, id).Status)
	history := b.history(t, id)
	require.Len(t, history, 1)
	require.Equal(t, "taskDelayed", history[0].CarrierStatus)
	require.Nil(t, history[0].Status)
	require.False(t, history[0].Applied)
	require.JSONEq(t, `{"trigger_id": 12, "task_short_id": "a79d22fb", "task_state": 2, "delay_seconds": 522.6378813476563}`, string(history[0].Details))
	require.Len(t, b.inserted.of(ActArgs{}.Kind()), 1, "only the delay reached the act queue")
}

// Running a step again (a rescued job, a repeated event) changes nothing.
func TestPipelineStepsAreIdempotent(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{work: true})
	ctx := context.Background()
	const task = "TaskGGGGGGGGGGGGGGGGGGGG"
	id := b.order(t, "SO-5005", orders.KindDelivery, task)

	b.send(t, onfleetEvent(t, "task_deleted", task, "SO-5005", time.Minute, nil))
	b.waitIdle(t)
	s := b.orderState(t, id)
	require.Equal(t, orders.StatusCancelled, s.Status)
	require.Equal(t, "task deleted at Onfleet by ADMIN vjw*RDMKDljKVDve1Vtcplgu", *s.StatusReason)

	var eventID int64
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT id FROM waybill.webhook_events`).Scan(&eventID))
	acts := b.inserted.of(ActArgs{}.Kind())
	require.Len(t, acts, 1)
	var act ActArgs
	require.NoError(t, json.Unmarshal(acts[0], &act))

	// Translate the same stored event again, and act on the same canonical event again.
	_, err := b.client.Insert(ctx, TranslateArgs{WebhookEventID: eventID, Carrier: "onfleet"}, nil)
	require.NoError(t, err)
	_, err = b.client.Insert(ctx, act, nil)
	require.NoError(t, err)
	b.waitIdle(t)

	require.Len(t, b.inserted.of(ActArgs{}.Kind()), 2, "the second translation enqueued nothing (the second is this test's)")
	require.Len(t, b.history(t, id), 1)
	require.Equal(t, 1, b.jobs(t, notify.EmailArgs{}.Kind()), "cancelled by the carrier: one email")
	require.Equal(t, s, b.orderState(t, id))
}

func TestHistoryDetails(t *testing.T) {
	t.Parallel()
	tests := []struct {
		details string
		applied bool
		want    string
	}{
		{`{"trigger_id": 4, "completed_at_ms": 9007199254740993}`, false, `{"trigger_id": 4, "completed_at_ms": 9007199254740993}`},
		{`{"trigger_id": 4}`, true, `{"trigger_id": 4, "previous_status": "in_transit"}`},
		{``, true, `{"previous_status": "in_transit"}`},
		{`null`, true, `{"previous_status": "in_transit"}`},
		{`[1, 2]`, false, `{"carrier_details": [1, 2]}`},
		{`"text"`, true, `{"carrier_details": "text", "previous_status": "in_transit"}`},
		{`{not json`, false, `{}`},
	}
	for _, tt := range tests {
		got, err := historyDetails(json.RawMessage(tt.details), tt.applied, orders.StatusInTransit)
		require.NoError(t, err)
		require.JSONEq(t, tt.want, string(got), tt.details)
	}
	got, err := historyDetails(json.RawMessage(`{"n": 9007199254740993}`), true, orders.StatusInTransit)
	require.NoError(t, err)
	require.Contains(t, string(got), `9007199254740993`, "numbers are kept as written")
}

// Any login may LISTEN: the payload is ids and statuses, never the carrier's words, the
// tracking link or anything about the recipient.
func TestStatusNotificationIsIDsAndStatusOnly(t *testing.T) {
	t.Parallel()
	change := notify.CallbackArgs{OrderID: 1, ExternalID: "SO-1", Carrier: "onfleet", Status: "failed_attempt", PreviousStatus: "in_transit",
		CarrierStatus: "taskFailed", Reason: "Ada Lovelace was not home", TrackingURL: "https://onf.lt/" + strings.Repeat("x", 8000), OccurredAt: t0}
	b, err := statusNotification(change)
	require.NoError(t, err)
	require.JSONEq(t, `{"order_id":1,"external_id":"SO-1","status":"failed_attempt","previous_status":"in_transit"}`, string(b))
}

// A status change whose job carries strings longer than pg_notify takes (a hand-made or redriven
// job) is still told, cut to fit, rather than failing its batch and ending as a dead letter.
func TestStatusNotificationFitsNotify(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("\u0001é", 5000)
	b, err := statusNotification(notify.CallbackArgs{OrderID: 7, ExternalID: long, Status: long, PreviousStatus: long})
	require.NoError(t, err)
	require.Less(t, len(b), maxNotifyPayload)
	var n StatusNotification
	require.NoError(t, json.Unmarshal(b, &n))
	require.Equal(t, int64(7), n.OrderID)
}

// A job that runs alone (before Run, or once it stopped) waits for the pipeline's turn like a
// batch does: two pipeline transactions never run at once.
func TestStepAloneTakesTheTurn(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	s := b.pipeline.act.step
	require.NoError(t, s.takeTurn(context.Background())) // a batch of the other step is running
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := s.alone(ctx, running(1, ActArgs{OrderID: 1}))
	require.ErrorIs(t, err, context.DeadlineExceeded, "the job waited for the turn")
	s.giveTurn()
}

// running wraps args as a job River is running, for calling a step directly.
func running[T river.JobArgs](id int64, args T) stepJob[T] {
	return stepJob[T]{job: &river.Job[T]{JobRow: &rivertype.JobRow{ID: id, State: rivertype.JobStateRunning}, Args: args}}
}

// A batch of act jobs decides each event against the order as the events before it in the batch
// left it: the same history, status and notifications as one transaction per job in that order.
func TestActBatchIsSequential(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{callback: true})
	ctx := context.Background()
	const task = "TaskHHHHHHHHHHHHHHHHHHHH"
	id := b.order(t, "SO-6006", orders.KindDelivery, task)
	l := b.listen(t)

	act := func(key, word string, status orders.Status, offset time.Duration) ActArgs {
		return ActArgs{OrderID: id, Carrier: "onfleet", EventKey: key, CarrierStatus: word, Status: status,
			OccurredAt: t0.Add(offset), Reason: "no one home"}
	}
	jobs := []stepJob[ActArgs]{
		running(1, act("assigned", "taskAssigned", orders.StatusAssigned, time.Minute)),
		running(2, act("started", "taskStarted", orders.StatusInTransit, 3*time.Minute)),
		running(3, act("assigned", "taskAssigned", orders.StatusAssigned, time.Minute)),         // a repeat
		running(4, act("eta", "taskEta", "", 4*time.Minute)),                                    // history only
		running(5, act("unassigned", "taskUnassigned", orders.StatusDispatched, 2*time.Minute)), // late
		running(6, act("failed", "taskFailed", orders.StatusFailedAttempt, 5*time.Minute)),
	}
	for i := range jobs {
		jobs[i].client = b.client
	}
	require.NoError(t, b.pipeline.act.step.inTx(ctx, jobs))

	var changes []string
	for range 3 {
		c := l.next(t)
		changes = append(changes, c.PreviousStatus+"→"+c.Status)
	}
	require.Equal(t, []string{"dispatched→assigned", "assigned→in_transit", "in_transit→failed_attempt"}, changes)
	s := b.orderState(t, id)
	require.Equal(t, orders.StatusFailedAttempt, s.Status)
	require.Equal(t, "no one home", *s.StatusReason)
	require.True(t, t0.Add(5*time.Minute).Equal(*s.StatusAt))

	type row struct {
		Key     string
		Applied bool
	}
	var got []row
	for _, e := range b.history(t, id) {
		got = append(got, row{e.EventKey, e.Applied})
	}
	require.Equal(t, []row{{"assigned", true}, {"unassigned", false}, {"started", true}, {"eta", false}, {"failed", true}}, got)
	require.Len(t, b.inserted.of(notify.CallbackArgs{}.Kind()), 3, "one callback per status change")
	require.Len(t, b.inserted.of(notify.EmailArgs{}.Kind()), 1)

	// The same batch again (a rescued run) changes nothing.
	require.NoError(t, b.pipeline.act.step.inTx(ctx, jobs))
	require.Len(t, b.history(t, id), 5)
	require.Equal(t, s, b.orderState(t, id))
	require.Len(t, b.inserted.of(notify.CallbackArgs{}.Kind()), 3)
}

// A job that fails does not fail the others of its batch: the batch is run again one job at a
// time, and only that job fails (River retries it).
func TestStepBatchFailsJobByJob(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	ctx := context.Background()
	const task = "TaskIIIIIIIIIIIIIIIIIIII"
	id := b.order(t, "SO-7007", orders.KindDelivery, task)

	t.Run("translate", func(t *testing.T) {
		// Translation of this one cannot be enqueued: Postgres's jsonb refuses \u0000 in the act
		// job's details.
		good := onfleetEvent(t, "task_assigned", task, "SO-7007", time.Minute, nil)
		bad := onfleetEvent(t, "task_started", task, "SO-7007", 2*time.Minute, map[string]any{"workerId": "w\u0000"})
		b.send(t, good)
		b.send(t, bad)
		rows, err := b.pool.Query(ctx, `SELECT id FROM waybill.webhook_events ORDER BY id`)
		require.NoError(t, err)
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		require.NoError(t, err)
		require.Len(t, ids, 2)

		jobs := []stepJob[TranslateArgs]{running(101, TranslateArgs{WebhookEventID: ids[0], Carrier: "onfleet"}), running(102, TranslateArgs{WebhookEventID: ids[1], Carrier: "onfleet"})}
		for i := range jobs {
			jobs[i].client = b.client
		}
		errs, err := b.pipeline.translate.step.flush(ctx, jobs)
		require.NoError(t, err)
		require.NoError(t, errs[0])
		require.Error(t, errs[1])
		require.Equal(t, 1, b.count(t, "SELECT count(*) FROM waybill.webhook_events WHERE outcome IS NOT NULL"))
		require.Len(t, b.inserted.of(ActArgs{}.Kind()), 1)
	})

	t.Run("act", func(t *testing.T) {
		bogus := ActArgs{OrderID: id, Carrier: "onfleet", EventKey: "bogus", CarrierStatus: "taskBogus", Status: "bogus", OccurredAt: t0}
		fine := ActArgs{OrderID: id, Carrier: "onfleet", EventKey: "fine", CarrierStatus: "taskAssigned", Status: orders.StatusAssigned, OccurredAt: t0}
		jobs := []stepJob[ActArgs]{running(201, bogus), running(202, fine)}
		for i := range jobs {
			jobs[i].client = b.client
		}
		errs, err := b.pipeline.act.step.flush(ctx, jobs)
		require.NoError(t, err)
		require.Error(t, errs[0], "the history refuses a status Waybill does not know")
		require.NoError(t, errs[1])
		require.Equal(t, orders.StatusAssigned, b.orderState(t, id).Status)
		require.Len(t, b.history(t, id), 1)
	})
}
