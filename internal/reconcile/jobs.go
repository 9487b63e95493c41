package reconcile

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/waybill/waybill/internal/carrier"
	"github.com/waybill/waybill/internal/carrier/onfleet"
	"github.com/waybill/waybill/internal/ratelimit"
)

// QueueReconcile is the River queue of reconciliation cycles and webhook checks: one worker.
const QueueReconcile = "reconcile"

// uniqueWhileQueued: at most one job of a kind waits or runs at a time.
var uniqueWhileQueued = river.UniqueOpts{ByState: []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning, rivertype.JobStateScheduled,
}}

// CycleArgs is one reconciliation cycle (periodic, on the leader).
type CycleArgs struct{}

func (CycleArgs) Kind() string { return "reconcile_cycle" }

// InsertOpts: one attempt; the next period's cycle picks up whatever this one left.
func (CycleArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueReconcile, MaxAttempts: 1, UniqueOpts: uniqueWhileQueued}
}

// WebhookCheckArgs checks the carriers' webhook registrations (periodic, on the leader).
type WebhookCheckArgs struct{}

func (WebhookCheckArgs) Kind() string { return "carrier_webhook_check" }

func (WebhookCheckArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueReconcile, MaxAttempts: 1, UniqueOpts: uniqueWhileQueued}
}

type cycleWorker struct {
	river.WorkerDefaults[CycleArgs]
	r *Reconciler
}

// Work runs a cycle. A failure (the carrier refusing or timing out) is logged, not retried:
// the next period's cycle asks again, and waybill_reconcile_lag_seconds shows the delay. (A
// discarded job would be a dead letter, an alarm about nothing an operator can redrive.)
func (w *cycleWorker) Work(ctx context.Context, _ *river.Job[CycleArgs]) error {
	res, err := w.r.Cycle(ctx)
	if err != nil {
		w.r.cfg.Logger.WarnContext(ctx, "reconciliation cycle failed; the next one asks again", "error", err)
		return nil
	}
	for carrier, r := range res {
		if r.Due > 0 {
			w.r.cfg.Logger.InfoContext(ctx, "reconciliation cycle", "carrier", carrier, "due", r.Due, "checked", r.Checked,
				"changes", r.Events, "requests", r.Requests, "method", r.Method)
		}
	}
	return nil
}

// Timeout: the cycle bounds itself by its budget; a little more for its last write.
func (w *cycleWorker) Timeout(*river.Job[CycleArgs]) time.Duration {
	return w.r.cfg.Budget + 15*time.Second
}

// WebhookCheckConfig configures the periodic webhook check.
type WebhookCheckConfig struct {
	Pool    *pgxpool.Pool
	Onfleet WebhookManager // nil: Onfleet is not checked
	// URL is the webhook URL expected (WebhookURL of WAYBILL_PUBLIC_URL); "" matches any URL
	// with Waybill's path.
	URL string
}

type webhookCheckWorker struct {
	river.WorkerDefaults[WebhookCheckArgs]
	cfg WebhookCheckConfig
}

func (w *webhookCheckWorker) Work(ctx context.Context, _ *river.Job[WebhookCheckArgs]) error {
	if w.cfg.Onfleet == nil {
		return nil
	}
	cctx := ratelimit.Patient(carrier.WithPriority(ctx, ratelimit.Low))
	rep, err := CheckOnfleetWebhooks(cctx, w.cfg.Onfleet, w.cfg.URL)
	rep.URL = w.cfg.URL
	return SaveWebhookReport(ctx, w.cfg.Pool, onfleet.Name, rep, err, time.Now())
}

func (w *webhookCheckWorker) Timeout(*river.Job[WebhookCheckArgs]) time.Duration { return time.Minute }

// AddWorkers registers the cycle's and the webhook check's workers.
func AddWorkers(workers *river.Workers, r *Reconciler, check WebhookCheckConfig) {
	river.AddWorker(workers, &cycleWorker{r: r})
	river.AddWorker(workers, &webhookCheckWorker{cfg: check})
}

// PeriodicJobs runs a cycle every interval and the webhook check every checkInterval, each also
// when a client becomes leader. River enqueues periodic jobs on the elected leader only.
func PeriodicJobs(interval, checkInterval time.Duration) []*river.PeriodicJob {
	return []*river.PeriodicJob{
		river.NewPeriodicJob(river.PeriodicInterval(interval),
			func() (river.JobArgs, *river.InsertOpts) { return CycleArgs{}, nil },
			&river.PeriodicJobOpts{ID: "reconcile_cycle", RunOnStart: true}),
		river.NewPeriodicJob(river.PeriodicInterval(checkInterval),
			func() (river.JobArgs, *river.InsertOpts) { return WebhookCheckArgs{}, nil },
			&river.PeriodicJobOpts{ID: "carrier_webhook_check", RunOnStart: true}),
	}
}
