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

	"github.com/waybill/waybill/internal/batch"
	"github.com/waybill/waybill/internal/carrier"
	"github.com/waybill/waybill/internal/dbsqlc"
)

// Deps are what the translate and act workers need.
type Deps struct {
	Pool    *pgxpool.Pool
	Sources carrier.Sources
	Logger  *slog.Logger
	// CallbackEnabled: WAYBILL_CALLBACK_URL is set, so every status change also enqueues a
	// notify.CallbackArgs job.
	CallbackEnabled bool
	// KeepFinishedJobs completes translate and act jobs instead of deleting them, so River UI
	// shows them (WAYBILL_KEEP_FINISHED_JOBS, for `waybill dev`).
	KeepFinishedJobs bool
	// Batches settles dispatch batches from the carrier's job-completed webhook (Onfleet
	// trigger 19); nil ignores such webhooks (the dispatcher's poll settles the batch).
	Batches BatchSettler
}

// BatchSettler records the results of a carrier's batch job (dispatch.Dispatcher).
type BatchSettler interface {
	SettleFromWebhook(ctx context.Context, carrier, jobID string, res carrier.BatchResult) error
}

// Pipeline is the translate and act steps: their River workers, and the batches that let the
// running jobs of a step share one transaction (see Run).
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
	// One pipeline transaction at a time: intake answers carriers only after its own commit,
	// while translate and act can wait. The turn leaves intake the rest of the CPU (with a turn
	// per step instead, intake on two cores fell from 3,000 to 2,300 events/s), and a step's
	// batch grows while it waits for it.
	turn := make(chan struct{}, 1)
	t := &translateWorker{deps: deps, queries: dbsqlc.New()}
	t.step = newStep(deps, turn, t.translate)
	a := &actWorker{deps: deps, queries: dbsqlc.New()}
	a.step = newStep(deps, turn, a.act)
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
// time share one transaction, which does their work and completes them all, and one such
// transaction runs at a time. End ctx only once River has stopped. Without Run, each job has a
// transaction of its own.
func (p *Pipeline) Run(ctx context.Context) {
	done := make(chan struct{})
	go func() { defer close(done); p.translate.step.run(ctx) }()
	p.act.step.run(ctx)
	<-done
}

// Queues configures the pipeline's two River queues with maxWorkers each. With Run, a step's
// running jobs wait for its next batch, so maxWorkers bounds the batch, not the connections
// used. The jobs of a queue are fetched at most every fetchCooldown, many at a time.
func Queues(maxWorkers int) map[string]river.QueueConfig {
	q := river.QueueConfig{MaxWorkers: maxWorkers, FetchCooldown: fetchCooldown, FetchPollInterval: 2 * fetchCooldown}
	return map[string]river.QueueConfig{QueueTranslate: q, QueueAct: q}
}

const (
	// fetchCooldown: at thousands of events a second, each fetch takes hundreds of jobs (fewer,
	// larger fetches and batches), and a step waits at most this long for its next fetch.
	fetchCooldown = 100 * time.Millisecond
	// maxStepBatch bounds the jobs of one step transaction.
	maxStepBatch = 500
)

// stepJob is a job on its way into its step's batch, with the client running it (which enqueues
// the jobs that follow).
type stepJob[T river.JobArgs] struct {
	job    *river.Job[T]
	client *river.Client[pgx.Tx]
}

// step runs a step's jobs in batches: one transaction does the work of all of them and completes
// them all, so the step's effects and its jobs' completion commit together, as for a job alone.
// A batch that fails is run again one job at a time, so a job that fails fails alone.
type step[T river.JobArgs] struct {
	pool    *pgxpool.Pool
	logger  *slog.Logger
	do      func(ctx context.Context, tx pgx.Tx, jobs []stepJob[T]) error
	batches *batch.Batcher[stepJob[T], error]
	running atomic.Bool   // run is serving batches; a hint only, see work
	turn    chan struct{} // held by the pipeline's one running transaction
	keep    bool          // complete jobs instead of deleting them (Deps.KeepFinishedJobs)
}

func newStep[T river.JobArgs](deps Deps, turn chan struct{}, do func(context.Context, pgx.Tx, []stepJob[T]) error) *step[T] {
	s := &step[T]{pool: deps.Pool, logger: deps.Logger, do: do, turn: turn, keep: deps.KeepFinishedJobs}
	s.batches = batch.New(maxStepBatch, s.flush)
	return s
}

// work runs job in the step's next batch, or alone when no batches are served: before run, or
// once it has stopped (batch.ErrStopped: the job's batch never ran). Either way its transaction
// holds the pipeline's turn: whatever the flag said when it was read, two pipeline transactions
// never run at once.
func (s *step[T]) work(ctx context.Context, job *river.Job[T]) error {
	j := stepJob[T]{job: job, client: river.ClientFromContext[pgx.Tx](ctx)}
	if s.running.Load() {
		jobErr, err := s.batches.Do(ctx, j)
		if !errors.Is(err, batch.ErrStopped) {
			if err != nil {
				return err
			}
			return jobErr
		}
	}
	return s.alone(ctx, j)
}

// alone runs j in a transaction of its own, in the pipeline's turn.
func (s *step[T]) alone(ctx context.Context, j stepJob[T]) error {
	if err := s.takeTurn(ctx); err != nil {
		return err
	}
	defer s.giveTurn()
	return s.inTx(ctx, []stepJob[T]{j})
}

// takeTurn waits for the pipeline's one transaction slot; giveTurn hands it back.
func (s *step[T]) takeTurn(ctx context.Context) error {
	select {
	case s.turn <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *step[T]) giveTurn() { <-s.turn }

func (s *step[T]) run(ctx context.Context) {
	s.running.Store(true)
	defer s.running.Store(false)
	s.batches.Loop(ctx)
}

// flush runs one batch when it is the pipeline's turn; each job gets its own error.
func (s *step[T]) flush(ctx context.Context, jobs []stepJob[T]) ([]error, error) {
	if err := s.takeTurn(ctx); err != nil {
		return nil, err
	}
	defer s.giveTurn()
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
func (s *step[T]) inTx(ctx context.Context, jobs []stepJob[T]) error {
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
		ids := make([]int64, len(jobs))
		for i, j := range jobs {
			ids[i] = j.job.ID
		}
		if err := dbsqlc.New().WebhookJobDeleteRunning(ctx, tx, dbsqlc.WebhookJobDeleteRunningParams{Ids: ids, Keep: s.keep}); err != nil {
			return fmt.Errorf("complete jobs: %w", err)
		}
		return nil
	})
}
