package alarm

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// QueueAlarm is the River queue of the alarm check. One worker is plenty.
const QueueAlarm = "alarm"

// CheckArgs is the periodic alarm check.
type CheckArgs struct{}

func (CheckArgs) Kind() string { return "alarm_check" }

// InsertOpts: at most one check waits or runs at a time, so a stalled alarm queue does not pile
// up checks. A check that fails is retried a few times; the next period's check runs anyway.
func (CheckArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue:       QueueAlarm,
		MaxAttempts: 3,
		UniqueOpts: river.UniqueOpts{ByState: []rivertype.JobState{
			rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning, rivertype.JobStateScheduled,
		}},
	}
}

// CheckWorker runs Checker.Check, enqueuing messages through the client working the job.
type CheckWorker struct {
	river.WorkerDefaults[CheckArgs]
	checker *Checker
}

func (w *CheckWorker) Work(ctx context.Context, _ *river.Job[CheckArgs]) error {
	return w.checker.Check(ctx, river.ClientFromContext[pgx.Tx](ctx))
}

// Timeout: a check is a handful of indexed queries; one that takes this long is stuck.
func (w *CheckWorker) Timeout(*river.Job[CheckArgs]) time.Duration { return time.Minute }

// AddWorkers registers the alarm check's worker.
func AddWorkers(workers *river.Workers, pool *pgxpool.Pool, cfg Config) {
	river.AddWorker(workers, &CheckWorker{checker: NewChecker(pool, cfg)})
}

// PeriodicJobs schedules the check every CheckInterval, and once when a client becomes leader.
// River enqueues periodic jobs on the elected leader only, so the check runs once across
// instances.
func PeriodicJobs(cfg Config) []*river.PeriodicJob {
	cfg = cfg.withDefaults()
	return []*river.PeriodicJob{river.NewPeriodicJob(
		river.PeriodicInterval(cfg.CheckInterval),
		func() (river.JobArgs, *river.InsertOpts) { return CheckArgs{}, nil },
		&river.PeriodicJobOpts{ID: "alarm_check", RunOnStart: true},
	)}
}
