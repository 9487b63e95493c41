package webhook

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/waybill/waybill/internal/dbsqlc"
)

// sameChangeTolerance: a status row learnt by polling and one learnt by webhook with the same
// status are one change when their carrier times are this close. Onfleet's webhook time and the
// task's own times for the change (completionDetails.time, the start event) are the same instant
// in the sandbox; the tolerance absorbs a carrier that stamps them a little apart.
const sameChangeTolerance = 5 * time.Second

// statusRow is a status row of an order's history, as far as deciding "the same change" needs.
type statusRow struct {
	status   string
	at       time.Time
	learntBy string
	inferred bool // learnt by polling, at a time Waybill inferred (InferredKeyPrefix)
}

// knownChanges are the status rows of a batch's orders that a carrier event learnt the other way
// could repeat: webhooks compare with rows learnt by polling and polled events with rows learnt
// by webhook. Event keys tell repeats of one event apart; this tells one change told twice.
type knownChanges map[int64][]statusRow

func (w *actWorker) knownChanges(ctx context.Context, tx pgx.Tx, jobs []stepJob[ActArgs]) (knownChanges, error) {
	var p dbsqlc.OrderEventStatusRowsParams
	for _, j := range jobs {
		a := j.job.Args
		p.OrderIds = append(p.OrderIds, a.OrderID)
		if a.LearntBy == LearntByPoll {
			p.PolledOrderIds = append(p.PolledOrderIds, a.OrderID)
		}
	}
	rows, err := w.queries.OrderEventStatusRows(ctx, tx, p)
	if err != nil {
		return nil, fmt.Errorf("read order history: %w", err)
	}
	k := make(knownChanges, len(rows))
	for _, r := range rows {
		k[r.OrderID] = append(k[r.OrderID], statusRow{status: r.Status, at: r.OccurredAt, learntBy: r.LearntBy,
			inferred: strings.HasPrefix(r.EventKey, InferredKeyPrefix)})
	}
	return k, nil
}

// add remembers a history row written by this batch, for the events after it.
func (k knownChanges) add(a ActArgs) {
	if a.Status == "" {
		return
	}
	k[a.OrderID] = append(k[a.OrderID], statusRowOf(a))
}

// known reports whether the order's history already has the change a reports, learnt the other
// way: the same status at the same carrier time (within sameChangeTolerance), or, when one side's
// time is inferred (an assignment seen only once the task had started), the same status at or
// before the inferred time.
func (k knownChanges) known(a ActArgs) bool {
	if a.Status == "" {
		return false
	}
	ev := statusRowOf(a)
	return slices.ContainsFunc(k[a.OrderID], func(r statusRow) bool {
		if r.status != ev.status || r.learntBy == ev.learntBy {
			return false
		}
		d := r.at.Sub(ev.at)
		switch {
		case d.Abs() <= sameChangeTolerance:
			return true
		case ev.inferred:
			return !r.at.After(ev.at)
		case r.inferred:
			return !ev.at.After(r.at)
		}
		return false
	})
}

func statusRowOf(a ActArgs) statusRow {
	learntBy := LearntByWebhook
	if a.LearntBy == LearntByPoll {
		learntBy = LearntByPoll
	}
	return statusRow{status: string(a.Status), at: a.OccurredAt, learntBy: learntBy,
		inferred: strings.HasPrefix(a.EventKey, InferredKeyPrefix)}
}
