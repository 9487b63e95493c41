package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/tidwall/gjson"

	"github.com/waybill/waybill/internal/carrier"
	"github.com/waybill/waybill/internal/dbsqlc"
	"github.com/waybill/waybill/internal/orders"
)

// WorkerConfig wires a Worker.
type WorkerConfig struct {
	Dispatcher *Dispatcher
	Store      *Store
	Pool       *pgxpool.Pool
	Logger     *slog.Logger
	// AuthRetry is how often a job retries while the carrier refuses our credentials
	// (default 1m). Such jobs are snoozed, not failed: no order is lost while ops fix the key.
	AuthRetry time.Duration
}

// Worker dispatches one order. Its job hands the order to the Dispatcher, which sends it with
// whatever other orders of the same carrier are waiting, and waits for the order's own outcome.
type Worker struct {
	river.WorkerDefaults[Args]
	cfg     WorkerConfig
	queries *dbsqlc.Queries
}

func NewWorker(cfg WorkerConfig) *Worker {
	if cfg.AuthRetry == 0 {
		cfg.AuthRetry = time.Minute
	}
	return &Worker{cfg: cfg, queries: dbsqlc.New()}
}

// waitMargin is how long before its job's deadline a job stops waiting for its batch and
// snoozes: the batch goes on without it, and the next run picks up its outcome.
const waitMargin = 2 * time.Second

func (w *Worker) Work(ctx context.Context, job *river.Job[Args]) error {
	a := job.Args
	logger := w.cfg.Logger.With("order_id", a.OrderID, "job_id", job.ID, "carrier", a.Carrier)

	order, exists, err := w.cfg.Store.Load(ctx, a.OrderID, mayBeSent(job.JobRow))
	if err != nil {
		return fmt.Errorf("load order %d: %w", a.OrderID, err)
	}
	if !exists {
		return river.JobCancel(fmt.Errorf("order %d no longer exists", a.OrderID))
	}
	switch order.DispatchStep() {
	case orders.DispatchDone:
		// Already at the carrier (a retried or redriven job whose earlier run got through).
		return w.end(ctx, job)
	case orders.DispatchRefused:
		// Its batch's settlement recorded the carrier's refusal: end the job as dead.
		return river.JobCancel(fmt.Errorf("carrier refused order %d: %s", a.OrderID, order.StatusReason))
	}
	var payload orders.Payload
	if err := json.Unmarshal(order.Payload, &payload); err != nil {
		// Validated at INSERT, so only a hand-edited row gets here; retrying will not help.
		return river.JobCancel(fmt.Errorf("order %d: unreadable payload: %w", a.OrderID, err))
	}
	req := carrier.Request{OrderID: a.OrderID, ExternalID: a.ExternalID, Kind: order.Kind, Payload: payload}

	waitCtx := ctx
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		waitCtx, cancel = context.WithDeadline(ctx, deadline.Add(-waitMargin))
		defer cancel()
	}
	batchID := order.BatchID
	for {
		var ch <-chan outcome
		if batchID != 0 {
			// An earlier run's request is unsettled: never send again before it is.
			ch, err = w.cfg.Dispatcher.await(waitCtx, batchID, job.ID, a.OrderID)
		} else {
			ch, err = w.cfg.Dispatcher.dispatch(waitCtx, a.Carrier, job.ID, req)
		}
		if err != nil {
			return w.waitEnded(ctx, err)
		}
		var o outcome
		select {
		case o = <-ch:
		case <-waitCtx.Done():
			return w.waitEnded(ctx, waitCtx.Err())
		}
		switch {
		case o.created:
			logger.DebugContext(ctx, "order dispatched")
			return nil
		case o.refused != "":
			logger.WarnContext(ctx, "carrier rejected order", "reason", o.refused)
			return river.JobCancel(fmt.Errorf("carrier refused order %d: %s", a.OrderID, o.refused))
		case o.resend:
			batchID = 0
			continue
		case errors.Is(o.err, errStopping):
			return river.JobSnooze(time.Second)
		default:
			return w.failed(ctx, logger, a, o.err)
		}
	}
}

// waitEnded is a job that stopped waiting for its order's outcome: at its deadline it snoozes
// (the request goes on, and the next run settles from it); on shutdown it returns the error.
func (w *Worker) waitEnded(ctx context.Context, err error) error {
	if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return river.JobSnooze(time.Second)
	}
	return err
}

func (w *Worker) end(ctx context.Context, job *river.Job[Args]) error {
	if err := w.cfg.Store.End(ctx, job.ID); err != nil {
		return fmt.Errorf("end dispatch job of order %d: %w", job.Args.OrderID, err)
	}
	return nil
}

// mayBeSent reports whether an earlier run of the job may have put its order in a carrier
// request: it was attempted, snoozed (River then gives the attempt back) or failed before, or
// redriven (which keeps its errors).
func mayBeSent(job *rivertype.JobRow) bool {
	return job.Attempt > 1 || len(job.Errors) > 0 || gjson.GetBytes(job.Metadata, "snoozes").Int() > 0
}

// failed decides what a carrier failure does to the job.
func (w *Worker) failed(ctx context.Context, logger *slog.Logger, a Args, err error) error {
	var snooze *river.JobSnoozeError
	if errors.As(err, &snooze) {
		return err
	}
	switch carrier.ClassOf(err) {
	case carrier.Rejected:
		// The carrier will never take this order as it is: record why, and end the job so it
		// shows up as dead instead of retrying for days.
		reason := err.Error()
		var ce *carrier.Error
		if errors.As(err, &ce) && ce.Message != "" {
			reason = ce.Message
		}
		if _, dbErr := w.queries.OrderMarkRejected(ctx, w.cfg.Pool, dbsqlc.OrderMarkRejectedParams{ID: a.OrderID, Reason: &reason}); dbErr != nil {
			return fmt.Errorf("mark order %d rejected: %w", a.OrderID, dbErr)
		}
		logger.WarnContext(ctx, "carrier rejected order", "reason", reason)
		return river.JobCancel(err)
	case carrier.Unauthorized:
		logger.ErrorContext(ctx, "carrier refused our credentials; will retry", "error", err, "retry_in", w.cfg.AuthRetry)
		return river.JobSnooze(w.cfg.AuthRetry)
	default:
		logger.WarnContext(ctx, "carrier call failed; will retry", "error", err)
		return err
	}
}
