package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/waybill/waybill/internal/carrier"
	"github.com/waybill/waybill/internal/dbsqlc"
	"github.com/waybill/waybill/internal/orders"
)

// WorkerConfig wires a Worker.
type WorkerConfig struct {
	Carriers  map[string]carrier.Carrier // by name, as in waybill.orders.carrier
	Completer *BatchCompleter
	Pool      *pgxpool.Pool
	Hooks     Hooks
	Logger    *slog.Logger
	// AuthRetry is how often a job retries while the carrier refuses our credentials
	// (default 1m). Such jobs are snoozed, not failed: no order is lost while ops fix the key.
	AuthRetry time.Duration
	// RateLimitWait is the wait after a 429 that names none (default 1s, jittered).
	RateLimitWait time.Duration
}

// Worker dispatches one order to its carrier, never creating a second task for it.
type Worker struct {
	river.WorkerDefaults[Args]
	cfg     WorkerConfig
	queries *dbsqlc.Queries
}

func NewWorker(cfg WorkerConfig) *Worker {
	if cfg.AuthRetry == 0 {
		cfg.AuthRetry = time.Minute
	}
	if cfg.RateLimitWait == 0 {
		cfg.RateLimitWait = time.Second
	}
	cfg.Hooks = hooksOrNop(cfg.Hooks)
	return &Worker{cfg: cfg, queries: dbsqlc.New()}
}

func (w *Worker) Work(ctx context.Context, job *river.Job[Args]) error {
	a := job.Args
	logger := w.cfg.Logger.With("order_id", a.OrderID, "external_id", a.ExternalID, "job_id", job.ID, "carrier", a.Carrier)
	c, ok := w.cfg.Carriers[a.Carrier]
	if !ok {
		// In waybill.carriers but not configured here: retry, config may come back.
		return fmt.Errorf("carrier %q is not configured in this service", a.Carrier)
	}

	order, exists, err := w.cfg.Completer.Load(ctx, a.OrderID)
	if err != nil {
		return fmt.Errorf("load order %d: %w", a.OrderID, err)
	}
	if !exists {
		return river.JobCancel(fmt.Errorf("order %d no longer exists", a.OrderID))
	}
	if order.CarrierRef != nil {
		// Already at the carrier (a retried or redriven job whose earlier run got through).
		task := carrier.Task{ID: *order.CarrierRef}
		if order.TrackingUrl != nil {
			task.TrackingURL = *order.TrackingUrl
		}
		return w.complete(ctx, job, task)
	}
	var payload orders.Payload
	if err := json.Unmarshal(order.Payload, &payload); err != nil {
		// Validated at INSERT, so only a hand-edited row gets here; retrying will not help.
		return river.JobCancel(fmt.Errorf("order %d: unreadable payload: %w", a.OrderID, err))
	}

	var (
		task  carrier.Task
		found bool
	)
	// Carriers have no idempotency key. Any earlier attempt (timed out, cut off, killed with the
	// process) may have created the task, so look it up by our reference before creating again.
	if job.Attempt > 1 {
		err := w.call(ctx, a.Carrier, "find", func(ctx context.Context) error {
			var err error
			task, found, err = c.FindTask(ctx, a.ExternalID)
			return err
		})
		if err != nil {
			return w.failed(ctx, logger, a, err)
		}
		if found {
			logger.InfoContext(ctx, "carrier task found from an earlier attempt", "carrier_ref", task.ID, "attempt", job.Attempt)
		}
	}
	if !found {
		req := carrier.Request{OrderID: a.OrderID, ExternalID: a.ExternalID, Kind: orders.Kind(order.Kind), Payload: payload}
		err := w.call(ctx, a.Carrier, "create", func(ctx context.Context) error {
			var err error
			task, err = c.CreateTask(ctx, req)
			return err
		})
		if err != nil {
			return w.failed(ctx, logger, a, err)
		}
	}
	if err := w.complete(ctx, job, task); err != nil {
		return err
	}
	logger.DebugContext(ctx, "order dispatched", "carrier_ref", task.ID)
	return nil
}

func (w *Worker) complete(ctx context.Context, job *river.Job[Args], task carrier.Task) error {
	if err := w.cfg.Completer.Complete(ctx, job.ID, job.Args.OrderID, task); err != nil {
		return fmt.Errorf("record dispatch of order %d: %w", job.Args.OrderID, err)
	}
	return nil
}

// call runs one carrier operation, waiting out 429s in place so they use up no attempt, and
// snoozing the job when the wait would outlast it.
func (w *Worker) call(ctx context.Context, carrierName, op string, fn func(context.Context) error) error {
	for {
		err := fn(ctx)
		class := carrier.ClassOf(err)
		if err == nil {
			w.cfg.Hooks.CarrierRequest(carrierName, op, "ok")
			w.cfg.Hooks.CarrierAuth(ctx, carrierName, true)
			return nil
		}
		w.cfg.Hooks.CarrierRequest(carrierName, op, class.String())
		if class == carrier.Unauthorized {
			w.cfg.Hooks.CarrierAuth(ctx, carrierName, false)
		}
		if class != carrier.RateLimited {
			return err
		}
		wait := w.cfg.RateLimitWait
		var ce *carrier.Error
		if errors.As(err, &ce) && ce.RetryAfter > 0 {
			wait = ce.RetryAfter
		}
		wait += time.Duration(rand.Int64N(int64(wait)/2 + 1))
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < 2*wait {
			return river.JobSnooze(wait)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
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
