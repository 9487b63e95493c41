package webhook

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/waybill/waybill/internal/dbsqlc"
	"github.com/waybill/waybill/internal/notify"
	"github.com/waybill/waybill/internal/orders"
	"github.com/waybill/waybill/internal/truncate"
)

// NotifyChannel is the Postgres channel told about every order status change, with a
// StatusNotification JSON payload, on commit.
const NotifyChannel = "waybill_order_status"

// maxReason keeps status_reason in bounds.
const maxReason = 1000

// maxNotifyPayload is below Postgres's NOTIFY payload limit of 8000 bytes.
const maxNotifyPayload = 7900

// actWorker applies canonical events to their orders in one transaction: the history rows, the
// forward-only status moves, the NOTIFYs and the follow-up jobs, with the jobs' completion.
type actWorker struct {
	river.WorkerDefaults[ActArgs]
	deps    Deps
	queries *dbsqlc.Queries
	step    *step[ActArgs]
}

func (w *actWorker) Work(ctx context.Context, job *river.Job[ActArgs]) error {
	return w.step.work(ctx, job)
}

// orderKey is one carrier event about one order: a row of the order's history.
type orderKey struct {
	orderID int64
	key     string
}

// act applies a batch of jobs' events in tx. The orders are locked first, then each event is
// decided in the batch's order against the order as the events before it left it, exactly as if
// each had its own transaction in that order; then everything is written at once.
func (w *actWorker) act(ctx context.Context, tx pgx.Tx, jobs []stepJob[ActArgs]) error {
	orderIDs := make([]int64, 0, len(jobs))
	keys := dbsqlc.OrderEventKeysKnownParams{}
	for _, j := range jobs {
		orderIDs = append(orderIDs, j.job.Args.OrderID)
		keys.OrderIds = append(keys.OrderIds, j.job.Args.OrderID)
		keys.EventKeys = append(keys.EventKeys, j.job.Args.EventKey)
	}
	slices.Sort(orderIDs)
	rows, err := w.queries.OrderLockForEvents(ctx, tx, slices.Compact(orderIDs))
	if err != nil {
		return fmt.Errorf("lock orders: %w", err)
	}
	locked := make(map[int64]*orders.Order, len(rows))
	for _, row := range rows {
		locked[row.ID] = lockedOrder(row)
	}
	known, err := w.queries.OrderEventKeysKnown(ctx, tx, keys)
	if err != nil {
		return fmt.Errorf("read order history: %w", err)
	}
	inHistory := make(map[orderKey]bool, len(known)+len(jobs))
	for _, k := range known {
		inHistory[orderKey{k.OrderID, k.EventKey}] = true
	}
	// A change learnt both by webhook and by polling has two keys: one history row for it.
	changes, err := w.knownChanges(ctx, tx, jobs)
	if err != nil {
		return err
	}

	var (
		history   dbsqlc.OrderEventInsertManyParams
		reasons   = map[int64]*string{} // status_reason of each order moved
		moved     []int64               // in the order of their first move
		notices   []string
		followUps []river.InsertManyParams
	)
	addHistory := func(a ActArgs, applied bool, previous orders.Status) error {
		details, err := historyDetails(a.Details, applied, previous)
		if err != nil {
			return err
		}
		history.OrderIds = append(history.OrderIds, a.OrderID)
		history.Statuses = append(history.Statuses, string(a.Status))
		history.CarrierStatuses = append(history.CarrierStatuses, a.CarrierStatus)
		history.OccurredAts = append(history.OccurredAts, a.OccurredAt)
		history.Applied = append(history.Applied, applied)
		history.EventKeys = append(history.EventKeys, a.EventKey)
		history.WebhookEventIds = append(history.WebhookEventIds, a.WebhookEventID)
		history.Details = append(history.Details, details)
		history.LearntBy = append(history.LearntBy, cmp.Or(a.LearntBy, LearntByWebhook))
		changes.add(a)
		return nil
	}
	for _, j := range jobs {
		a := j.job.Args
		o, ok := locked[a.OrderID]
		if !ok {
			w.deps.Logger.WarnContext(ctx, "order of a carrier event is gone", "order_id", a.OrderID, "carrier", a.Carrier,
				"webhook_event_id", a.WebhookEventID, "job_id", j.job.ID)
			continue
		}
		k := orderKey{a.OrderID, a.EventKey}
		if inHistory[k] {
			continue // a repeat
		}
		inHistory[k] = true
		if a.Status == "" { // history only
			if err := addHistory(a, false, ""); err != nil {
				return err
			}
			continue
		}
		cur := o.Status
		a.Status = orders.EventStatus(a.Status, o.Kind, false)
		if changes.known(a) {
			continue // the same change, learnt the other way (webhook or polling) already
		}
		next, changed := orders.Advance(cur, o.CarrierTime(), a.Status, a.OccurredAt)
		if !changed && a.LearntBy == LearntByPoll && a.Status == cur {
			continue // polling reports states: one the order already has is no news
		}
		if err := addHistory(a, changed, cur); err != nil {
			return err
		}
		if !changed {
			continue // history only: late, repeated, or after a final status
		}

		change := notify.CallbackArgs{
			OrderID:        o.ID,
			ExternalID:     o.ExternalID,
			Carrier:        o.Carrier,
			Status:         string(next),
			PreviousStatus: string(cur),
			CarrierStatus:  a.CarrierStatus,
			TrackingURL:    coalesce(o.TrackingURL, a.TrackingURL),
			OccurredAt:     a.OccurredAt,
		}
		var reason *string
		if next.HasReason() {
			change.Reason = truncate.Runes(coalesce(a.Reason, a.CarrierStatus), maxReason)
			reason = &change.Reason
		}
		notification, err := statusNotification(change)
		if err != nil {
			return err
		}
		// The order as the next event of this batch sees it.
		if _, ok := reasons[o.ID]; !ok {
			moved = append(moved, o.ID)
		}
		at := a.OccurredAt
		o.Status, o.StatusAt, reasons[o.ID] = next, &at, reason
		if o.TrackingURL == "" {
			o.TrackingURL = a.TrackingURL
		}
		notices = append(notices, string(notification))

		if w.deps.CallbackEnabled {
			followUps = append(followUps, river.InsertManyParams{Args: change})
		}
		if next.Problem() {
			followUps = append(followUps, river.InsertManyParams{Args: problemEmail(o, change)})
			w.deps.Logger.InfoContext(ctx, "order has a logistics problem", "order_id", o.ID, "external_id", o.ExternalID, "carrier", a.Carrier,
				"webhook_event_id", a.WebhookEventID, "job_id", j.job.ID, "status", next, "reason", change.Reason)
		} else {
			w.deps.Logger.DebugContext(ctx, "order status changed", "order_id", o.ID, "external_id", o.ExternalID, "carrier", a.Carrier,
				"webhook_event_id", a.WebhookEventID, "job_id", j.job.ID, "status", next, "previous_status", cur)
		}
	}

	if len(history.OrderIds) > 0 {
		if err := w.queries.OrderEventInsertMany(ctx, tx, history); err != nil {
			return fmt.Errorf("insert order events: %w", err)
		}
	}
	if len(moved) > 0 {
		p := dbsqlc.OrderApplyEventStatusesParams{Notifications: notices}
		for _, id := range moved {
			o := locked[id]
			p.Ids = append(p.Ids, id)
			p.Statuses = append(p.Statuses, string(o.Status))
			p.StatusAts = append(p.StatusAts, *o.StatusAt)
			p.StatusReasons = append(p.StatusReasons, deref(reasons[id]))
			p.TrackingUrls = append(p.TrackingUrls, o.TrackingURL)
		}
		if err := w.queries.OrderApplyEventStatuses(ctx, tx, p); err != nil {
			return fmt.Errorf("apply statuses to orders: %w", err)
		}
	}
	if len(followUps) > 0 {
		if _, err := jobs[0].client.InsertManyFastTx(ctx, tx, followUps); err != nil {
			return fmt.Errorf("enqueue notifications: %w", err)
		}
	}
	return nil
}

// StatusNotification is the payload of NOTIFY waybill_order_status: which order moved to which
// status, and nothing else. Postgres lets every login that can connect LISTEN on any channel, so
// it carries no personal data, tracking link or carrier text. It is a hint to go and read
// waybill.orders (NOTIFY is not delivered to a listener that was disconnected), never the record.
type StatusNotification struct {
	OrderID        int64  `json:"order_id"`
	ExternalID     string `json:"external_id"`
	Status         string `json:"status"`
	PreviousStatus string `json:"previous_status"`
}

// statusNotification is the NOTIFY payload for a status change: ids and statuses only. It fits
// pg_notify's 8000 bytes whatever the job carries: external_id is at most 200 characters and
// statuses are canonical, so only a hand-made or redriven job with longer strings is cut, which
// beats failing the whole batch's transaction and ending in a dead letter. The payload is a hint
// to read the order by its id, never the record.
func statusNotification(change notify.CallbackArgs) ([]byte, error) {
	n := StatusNotification{
		OrderID: change.OrderID, ExternalID: change.ExternalID, Status: change.Status, PreviousStatus: change.PreviousStatus,
	}
	for limit := 2000; ; limit /= 2 {
		b, err := json.Marshal(n)
		if err != nil {
			return nil, fmt.Errorf("encode status notification: %w", err)
		}
		if len(b) < maxNotifyPayload {
			return b, nil
		}
		n.ExternalID = truncate.Runes(n.ExternalID, limit)
		n.Status = truncate.Runes(n.Status, limit)
		n.PreviousStatus = truncate.Runes(n.PreviousStatus, limit)
	}
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

// lockedOrder is a locked order row as the lifecycle rules read it.
func lockedOrder(row dbsqlc.OrderLockForEventsRow) *orders.Order {
	return &orders.Order{
		ID:           row.ID,
		ExternalID:   row.ExternalID,
		Carrier:      row.Carrier,
		Kind:         orders.Kind(row.Kind),
		Payload:      row.Payload,
		Status:       orders.Status(row.Status),
		StatusAt:     row.StatusAt,
		TrackingURL:  deref(row.TrackingUrl),
		DispatchedAt: row.DispatchedAt,
	}
}

// problemEmail is the logistics team's email about a problem with an order.
func problemEmail(o *orders.Order, change notify.CallbackArgs) notify.EmailArgs {
	var p orders.Payload
	_ = json.Unmarshal(o.Payload, &p) // validated at INSERT; an unreadable one only loses detail
	return notify.EmailArgs{
		OrderID:       o.ID,
		ExternalID:    o.ExternalID,
		Carrier:       o.Carrier,
		Status:        change.Status,
		CarrierStatus: change.CarrierStatus,
		Reason:        change.Reason,
		Recipient:     p.Recipient.OneLine(),
		Address:       p.Address.OneLine(),
		TrackingURL:   change.TrackingURL,
		OccurredAt:    change.OccurredAt,
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// coalesce is s unless it is blank, then fallback.
func coalesce(s, fallback string) string {
	if strings.TrimSpace(s) != "" {
		return s
	}
	return fallback
}
