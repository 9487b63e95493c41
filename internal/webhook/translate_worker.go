package webhook

import (
	"context"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/waybill/waybill/internal/carrier"
	"github.com/waybill/waybill/internal/dbsqlc"
	"github.com/waybill/waybill/internal/notify"
)

// translateWorker turns stored webhooks into their canonical meaning, finds their orders, and
// hands the events to the act queue, all in one transaction with the jobs' completion.
type translateWorker struct {
	river.WorkerDefaults[TranslateArgs]
	deps    Deps
	queries *dbsqlc.Queries
	step    *step[TranslateArgs]
}

func (w *translateWorker) Work(ctx context.Context, job *river.Job[TranslateArgs]) error {
	return w.step.work(ctx, job)
}

// toTranslate is one stored event on its way through translate.
type toTranslate struct {
	row     dbsqlc.WebhookEventGetManyRow
	jobID   int64
	ev      carrier.Event
	tr      carrier.Translation
	orderID int64
}

// translate translates a batch of jobs' events in tx: read, interpret, find their orders, record
// the outcomes, enqueue the act (or Slack) jobs of the events recorded now.
func (w *translateWorker) translate(ctx context.Context, tx pgx.Tx, jobs []stepJob[TranslateArgs]) error {
	ids := make([]int64, len(jobs))
	for i, j := range jobs {
		ids[i] = j.job.Args.WebhookEventID
	}
	rows, err := w.queries.WebhookEventGetMany(ctx, tx, ids)
	if err != nil {
		return fmt.Errorf("read webhook events: %w", err)
	}
	byID := make(map[int64]dbsqlc.WebhookEventGetManyRow, len(rows))
	for _, row := range rows {
		byID[row.ID] = row
	}
	todo := make([]*toTranslate, 0, len(jobs))
	seen := make(map[int64]bool, len(jobs))
	for _, j := range jobs {
		id := j.job.Args.WebhookEventID
		row, ok := byID[id]
		switch {
		case !ok:
			w.deps.Logger.WarnContext(ctx, "webhook event to translate is gone", "webhook_event_id", id, "job_id", j.job.ID)
			continue
		case row.Outcome != nil, seen[id]:
			continue // translated by an earlier run of this job, or by another job of this batch
		}
		seen[id] = true
		t := &toTranslate{row: row, jobID: j.job.ID}
		t.ev, t.tr = w.interpret(row)
		todo = append(todo, t)
	}
	if len(todo) == 0 {
		return nil
	}
	if err := w.findOrders(ctx, tx, todo); err != nil {
		return err
	}

	p := dbsqlc.WebhookEventRecordOutcomesParams{
		Ids:            make([]int64, len(todo)),
		Outcomes:       make([]string, len(todo)),
		OutcomeDetails: make([]string, len(todo)),
		OrderIds:       make([]int64, len(todo)),
	}
	for i, t := range todo {
		p.Ids[i], p.Outcomes[i], p.OutcomeDetails[i], p.OrderIds[i] = t.row.ID, string(t.tr.Outcome), t.tr.Detail, t.orderID
	}
	recorded, err := w.queries.WebhookEventRecordOutcomes(ctx, tx, p)
	if err != nil {
		return fmt.Errorf("record outcomes of webhook events: %w", err)
	}
	recordedNow := make(map[int64]bool, len(recorded)) // the rest: another run got there first
	for _, id := range recorded {
		recordedNow[id] = true
	}

	var next []river.InsertManyParams
	for _, t := range todo {
		if !recordedNow[t.row.ID] {
			continue
		}
		ev, tr := t.ev, t.tr
		switch tr.Outcome {
		case carrier.OutcomeStatus, carrier.OutcomeRecord:
			next = append(next, river.InsertManyParams{Args: ActArgs{
				OrderID:        t.orderID,
				WebhookEventID: t.row.ID,
				Carrier:        t.row.Carrier,
				EventKey:       t.row.EventKey,
				CarrierStatus:  ev.CarrierStatus,
				Status:         tr.Status,
				OccurredAt:     ev.OccurredAt,
				Reason:         ev.Reason,
				TrackingURL:    ev.TrackingURL,
				Details:        ev.Details,
				LearntBy:       learntBy(t.row.LearntBy),
			}})
			w.deps.Logger.DebugContext(ctx, "webhook translated", "carrier", t.row.Carrier, "webhook_event_id", t.row.ID,
				"job_id", t.jobID, "carrier_status", ev.CarrierStatus, "order_id", t.orderID, "status", tr.Status)
		case carrier.OutcomeQuarantine:
			next = append(next, river.InsertManyParams{Args: quarantineMessage(t.row, ev, tr, t.orderID)})
			w.deps.Logger.WarnContext(ctx, "webhook quarantined", "carrier", t.row.Carrier, "webhook_event_id", t.row.ID,
				"job_id", t.jobID, "carrier_status", ev.CarrierStatus, "order_id", t.orderID, "external_id", ev.ExternalID, "detail", tr.Detail)
		default:
			w.deps.Logger.DebugContext(ctx, "webhook ignored", "carrier", t.row.Carrier, "webhook_event_id", t.row.ID,
				"job_id", t.jobID, "carrier_status", ev.CarrierStatus, "detail", tr.Detail)
		}
	}
	for _, t := range todo {
		if recordedNow[t.row.ID] {
			w.settleBatch(ctx, t.row, t.ev)
		}
	}
	if len(next) > 0 {
		if _, err := jobs[0].client.InsertManyFastTx(ctx, tx, next); err != nil {
			return fmt.Errorf("enqueue after webhook events: %w", err)
		}
	}
	return nil
}

// findOrders finds the order of each event that needs one, in one query; an event about a task
// no order of ours has is ignored.
func (w *translateWorker) findOrders(ctx context.Context, tx pgx.Tx, todo []*toTranslate) error {
	var p dbsqlc.OrderFindForCarrierTasksParams
	var asked []*toTranslate
	for _, t := range todo {
		if !needsOrder(t.ev, t.tr) {
			continue
		}
		asked = append(asked, t)
		p.Carriers = append(p.Carriers, t.row.Carrier)
		p.TaskIds = append(p.TaskIds, t.ev.TaskID)
		p.ExternalIds = append(p.ExternalIds, t.ev.ExternalID)
		p.OrderIds = append(p.OrderIds, t.ev.OrderID)
	}
	if len(asked) == 0 {
		return nil
	}
	found, err := w.queries.OrderFindForCarrierTasks(ctx, tx, p)
	if err != nil {
		return fmt.Errorf("find orders for webhook events: %w", err)
	}
	for _, o := range found {
		t := asked[o.Idx-1]
		t.orderID = o.ID
		if t.ev.ExternalID == "" {
			t.ev.ExternalID = o.ExternalID
		}
	}
	for _, t := range asked {
		if t.orderID == 0 {
			t.tr = carrier.Translation{Outcome: carrier.OutcomeIgnore, Detail: fmt.Sprintf("task %s is not a Waybill order's", t.ev.TaskID)}
		}
	}
	return nil
}

// interpret reads a stored webhook with its carrier's Source and translates it.
func (w *translateWorker) interpret(row dbsqlc.WebhookEventGetManyRow) (carrier.Event, carrier.Translation) {
	src, ok := w.deps.Sources[row.Carrier]
	if !ok {
		return carrier.Event{Carrier: row.Carrier}, carrier.Translation{Outcome: carrier.OutcomeQuarantine, Detail: fmt.Sprintf("carrier %q is not configured any more", row.Carrier)}
	}
	ev, err := src.Parse(row.Body)
	if err != nil {
		return carrier.Event{Carrier: row.Carrier}, carrier.Translation{Outcome: carrier.OutcomeQuarantine, Detail: err.Error()}
	}
	return ev, src.Vocabulary().Translate(ev)
}

// needsOrder: status and history events go to an order, and so does an unknown word about a
// task; if no order of ours has the task, the event is not ours and is ignored.
func needsOrder(ev carrier.Event, tr carrier.Translation) bool {
	switch tr.Outcome {
	case carrier.OutcomeStatus, carrier.OutcomeRecord:
		return true
	case carrier.OutcomeQuarantine:
		return ev.Problem == "" && ev.TaskID != ""
	}
	return false
}

// quarantineMessage tells the developers that a carrier said something Waybill does not know.
func quarantineMessage(row dbsqlc.WebhookEventGetManyRow, ev carrier.Event, tr carrier.Translation, orderID int64) notify.SlackArgs {
	fields := map[string]string{
		"carrier":          row.Carrier,
		"webhook_event_id": strconv.FormatInt(row.ID, 10),
		"problem":          tr.Detail,
	}
	if ev.CarrierStatus != "" {
		fields["carrier_status"] = ev.CarrierStatus
	}
	if ev.TaskID != "" {
		fields["task_id"] = ev.TaskID
	}
	if orderID != 0 {
		fields["order_id"] = strconv.FormatInt(orderID, 10)
		fields["external_id"] = ev.ExternalID
	}
	return notify.SlackArgs{
		Title: fmt.Sprintf("Quarantined a %s webhook", row.Carrier),
		Text: fmt.Sprintf("Waybill could not tell what this %s webhook means (%s), so it changed no order. "+
			"The raw event is kept as webhook event %d; teach the carrier's vocabulary the word, or fix the sender.",
			row.Carrier, tr.Detail, row.ID),
		Fields:   fields,
		Severity: "alarm",
	}
}

// learntBy is ActArgs.LearntBy for a stored event: empty for a webhook.
func learntBy(stored string) string {
	if stored == LearntByPoll {
		return LearntByPoll
	}
	return ""
}

// settleBatch hands a finished batch job's results, when the event announces one (see
// carrier.BatchSource), to dispatch, whichever of this webhook and dispatch's own poll comes
// first (both are idempotent). A failure is only logged: the poll settles the batch anyway.
func (w *translateWorker) settleBatch(ctx context.Context, row dbsqlc.WebhookEventGetManyRow, ev carrier.Event) {
	src, ok := w.deps.Sources[row.Carrier].(carrier.BatchSource)
	if !ok || w.deps.Batches == nil {
		return
	}
	jobID, res, ok := src.BatchCompleted(ev, row.Body)
	if !ok {
		return
	}
	if err := w.deps.Batches.SettleFromWebhook(ctx, row.Carrier, jobID, res); err != nil {
		w.deps.Logger.WarnContext(ctx, "could not settle a batch from its webhook; the poll will", "carrier_job_id", jobID, "error", err)
	}
}
