package dispatch

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/waybill/waybill/internal/batch"
	"github.com/waybill/waybill/internal/carrier"
	"github.com/waybill/waybill/internal/dbsqlc"
	"github.com/waybill/waybill/internal/orders"
)

// Store is dispatch's side of waybill.orders, in group commits: it loads orders for the
// workers, a batch at a time, and records carriers' answers, in one statement per batch that
// stores carrier_ref, tracking_url, status and dispatched_at on the orders AND ends their jobs.
// One commit per batch instead of one per order is what lets dispatch keep up with thousands of
// orders a second; the order update and its job's end still commit together, so a crash leaves
// either both or neither (and the order's unfinished batch is settled before it is sent again).
type Store struct {
	pool      *pgxpool.Pool
	queries   *dbsqlc.Queries
	logger    *slog.Logger
	hooks     Hooks
	keep      bool
	completer *batch.Batcher[completion, struct{}]
	loader    *batch.Batcher[loadRequest, loadedOrder]
}

// loadRequest asks for one order; inBatch asks whether it sits in an unfinished carrier batch.
type loadRequest struct {
	orderID int64
	inBatch bool
}

// StoreConfig wires a Store.
type StoreConfig struct {
	Pool   *pgxpool.Pool
	Hooks  Hooks
	Logger *slog.Logger
	// KeepFinishedJobs completes dispatch jobs instead of deleting them, so River UI shows them
	// until River's cleaner does (WAYBILL_KEEP_FINISHED_JOBS, for `waybill dev`).
	KeepFinishedJobs bool
}

type completion struct {
	jobID   int64
	orderID int64
	task    carrier.Task
	// batchID is the batch of one the order went out in, finished in the same transaction.
	batchID int64
	// recorded: the order row already says so (its batch's settlement wrote it); only the job
	// is ended.
	recorded bool
}

// LoadedOrder is an order as dispatch needs it: the order, and the unfinished carrier batch it
// sits in (0 for none, or when not asked).
type LoadedOrder struct {
	orders.Order
	BatchID int64
}

type loadedOrder struct {
	order LoadedOrder
	found bool // false when the row is gone
}

// loadedFromRow turns the query's row into orders' types, here at the package's edge.
func loadedFromRow(r dbsqlc.OrderGetForDispatchManyRow) LoadedOrder {
	o := LoadedOrder{BatchID: r.BatchID, Order: orders.Order{
		ID: r.ID, Kind: orders.Kind(r.Kind), Payload: r.Payload, Status: orders.Status(r.Status),
	}}
	if r.StatusReason != nil {
		o.StatusReason = *r.StatusReason
	}
	if r.CarrierRef != nil {
		o.CarrierRef = *r.CarrierRef
	}
	if r.TrackingUrl != nil {
		o.TrackingURL = *r.TrackingUrl
	}
	return o
}

// NewStore makes dispatch's store of orders; call Run to serve its batches.
func NewStore(cfg StoreConfig) *Store {
	c := &Store{
		pool:    cfg.Pool,
		queries: dbsqlc.New(),
		logger:  cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)),
		hooks:   hooksOrNop(cfg.Hooks),
		keep:    cfg.KeepFinishedJobs,
	}
	c.completer = batch.New(500, c.flush)
	c.loader = batch.New(500, c.load)
	return c
}

// Complete records that the order's task exists, ends its job and finishes the order's batch
// of one (batchID, 0 for none), in the next group commit, and waits until it commits. If ctx
// ends first, the commit may still happen; if it does not, the retry settles the unfinished
// batch by a lookup.
func (c *Store) Complete(ctx context.Context, jobID, orderID int64, task carrier.Task, batchID int64) error {
	_, err := c.completer.Do(ctx, completion{jobID: jobID, orderID: orderID, task: task, batchID: batchID})
	return err
}

// End ends the job of an order whose row already records its outcome.
func (c *Store) End(ctx context.Context, jobID int64) error {
	_, err := c.completer.Do(ctx, completion{jobID: jobID, recorded: true})
	return err
}

// Load reads one order for dispatch, in a batch with other workers' reads. With mayBeSent (the
// job ran before: an attempt, a snooze or an error) it also finds the unfinished carrier batch
// the order may sit in (row.BatchID); on a job's first run no request can have carried it.
func (c *Store) Load(ctx context.Context, orderID int64, mayBeSent bool) (LoadedOrder, bool, error) {
	o, err := c.loader.Do(ctx, loadRequest{orderID: orderID, inBatch: mayBeSent})
	return o.order, o.found, err
}

// Run serves batches until ctx ends.
func (c *Store) Run(ctx context.Context) {
	done := make(chan struct{})
	go func() { defer close(done); c.loader.Loop(ctx) }()
	c.completer.Loop(ctx)
	<-done
}

func (c *Store) load(ctx context.Context, reqs []loadRequest) ([]loadedOrder, error) {
	params := dbsqlc.OrderGetForDispatchManyParams{Ids: make([]int64, len(reqs)), CheckIds: []int64{}}
	for i, r := range reqs {
		params.Ids[i] = r.orderID
		if r.inBatch {
			params.CheckIds = append(params.CheckIds, r.orderID)
		}
	}
	rows, err := c.queries.OrderGetForDispatchMany(ctx, c.pool, params)
	if err != nil {
		return nil, fmt.Errorf("load orders for dispatch: %w", err)
	}
	byID := make(map[int64]LoadedOrder, len(rows))
	for _, r := range rows {
		byID[r.ID] = loadedFromRow(r)
	}
	out := make([]loadedOrder, len(reqs))
	for i, r := range reqs {
		out[i].order, out[i].found = byID[r.orderID]
	}
	return out, nil
}

func (c *Store) flush(ctx context.Context, comps []completion) ([]struct{}, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()

	params := dbsqlc.OrderMarkDispatchedManyParams{
		Keep:         c.keep,
		JobIds:       make([]int64, 0, len(comps)),
		Ids:          make([]int64, 0, len(comps)),
		CarrierRefs:  make([]string, 0, len(comps)),
		TrackingUrls: make([]string, 0, len(comps)),
	}
	var batchIDs []int64
	for _, comp := range comps {
		params.JobIds = append(params.JobIds, comp.jobID)
		if comp.batchID != 0 {
			batchIDs = append(batchIDs, comp.batchID)
		}
		if comp.recorded {
			continue
		}
		params.Ids = append(params.Ids, comp.orderID)
		params.CarrierRefs = append(params.CarrierRefs, comp.task.ID)
		params.TrackingUrls = append(params.TrackingUrls, comp.task.TrackingURL)
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
		if len(batchIDs) > 0 {
			if err := c.queries.DispatchBatchFinishAnswered(ctx, tx, batchIDs); err != nil {
				return fmt.Errorf("finish dispatch batches: %w", err)
			}
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
	if len(rows) != len(params.Ids) {
		// An order row is gone (deleted by hand): its job is ended anyway, nothing to send.
		c.logger.WarnContext(ctx, "dispatched orders missing from waybill.orders", "expected", len(params.Ids), "updated", len(rows))
	}
	return make([]struct{}, len(comps)), nil
}
