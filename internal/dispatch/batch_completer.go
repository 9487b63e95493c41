package dispatch

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivertype"

	"github.com/waybill/waybill/internal/carrier"
	"github.com/waybill/waybill/internal/dbsqlc"
)

// BatchCompleter records carriers' answers: in one transaction per batch it stores carrier_ref,
// tracking_url, status and dispatched_at on the orders AND marks their jobs completed. One
// commit per batch instead of one per order is what lets dispatch keep up with thousands of
// orders a second; the order update and its job completion still commit together, so a crash
// leaves either both or neither (and a retried job finds its task by metadata).
type BatchCompleter struct {
	pool     *pgxpool.Pool
	schema   string
	queries  *dbsqlc.Queries
	logger   *slog.Logger
	hooks    Hooks
	client   *river.Client[pgx.Tx]
	in       chan *completion
	maxBatch int
}

type completion struct {
	job     *rivertype.JobRow
	orderID int64
	task    carrier.Task
	done    chan error
}

// NewBatchCompleter makes a completer for River jobs in schema; call SetClient before Run.
func NewBatchCompleter(pool *pgxpool.Pool, schema string, hooks Hooks, logger *slog.Logger) *BatchCompleter {
	return &BatchCompleter{
		pool:     pool,
		schema:   schema,
		queries:  dbsqlc.New(),
		logger:   logger,
		hooks:    hooksOrNop(hooks),
		in:       make(chan *completion, 1024),
		maxBatch: 500,
	}
}

// SetClient gives the completer the River client whose jobs it completes. The client is built
// after the workers that use this completer, hence a setter.
func (c *BatchCompleter) SetClient(client *river.Client[pgx.Tx]) { c.client = client }

// Complete queues the job's completion and waits until its batch commits.
func (c *BatchCompleter) Complete(ctx context.Context, job *rivertype.JobRow, orderID int64, task carrier.Task) error {
	comp := &completion{job: job, orderID: orderID, task: task, done: make(chan error, 1)}
	select {
	case c.in <- comp:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-comp.done:
		return err
	case <-ctx.Done():
		// The batch may still commit; if it does not, the retry finds the task by metadata.
		return ctx.Err()
	}
}

// Run flushes batches until ctx ends. Batches form by themselves: while one flush is in flight,
// arrivals queue up and go together in the next, so a quiet system flushes at once and a busy
// one in large batches. Two flushers overlap one batch's commit with the next batch's build.
func (c *BatchCompleter) Run(ctx context.Context) {
	if c.client == nil {
		panic("dispatch: BatchCompleter.Run before SetClient")
	}
	const flushers = 2
	done := make(chan struct{})
	for range flushers {
		go func() {
			defer func() { done <- struct{}{} }()
			batch := make([]*completion, 0, c.maxBatch)
			for {
				select {
				case <-ctx.Done():
					return
				case first := <-c.in:
					batch = append(batch[:0], first)
				}
			fill:
				for len(batch) < c.maxBatch {
					select {
					case next := <-c.in:
						batch = append(batch, next)
					default:
						break fill
					}
				}
				err := c.flush(ctx, batch)
				for _, comp := range batch {
					comp.done <- err
				}
			}
		}()
	}
	for range flushers {
		<-done
	}
}

func (c *BatchCompleter) flush(ctx context.Context, batch []*completion) error {
	// Finish a started batch even while shutting down: its carrier calls already happened.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()

	params := dbsqlc.OrderMarkDispatchedManyParams{
		Ids:          make([]int64, len(batch)),
		CarrierRefs:  make([]string, len(batch)),
		TrackingUrls: make([]string, len(batch)),
	}
	jobs := &riverdriver.JobSetStateIfRunningManyParams{Schema: c.schema}
	now := time.Now().UTC()
	for i, comp := range batch {
		params.Ids[i] = comp.orderID
		params.CarrierRefs[i] = comp.task.ID
		params.TrackingUrls[i] = comp.task.TrackingURL
		p := riverdriver.JobSetStateCompleted(comp.job.ID, now, nil)
		jobs.ID = append(jobs.ID, p.ID)
		jobs.Attempt = append(jobs.Attempt, p.Attempt)
		jobs.ErrData = append(jobs.ErrData, p.ErrData)
		jobs.FinalizedAt = append(jobs.FinalizedAt, p.FinalizedAt)
		jobs.MetadataDoMerge = append(jobs.MetadataDoMerge, false)
		jobs.MetadataUpdates = append(jobs.MetadataUpdates, nil)
		jobs.ScheduledAt = append(jobs.ScheduledAt, p.ScheduledAt)
		jobs.State = append(jobs.State, p.State)
	}

	var rows []dbsqlc.OrderMarkDispatchedManyRow
	err := pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		var err error
		if rows, err = c.queries.OrderMarkDispatchedMany(ctx, tx, params); err != nil {
			return fmt.Errorf("record dispatched orders: %w", err)
		}
		// The same call River's JobCompleteTx makes, for the whole batch at once.
		exec := c.client.Driver().UnwrapExecutor(tx)
		if _, err := c.client.Pilot().JobSetStateIfRunningMany(ctx, exec, jobs); err != nil {
			return fmt.Errorf("complete dispatch jobs: %w", err)
		}
		return nil
	})
	if err != nil {
		c.logger.ErrorContext(ctx, "dispatch batch failed; its jobs will retry", "batch_size", len(batch), "error", err)
		return err
	}
	for _, r := range rows {
		if r.DispatchedAt != nil {
			c.hooks.Dispatched(r.CreatedAt, *r.DispatchedAt)
		}
	}
	if len(rows) != len(batch) {
		// An order row is gone (deleted by hand): its job is completed anyway, nothing to send.
		c.logger.WarnContext(ctx, "dispatched orders missing from waybill.orders", "expected", len(batch), "updated", len(rows))
	}
	return nil
}
