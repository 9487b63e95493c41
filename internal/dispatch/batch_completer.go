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
// leaves either both or neither (and a retried job finds its task by metadata). It also loads
// orders for the workers, a batch at a time.
type BatchCompleter struct {
	pool      *pgxpool.Pool
	schema    string
	queries   *dbsqlc.Queries
	logger    *slog.Logger
	hooks     Hooks
	client    *river.Client[pgx.Tx]
	completer *batcher[completion, struct{}]
	loader    *batcher[int64, loadedOrder]
}

type completion struct {
	job     *rivertype.JobRow
	orderID int64
	task    carrier.Task
}

// loadedOrder is an order as dispatch needs it; found is false when the row is gone.
type loadedOrder struct {
	row   dbsqlc.OrderGetForDispatchManyRow
	found bool
}

// NewBatchCompleter makes a completer for River jobs in schema; call SetClient before Run.
func NewBatchCompleter(pool *pgxpool.Pool, schema string, hooks Hooks, logger *slog.Logger) *BatchCompleter {
	c := &BatchCompleter{
		pool:    pool,
		schema:  schema,
		queries: dbsqlc.New(),
		logger:  logger,
		hooks:   hooksOrNop(hooks),
	}
	c.completer = newBatcher(500, c.flush)
	c.loader = newBatcher(500, c.load)
	return c
}

// SetClient gives the completer the River client whose jobs it completes. The client is built
// after the workers that use this completer, hence a setter.
func (c *BatchCompleter) SetClient(client *river.Client[pgx.Tx]) { c.client = client }

// Complete queues the job's completion and waits until its batch commits. If ctx ends first,
// the batch may still commit; if it does not, the retry finds the task by metadata.
func (c *BatchCompleter) Complete(ctx context.Context, job *rivertype.JobRow, orderID int64, task carrier.Task) error {
	_, err := c.completer.do(ctx, completion{job: job, orderID: orderID, task: task})
	return err
}

// Load reads one order for dispatch, in a batch with other workers' reads.
func (c *BatchCompleter) Load(ctx context.Context, orderID int64) (dbsqlc.OrderGetForDispatchManyRow, bool, error) {
	o, err := c.loader.do(ctx, orderID)
	return o.row, o.found, err
}

// Run serves batches until ctx ends.
func (c *BatchCompleter) Run(ctx context.Context) {
	if c.client == nil {
		panic("dispatch: BatchCompleter.Run before SetClient")
	}
	done := make(chan struct{})
	go func() { defer close(done); c.loader.loop(ctx) }()
	c.completer.loop(ctx)
	<-done
}

func (c *BatchCompleter) load(ctx context.Context, ids []int64) ([]loadedOrder, error) {
	rows, err := c.queries.OrderGetForDispatchMany(ctx, c.pool, ids)
	if err != nil {
		return nil, fmt.Errorf("load orders for dispatch: %w", err)
	}
	byID := make(map[int64]dbsqlc.OrderGetForDispatchManyRow, len(rows))
	for _, r := range rows {
		byID[r.ID] = r
	}
	out := make([]loadedOrder, len(ids))
	for i, id := range ids {
		out[i].row, out[i].found = byID[id]
	}
	return out, nil
}

func (c *BatchCompleter) flush(ctx context.Context, batch []completion) ([]struct{}, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
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
		// A completion lost in a crash leaves its jobs running: they are rescued and retried,
		// and the retry finds the task by metadata. So this commit need not wait for the WAL
		// flush, which is most of its cost.
		if err := c.queries.TxCommitAsync(ctx, tx); err != nil {
			return err
		}
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
		return nil, err
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
	return make([]struct{}, len(batch)), nil
}
