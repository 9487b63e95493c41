package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivertype"

	"github.com/waybill/waybill/internal/batch"
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

// Pipeline is the translate and act steps: their River workers, and the batches that let
// concurrent jobs of a step share one transaction (see Run).
type Pipeline struct {
	translate *translateWorker
	act       *actWorker
}

// NewPipeline builds the translate and act workers. Register them with Add; serve their batches
// with Run.
func NewPipeline(deps Deps) (*Pipeline, error) {
	if deps.Pool == nil || deps.Logger == nil {
		return nil, errors.New("webhook workers: Pool and Logger are required")
	}
	t := &translateWorker{deps: deps, queries: dbsqlc.New()}
	t.steps = newSteps(deps, t.translate)
	a := &actWorker{deps: deps, queries: dbsqlc.New()}
	a.steps = newSteps(deps, a.act)
	return &Pipeline{translate: t, act: a}, nil
}

// Add registers the translate and act workers. Their jobs enqueue notify.EmailArgs,
// notify.SlackArgs and notify.CallbackArgs, whose workers must be registered on the same client.
func (p *Pipeline) Add(workers *river.Workers) error {
	if err := river.AddWorkerSafely(workers, p.translate); err != nil {
		return fmt.Errorf("webhook workers: %w", err)
	}
	if err := river.AddWorkerSafely(workers, p.act); err != nil {
		return fmt.Errorf("webhook workers: %w", err)
	}
	return nil
}

// Run serves the steps' batches until ctx ends: the jobs of a step that are running at the same
// time share one transaction, which does their work and completes them all. End ctx only once
// River has stopped. Without Run, each job has a transaction of its own.
func (p *Pipeline) Run(ctx context.Context) {
	done := make(chan struct{})
	go func() { defer close(done); p.translate.steps.run(ctx) }()
	p.act.steps.run(ctx)
	<-done
}

// AddWorkers registers translate and act workers whose jobs each run in a transaction of their
// own: NewPipeline and Add, without Run.
func AddWorkers(workers *river.Workers, deps Deps) error {
	p, err := NewPipeline(deps)
	if err != nil {
		return err
	}
	return p.Add(workers)
}

// Queues configures the pipeline's two River queues with maxWorkers each. With Run, a step's
// running jobs form its batches, so maxWorkers bounds the batch size, not the connections used.
func Queues(maxWorkers int) map[string]river.QueueConfig {
	q := river.QueueConfig{MaxWorkers: maxWorkers, FetchCooldown: fetchCooldown, FetchPollInterval: 2 * fetchCooldown}
	return map[string]river.QueueConfig{QueueTranslate: q, QueueAct: q}
}

// fetchCooldown: a step's jobs are fetched at most this often, so at thousands of events a
// second each fetch takes a large batch.
const fetchCooldown = 50 * time.Millisecond

// maxStepBatch bounds the jobs of one step transaction.
const maxStepBatch = 500

// stepJob is a job on its way into a step's batch, with the client that runs it (to enqueue the
// next step's jobs).
type stepJob[T river.JobArgs] struct {
	job    *river.Job[T]
	client *river.Client[pgx.Tx]
}

// steps runs one step's jobs in batches: one transaction does the work of all of them and
// completes them all, so the step's effects and its jobs' completion commit together, as for a
// job alone. A batch that fails is tried again one job at a time, so a job that fails fails alone.
type steps[T river.JobArgs] struct {
	pool    *pgxpool.Pool
	logger  *slog.Logger
	do      func(ctx context.Context, tx pgx.Tx, jobs []stepJob[T]) error
	batches *batch.Batcher[stepJob[T], error]
	running atomic.Bool
}

func newSteps[T river.JobArgs](deps Deps, do func(context.Context, pgx.Tx, []stepJob[T]) error) *steps[T] {
	s := &steps[T]{pool: deps.Pool, logger: deps.Logger, do: do}
	s.batches = batch.New(maxStepBatch, s.flush)
	return s
}

// work runs job in the next batch, or alone without run.
func (s *steps[T]) work(ctx context.Context, job *river.Job[T]) error {
	j := stepJob[T]{job: job, client: river.ClientFromContext[pgx.Tx](ctx)}
	if !s.running.Load() {
		return s.inTx(ctx, []stepJob[T]{j})
	}
	jobErr, err := s.batches.Do(ctx, j)
	if err != nil {
		return err
	}
	return jobErr
}

func (s *steps[T]) run(ctx context.Context) {
	s.running.Store(true)
	defer s.running.Store(false)
	s.batches.Loop(ctx)
}

// flush runs one batch; each job's error is its own.
func (s *steps[T]) flush(ctx context.Context, jobs []stepJob[T]) ([]error, error) {
	errs := make([]error, len(jobs))
	err := s.inTx(ctx, jobs)
	if err == nil || len(jobs) == 1 {
		for i := range errs {
			errs[i] = err
		}
		return errs, nil
	}
	s.logger.WarnContext(ctx, "webhook step batch failed; running its jobs one by one", "batch_size", len(jobs), "error", err)
	for i, j := range jobs {
		errs[i] = s.inTx(ctx, []stepJob[T]{j})
	}
	return errs, nil
}

// inTx runs the step for jobs in a transaction that also completes them, so the step's effects
// and the jobs' completion commit together: a crash never leaves a step done but its job pending
// (or the reverse), and a rescued job finds nothing left to do.
func (s *steps[T]) inTx(ctx context.Context, jobs []stepJob[T]) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Translate and act are idempotent: a commit lost in a crash is redone by the job.
		if err := dbsqlc.New().TxCommitAsync(ctx, tx); err != nil {
			return err
		}
		if err := s.do(ctx, tx, jobs); err != nil {
			return err
		}
		return completeJobs(ctx, tx, jobs)
	})
}

// completeJobs is river.JobCompleteTx for many jobs in one statement. A job that is no longer
// running (River gave up waiting for it, or a rescued copy ended it) is left as it is.
func completeJobs[T river.JobArgs](ctx context.Context, tx pgx.Tx, jobs []stepJob[T]) error {
	client := jobs[0].client
	if client == nil {
		return errors.New("complete jobs: no River client in the job's context")
	}
	now := time.Now()
	p := &riverdriver.JobSetStateIfRunningManyParams{Schema: client.Schema()}
	for _, j := range jobs {
		if j.job.State != rivertype.JobStateRunning {
			return fmt.Errorf("complete job %d: job must be running", j.job.ID)
		}
		p.ID = append(p.ID, j.job.ID)
		p.Attempt = append(p.Attempt, nil)
		p.ErrData = append(p.ErrData, nil)
		p.FinalizedAt = append(p.FinalizedAt, &now)
		p.MetadataDoMerge = append(p.MetadataDoMerge, false)
		p.MetadataUpdates = append(p.MetadataUpdates, nil)
		p.ScheduledAt = append(p.ScheduledAt, nil)
		p.State = append(p.State, rivertype.JobStateCompleted)
	}
	if _, err := client.Pilot().JobSetStateIfRunningMany(ctx, client.Driver().UnwrapExecutor(tx), p); err != nil {
		return fmt.Errorf("complete jobs: %w", err)
	}
	return nil
}
