package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/riverqueue/river"

	"github.com/waybill/waybill/internal/dbsqlc"
	"github.com/waybill/waybill/internal/notify"
	"github.com/waybill/waybill/internal/orders"
)

// NotifyChannel is the Postgres channel told about every order status change, with a
// notify.CallbackArgs JSON payload, on commit.
const NotifyChannel = "waybill_order_status"

// problemStatuses are logistics problems: the logistics team gets an email.
var problemStatuses = map[orders.Status]bool{
	orders.StatusFailedAttempt: true,
	orders.StatusReturned:      true,
	orders.StatusCancelled:     true,
	orders.StatusException:     true,
}

// maxReason keeps status_reason and the NOTIFY payload in bounds.
const maxReason = 1000

// maxNotifyPayload is below Postgres's NOTIFY payload limit of 8000 bytes.
const maxNotifyPayload = 7900

// actWorker applies one canonical event to its order in one transaction: the history row, the
// forward-only status move, the NOTIFY and the follow-up jobs, with the job's completion.
type actWorker struct {
	river.WorkerDefaults[ActArgs]
	deps    Deps
	queries *dbsqlc.Queries
}

func (w *actWorker) Work(ctx context.Context, job *river.Job[ActArgs]) error {
	a := job.Args
	log := w.deps.Logger.With("order_id", a.OrderID, "carrier", a.Carrier, "webhook_event_id", a.WebhookEventID, "job_id", job.ID)
	return inTx(ctx, w.deps.Pool, job, func(tx pgx.Tx) error {
		o, err := w.queries.OrderLockForEvent(ctx, tx, a.OrderID)
		if errors.Is(err, pgx.ErrNoRows) {
			log.WarnContext(ctx, "order of a carrier event is gone")
			return nil
		}
		if err != nil {
			return fmt.Errorf("lock order %d: %w", a.OrderID, err)
		}
		if a.Status == "" { // history only
			_, err := w.insertEvent(ctx, tx, a, false, "")
			return err
		}
		cur := orders.Status(o.Status)
		if a.Status == orders.StatusDelivered && orders.Kind(o.Kind) == orders.KindPickup {
			// A carrier with one word for "done" (a configured one, say) completed a pickup.
			a.Status = orders.StatusPickedUp
		}
		next, changed := orders.Advance(cur, carrierTime(o), a.Status, a.OccurredAt)

		inserted, err := w.insertEvent(ctx, tx, a, changed, cur)
		if err != nil || !inserted || !changed {
			return err // a repeat, or history only: late, repeated, or after a final status
		}

		change := notify.CallbackArgs{
			OrderID:        o.ID,
			ExternalID:     o.ExternalID,
			Carrier:        o.Carrier,
			Status:         string(next),
			PreviousStatus: string(cur),
			CarrierStatus:  a.CarrierStatus,
			TrackingURL:    coalesce(o.TrackingUrl, a.TrackingURL),
			OccurredAt:     a.OccurredAt,
		}
		var reason *string
		if problemStatuses[next] || next == orders.StatusRejected {
			change.Reason = truncate(coalesce(nonEmpty(a.Reason), a.CarrierStatus), maxReason)
			reason = &change.Reason
		}
		notification, err := statusNotification(change)
		if err != nil {
			return err
		}
		at := a.OccurredAt
		if err := w.queries.OrderApplyEventStatus(ctx, tx, dbsqlc.OrderApplyEventStatusParams{
			ID:           o.ID,
			Status:       string(next),
			StatusAt:     &at,
			StatusReason: reason,
			TrackingUrl:  nonEmpty(a.TrackingURL),
			Notification: string(notification),
		}); err != nil {
			return fmt.Errorf("apply status to order %d: %w", o.ID, err)
		}

		var followUps []river.InsertManyParams
		if w.deps.CallbackEnabled {
			followUps = append(followUps, river.InsertManyParams{Args: change})
		}
		if problemStatuses[next] {
			followUps = append(followUps, river.InsertManyParams{Args: problemEmail(o, change)})
		}
		if len(followUps) > 0 {
			if _, err := river.ClientFromContext[pgx.Tx](ctx).InsertManyTx(ctx, tx, followUps); err != nil {
				return fmt.Errorf("enqueue notifications for order %d: %w", o.ID, err)
			}
		}
		if problemStatuses[next] {
			log.InfoContext(ctx, "order has a logistics problem", "external_id", o.ExternalID, "status", next, "reason", change.Reason)
		} else {
			log.DebugContext(ctx, "order status changed", "external_id", o.ExternalID, "status", next, "previous_status", cur)
		}
		return nil
	})
}

// statusNotification is the NOTIFY payload: the callback's JSON, without the carrier's free text
// in the rare case that would pass Postgres's 8000-byte limit (listeners can read the order).
func statusNotification(change notify.CallbackArgs) ([]byte, error) {
	b, err := json.Marshal(change)
	if err == nil && len(b) >= maxNotifyPayload {
		change.Reason, change.TrackingURL = "", ""
		b, err = json.Marshal(change)
	}
	if err != nil {
		return nil, fmt.Errorf("encode status notification: %w", err)
	}
	return b, nil
}

// insertEvent writes the history row; false when this event is already in the history.
func (w *actWorker) insertEvent(ctx context.Context, tx pgx.Tx, a ActArgs, applied bool, previous orders.Status) (bool, error) {
	details, err := historyDetails(a.Details, applied, previous)
	if err != nil {
		return false, err
	}
	var status *string
	if a.Status != "" {
		s := string(a.Status)
		status = &s
	}
	_, err = w.queries.OrderEventInsert(ctx, tx, dbsqlc.OrderEventInsertParams{
		OrderID:        a.OrderID,
		Status:         status,
		CarrierStatus:  a.CarrierStatus,
		OccurredAt:     a.OccurredAt,
		Applied:        applied,
		EventKey:       a.EventKey,
		WebhookEventID: pgtype.Int8{Int64: a.WebhookEventID, Valid: a.WebhookEventID != 0},
		Details:        details,
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("insert order event for order %d: %w", a.OrderID, err)
	}
	return true, nil
}

// carrierTime is the carrier event time behind the order's status, nil when Waybill set the
// status on its own clock: pending, or dispatched by dispatch (which stamps status_at and
// dispatched_at with the same now()). A carrier's clock is only compared with a carrier's.
func carrierTime(o dbsqlc.OrderLockForEventRow) *time.Time {
	switch {
	case orders.Status(o.Status) == orders.StatusPending:
		return nil
	case orders.Status(o.Status) == orders.StatusDispatched && o.StatusAt != nil && o.DispatchedAt != nil && o.StatusAt.Equal(*o.DispatchedAt):
		return nil
	}
	return o.StatusAt
}

// historyDetails is the history row's details: the carrier's facts (a JSON object), plus the
// status the event moved the order from when it did.
func historyDetails(details json.RawMessage, applied bool, previous orders.Status) ([]byte, error) {
	m := map[string]json.RawMessage{}
	if len(details) > 0 && json.Unmarshal(details, &m) != nil || m == nil {
		m = map[string]json.RawMessage{}
		if json.Valid(details) && !bytes.Equal(bytes.TrimSpace(details), []byte("null")) {
			m["carrier_details"] = details // not an object: kept, one level down
		}
	}
	if applied {
		prev, err := json.Marshal(previous)
		if err != nil {
			return nil, err
		}
		m["previous_status"] = prev
	}
	return json.Marshal(m)
}

// problemEmail is the logistics team's email about a problem with an order.
func problemEmail(o dbsqlc.OrderLockForEventRow, change notify.CallbackArgs) notify.EmailArgs {
	var p orders.Payload
	_ = json.Unmarshal(o.Payload, &p) // validated at INSERT; an unreadable one only loses detail
	return notify.EmailArgs{
		OrderID:       o.ID,
		ExternalID:    o.ExternalID,
		Carrier:       o.Carrier,
		Status:        change.Status,
		CarrierStatus: change.CarrierStatus,
		Reason:        change.Reason,
		Recipient:     joinNonEmpty(", ", p.Recipient.Name, p.Recipient.Phone),
		Address:       oneLineAddress(p.Address),
		TrackingURL:   change.TrackingURL,
		OccurredAt:    change.OccurredAt,
	}
}

func oneLineAddress(a orders.Address) string {
	return joinNonEmpty(", ", a.Line1, a.Line2, a.City, joinNonEmpty(" ", a.Region, a.PostalCode), a.Country)
}

func coalesce(s *string, fallback string) string {
	if s != nil && strings.TrimSpace(*s) != "" {
		return *s
	}
	return fallback
}
