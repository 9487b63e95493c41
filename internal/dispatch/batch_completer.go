package dispatch

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/waybill/waybill/internal/batch"
	"github.com/waybill/waybill/internal/carrier"
	"github.com/waybill/waybill/internal/dbsqlc"
)

// BatchCompleter records carriers' answers: in one statement per batch it stores carrier_ref,
// tracking_url, status and dispatched_at on the orders AND ends their jobs. One
// commit per batch instead of one per order is what lets dispatch keep up with thousands of
// orders a second; the order update and its job's end still commit together, so a crash
// leaves either both or neither (and a retried job finds its task by metadata). It also loads
// orders for the workers, a batch at a time.
type BatchCompleter struct {
	pool      *pgxpool.Pool
	queries   *dbsqlc.Queries
	logger    *slog.Logger
	hooks     Hooks
	completer *batch.Batcher[completion, struct{}]
	loader    *batch.Batcher[int64, loadedOrder]
}

type completion struct {
	jobID   int64
	orderID int64
	task    carrier.Task
}

// loadedOrder is an order as dispatch needs it; found is false when the row is gone.
type loadedOrder struct {
	row   dbsqlc.OrderGetForDispatchManyRow
	found bool
}

// NewBatchCompleter makes a completer for the dispatch jobs of waybill.river_job.
func NewBatchCompleter(pool *pgxpool.Pool, hooks Hooks, logger *slog.Logger) *BatchCompleter {
	c := &BatchCompleter{
		pool:    pool,
		queries: dbsqlc.New(),
		logger:  logger,
		hooks:   hooksOrNop(hooks),
	}
	c.completer = batch.New(500, c.flush)
	c.loader = batch.New(500, c.load)
	return c
}

// Complete queues the job's completion and waits until its batch commits. If ctx ends first,
// the batch may still commit; if it does not, the retry finds the task by metadata.
func (c *BatchCompleter) Complete(ctx context.Context, jobID, orderID int64, task carrier.Task) error {
	_, err := c.completer.Do(ctx, completion{jobID: jobID, orderID: orderID, task: task})
	return err
}

// Load reads one order for dispatch, in a batch with other workers' reads.
func (c *BatchCompleter) Load(ctx context.Context, orderID int64) (dbsqlc.OrderGetForDispatchManyRow, bool, error) {
	o, err := c.loader.Do(ctx, orderID)
	return o.row, o.found, err
}

// Run serves batches until ctx ends.
func (c *BatchCompleter) Run(ctx context.Context) {
	done := make(chan struct{})
	go func() { defer close(done); c.loader.Loop(ctx) }()
	c.completer.Loop(ctx)
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

func (c *BatchCompleter) flush(ctx context.Context, comps []completion) ([]struct{}, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()

	params := dbsqlc.OrderMarkDispatchedManyParams{
		JobIds:       make([]int64, len(comps)),
		Ids:          make([]int64, len(comps)),
		CarrierRefs:  make([]string, len(comps)),
		TrackingUrls: make([]string, len(comps)),
	}
	for i, comp := range comps {
		params.JobIds[i] = comp.jobID
		params.Ids[i] = comp.orderID
		params.CarrierRefs[i] = comp.task.ID
		params.TrackingUrls[i] = comp.task.TrackingURL
	}

	var rows []dbsqlc.OrderMarkDispatchedManyRow
	err := pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		// A commit lost in a crash leaves its jobs running: they are rescued and retried, and the
		// retry finds the task by metadata. So this commit need not wait for the WAL flush,
		// which is most of its cost.
		if err := c.queries.TxCommitAsync(ctx, tx); err != nil {
			return err
		}
		var err error
		if rows, err = c.queries.OrderMarkDispatchedMany(ctx, tx, params); err != nil {
			return fmt.Errorf("record dispatched orders: %w", err)
		}
		return nil
	})
	if err != nil {
		c.logger.ErrorContext(ctx, "dispatch batch failed; its jobs will retry", "batch_size", len(comps), "error", err)
		return nil, err
	}
	for _, r := range rows {
		if r.DispatchedAt != nil {
			c.hooks.Dispatched(r.CreatedAt, *r.DispatchedAt)
		}
	}
	if len(rows) != len(comps) {
		// An order row is gone (deleted by hand): its job is ended anyway, nothing to send.
		c.logger.WarnContext(ctx, "dispatched orders missing from waybill.orders", "expected", len(comps), "updated", len(rows))
	}
	return make([]struct{}, len(comps)), nil
}
