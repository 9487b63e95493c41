package webhook

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/riverqueue/river"

	"github.com/waybill/waybill/internal/dbsqlc"
	"github.com/waybill/waybill/internal/notify"
)

// translateWorker turns a stored webhook into its canonical meaning, finds the order, and hands
// the event to the act queue, all in one transaction with the job's completion.
type translateWorker struct {
	river.WorkerDefaults[TranslateArgs]
	deps    Deps
	queries *dbsqlc.Queries
}

func (w *translateWorker) Work(ctx context.Context, job *river.Job[TranslateArgs]) error {
	id := job.Args.WebhookEventID
	return inTx(ctx, w.deps.Pool, job, func(tx pgx.Tx) error {
		row, err := w.queries.WebhookEventGetByID(ctx, tx, id)
		if errors.Is(err, pgx.ErrNoRows) {
			w.deps.Logger.WarnContext(ctx, "webhook event to translate is gone", "webhook_event_id", id, "job_id", job.ID)
			return nil
		}
		if err != nil {
			return fmt.Errorf("read webhook event %d: %w", id, err)
		}
		if row.Outcome != nil {
			return nil // translated by an earlier run of this job
		}

		ev, tr := w.interpret(row)
		var orderID int64
		if needsOrder(ev, tr) {
			o, err := w.queries.OrderFindForCarrierTask(ctx, tx, dbsqlc.OrderFindForCarrierTaskParams{
				Carrier:    row.Carrier,
				TaskID:     ev.TaskID,
				ExternalID: ev.ExternalID,
				OrderID:    ev.OrderID,
			})
			switch {
			case errors.Is(err, pgx.ErrNoRows):
				tr = Translation{Outcome: OutcomeIgnore, Detail: fmt.Sprintf("task %s is not a Waybill order's", ev.TaskID)}
			case err != nil:
				return fmt.Errorf("find order for webhook event %d: %w", id, err)
			default:
				orderID = o.ID
				if ev.ExternalID == "" {
					ev.ExternalID = o.ExternalID
				}
			}
		}

		recorded, err := w.queries.WebhookEventRecordOutcome(ctx, tx, dbsqlc.WebhookEventRecordOutcomeParams{
			ID:            id,
			Outcome:       string(tr.Outcome),
			OutcomeDetail: nonEmpty(tr.Detail),
			OrderID:       pgtype.Int8{Int64: orderID, Valid: orderID != 0},
		})
		if err != nil {
			return fmt.Errorf("record outcome of webhook event %d: %w", id, err)
		}
		if recorded == 0 {
			return nil // another run got there first
		}

		log := w.deps.Logger.With("carrier", row.Carrier, "webhook_event_id", id, "carrier_status", ev.CarrierStatus)
		client := river.ClientFromContext[pgx.Tx](ctx)
		switch tr.Outcome {
		case OutcomeStatus, OutcomeRecord:
			_, err = client.InsertTx(ctx, tx, ActArgs{
				OrderID:        orderID,
				WebhookEventID: id,
				Carrier:        row.Carrier,
				EventKey:       row.EventKey,
				CarrierStatus:  ev.CarrierStatus,
				Status:         tr.Status,
				OccurredAt:     ev.OccurredAt,
				Reason:         ev.Reason,
				TrackingURL:    ev.TrackingURL,
				Details:        ev.Details,
			}, nil)
			log.DebugContext(ctx, "webhook translated", "order_id", orderID, "status", tr.Status)
		case OutcomeQuarantine:
			_, err = client.InsertTx(ctx, tx, quarantineMessage(row, ev, tr, orderID), nil)
			log.WarnContext(ctx, "webhook quarantined", "order_id", orderID, "external_id", ev.ExternalID, "detail", tr.Detail)
		default:
			log.DebugContext(ctx, "webhook ignored", "detail", tr.Detail)
		}
		if err != nil {
			return fmt.Errorf("enqueue after webhook event %d: %w", id, err)
		}
		return nil
	})
}

// interpret reads a stored webhook with its carrier's Source and translates it.
func (w *translateWorker) interpret(row dbsqlc.WaybillWebhookEvent) (Event, Translation) {
	src, ok := w.deps.Sources[row.Carrier]
	if !ok {
		return Event{Carrier: row.Carrier}, Translation{Outcome: OutcomeQuarantine, Detail: fmt.Sprintf("carrier %q is not configured any more", row.Carrier)}
	}
	ev, err := src.Parse(row.Body)
	if err != nil {
		return Event{Carrier: row.Carrier}, Translation{Outcome: OutcomeQuarantine, Detail: err.Error()}
	}
	return ev, src.Vocabulary().Translate(ev)
}

// needsOrder: status and history events go to an order, and so does an unknown word about a
// task; if no order of ours has the task, the event is not ours and is ignored.
func needsOrder(ev Event, tr Translation) bool {
	switch tr.Outcome {
	case OutcomeStatus, OutcomeRecord:
		return true
	case OutcomeQuarantine:
		return ev.Problem == "" && ev.TaskID != ""
	}
	return false
}

// quarantineMessage tells the developers that a carrier said something Waybill does not know.
func quarantineMessage(row dbsqlc.WaybillWebhookEvent, ev Event, tr Translation, orderID int64) notify.SlackArgs {
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

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
