package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/waybill/waybill/internal/dbsqlc"
)

// Deps are what the translate and act workers need.
type Deps struct {
	Pool    *pgxpool.Pool
	Sources Sources
	Logger  *slog.Logger
	// CallbackEnabled: WAYBILL_CALLBACK_URL is set, so every status change also enqueues a
	// notify.CallbackArgs job.
	CallbackEnabled bool
}

// AddWorkers registers the translate and act workers. Their jobs enqueue notify.EmailArgs,
// notify.SlackArgs and notify.CallbackArgs, whose workers must be registered on the same client.
func AddWorkers(workers *river.Workers, deps Deps) error {
	if deps.Pool == nil || deps.Logger == nil {
		return errors.New("webhook workers: Pool and Logger are required")
	}
	if err := river.AddWorkerSafely(workers, &translateWorker{deps: deps, queries: dbsqlc.New()}); err != nil {
		return fmt.Errorf("webhook workers: %w", err)
	}
	if err := river.AddWorkerSafely(workers, &actWorker{deps: deps, queries: dbsqlc.New()}); err != nil {
		return fmt.Errorf("webhook workers: %w", err)
	}
	return nil
}

// Queues configures the pipeline's two River queues with maxWorkers each.
func Queues(maxWorkers int) map[string]river.QueueConfig {
	return map[string]river.QueueConfig{
		QueueTranslate: {MaxWorkers: maxWorkers},
		QueueAct:       {MaxWorkers: maxWorkers},
	}
}

// inTx runs fn in a transaction that also completes the job, so the step's effects and the
// job's completion commit together: a crash never leaves a step done but its job pending (or
// the reverse), and a rescued job finds nothing left to do.
func inTx[T river.JobArgs](ctx context.Context, pool *pgxpool.Pool, job *river.Job[T], fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// Translate and act are idempotent: a commit lost in a crash is redone by the job.
		if err := dbsqlc.New().TxCommitAsync(ctx, tx); err != nil {
			return err
		}
		if err := fn(tx); err != nil {
			return err
		}
		if _, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job); err != nil {
			return fmt.Errorf("complete job: %w", err)
		}
		return nil
	})
}
