package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/waybill/waybill/internal/carrier"
	"github.com/waybill/waybill/internal/dbsqlc"
	"github.com/waybill/waybill/internal/ratelimit"
)

// item is one order waiting for its carrier request.
type item struct {
	req   carrier.Request
	jobID int64
	// alone: send this order in a request of its own (its batch was refused as a whole, so
	// that the order at fault gets its own answer).
	alone bool
	done  chan outcome // buffered: the sender never blocks on a waiter that left
}

// outcome is what became of one order's carrier request. By the time it is delivered, the
// order row records it (dispatched or rejected) and, for a created task, its job has ended.
type outcome struct {
	created bool
	// refused is the carrier's reason for refusing the order (recorded as rejected).
	refused string
	// resend: the carrier does not have the task; send the order again.
	resend bool
	// err: the request failed; the job decides (retry, snooze, reject) as for a single call.
	err error
}

// collector gathers one carrier's orders into requests: group commit applied to carrier calls.
// While the limit withholds a token, or every request slot is busy, orders queue up, and the
// next request takes all of them (up to the carrier's maximum). A lone order goes out at once.
type collector struct {
	d       *Dispatcher
	carrier carrier.Carrier
	batcher carrier.BatchCarrier     // nil: no async batches
	syncer  carrier.SyncBatchCarrier // nil: no synchronous batches
	limiter carrier.Limiter          // nil: no limit
	name    string

	mu    sync.Mutex
	queue []*item
	wake  chan struct{}
	slots chan struct{} // requests in flight
}

func newCollector(d *Dispatcher, c carrier.Carrier, limiter carrier.Limiter, inFlight int) *collector {
	col := &collector{
		d: d, carrier: c, limiter: limiter, name: c.Name(),
		wake:  make(chan struct{}, 1),
		slots: make(chan struct{}, inFlight),
	}
	if bc, ok := c.(carrier.BatchCarrier); ok && bc.MaxBatch() > 1 {
		col.batcher = bc
	} else if sc, ok := c.(carrier.SyncBatchCarrier); ok && sc.MaxBatch() > 1 {
		col.syncer = sc
	}
	return col
}

// maxBatch is the most orders one request may carry.
func (c *collector) maxBatch() int {
	switch {
	case c.batcher != nil:
		return c.batcher.MaxBatch()
	case c.syncer != nil:
		return c.syncer.MaxBatch()
	}
	return 1
}

func (c *collector) submit(it *item) {
	c.mu.Lock()
	c.queue = append(c.queue, it)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// requeue puts items back at the head of the queue (the carrier said "not now").
func (c *collector) requeue(items []*item) {
	c.mu.Lock()
	c.queue = append(items, c.queue...)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// take removes the next request's orders from the queue.
func (c *collector) take() []*item {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) == 0 {
		return nil
	}
	limit := 1
	if !c.queue[0].alone {
		limit = c.maxBatch()
	}
	var out []*item
	rest := c.queue[:0]
	for _, it := range c.queue {
		if len(out) < limit && (limit == 1 || !it.alone) {
			out = append(out, it)
		} else {
			rest = append(rest, it)
		}
	}
	clear(c.queue[len(rest):])
	c.queue = rest
	return out
}

func (c *collector) queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

// run sends requests until ctx ends: wait for an order, a request slot and a token (in that
// order, so that the batch grows while it waits), then take everything queued.
func (c *collector) run(ctx context.Context) {
	for {
		for c.queued() == 0 {
			select {
			case <-c.wake:
			case <-ctx.Done():
				return
			}
		}
		select {
		case c.slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		if c.limiter != nil {
			if err := c.limiter.Wait(ctx, ratelimit.High); err != nil {
				<-c.slots
				if ctx.Err() != nil {
					return
				}
				c.d.logger.WarnContext(ctx, "carrier rate limit unavailable; retrying", "carrier", c.name, "error", err)
				sleep(ctx, 500*time.Millisecond)
				continue
			}
		}
		items := c.take()
		if len(items) == 0 {
			<-c.slots
			continue
		}
		granted := time.Now()
		c.d.wg.Go(func() {
			defer func() { <-c.slots }()
			c.send(carrier.WithToken(ctx, granted), items)
		})
	}
}

// send records the batch, then makes its one request.
func (c *collector) send(ctx context.Context, items []*item) {
	q := c.d.queries
	params := dbsqlc.DispatchBatchInsertParams{Carrier: c.name}
	for _, it := range items {
		params.OrderIds = append(params.OrderIds, it.req.OrderID)
		params.ExternalIds = append(params.ExternalIds, it.req.ExternalID)
	}
	batchID, err := q.DispatchBatchInsert(ctx, c.d.pool, params)
	if err != nil {
		deliver(items, outcome{err: fmt.Errorf("record dispatch batch: %w", err)})
		return
	}
	if c.maxBatch() == 1 || len(items) == 1 {
		c.sendOne(ctx, batchID, items[0])
		return
	}
	reqs := make([]carrier.Request, len(items))
	for i, it := range items {
		reqs[i] = it.req
		reqs[i].BatchID = batchID
	}
	logger := c.d.logger.With("carrier", c.name, "batch_id", batchID, "orders", len(items))
	var jobID string
	if c.syncer != nil {
		var res carrier.BatchResult
		res, err = c.syncer.CreateBatchSync(ctx, batchID, reqs)
		if err == nil {
			if err := c.d.follow(batchID, items).settle(context.WithoutCancel(ctx), params.OrderIds, resultsOf(res), "answer"); err != nil {
				// Unsettled, the batch is looked up (FindTask per order) and settled later.
				logger.WarnContext(ctx, "could not record a batch's answer", "error", err)
			}
		}
	} else {
		jobID, err = c.batcher.CreateBatch(ctx, batchID, reqs)
	}
	c.d.hooks.CarrierRequest(c.name, "create_batch", outcomeLabel(err))
	c.d.hooks.CarrierAuth(ctx, c.name, carrier.ClassOf(err) != carrier.Unauthorized)
	if err == nil && c.syncer != nil {
		return // its tracker delivers the outcomes
	}
	if err == nil {
		if c.d.cfg.CrashAfterBatchAnswer {
			crash()
		}
		if err := q.DispatchBatchSubmitted(ctx, c.d.pool, dbsqlc.DispatchBatchSubmittedParams{ID: batchID, CarrierJobID: &jobID}); err != nil {
			// The tracker finds the job by polling nothing; the batch is settled by a lookup.
			logger.WarnContext(ctx, "could not record the carrier's batch job id", "carrier_job_id", jobID, "error", err)
		}
		logger.DebugContext(ctx, "batch submitted", "carrier_job_id", jobID)
		c.d.follow(batchID, items)
		return
	}
	if ambiguous(err) {
		// The job may exist: the batch stays unfinished and is settled by one lookup.
		c.d.recordAmbiguous(ctx, batchID, err)
		logger.WarnContext(ctx, "batch request failed ambiguously; its batch will be looked up", "error", err)
		c.d.follow(batchID, items)
		return
	}
	c.d.finishUnsent(ctx, batchID)
	switch carrier.ClassOf(err) {
	case carrier.RateLimited:
		c.requeue(items)
	case carrier.Rejected:
		// The request as a whole was refused: send each order alone, so that only the one at
		// fault is rejected, with the carrier's own words.
		logger.WarnContext(ctx, "batch refused as a whole; sending its orders one by one", "error", err)
		for _, it := range items {
			it.alone = true
		}
		c.requeue(items)
	default:
		deliver(items, outcome{err: err})
	}
}

// sendOne creates one order's task with the carrier's single-task call.
func (c *collector) sendOne(ctx context.Context, batchID int64, it *item) {
	req := it.req
	req.BatchID = batchID
	task, err := c.carrier.CreateTask(ctx, req)
	c.d.hooks.CarrierRequest(c.name, "create", outcomeLabel(err))
	c.d.hooks.CarrierAuth(ctx, c.name, carrier.ClassOf(err) != carrier.Unauthorized)
	switch {
	case err == nil:
		// Recorded here, not by the waiting job: the job may have given up waiting.
		if err := c.d.store.Complete(context.WithoutCancel(ctx), it.jobID, req.OrderID, task, batchID); err != nil {
			deliver([]*item{it}, outcome{err: fmt.Errorf("record dispatch of order %d: %w", req.OrderID, err)})
			return
		}
		deliver([]*item{it}, outcome{created: true})
	case ambiguous(err):
		c.d.recordAmbiguous(ctx, batchID, err)
		deliver([]*item{it}, outcome{err: err})
	default:
		c.d.finishUnsent(ctx, batchID)
		if carrier.ClassOf(err) == carrier.RateLimited {
			c.requeue([]*item{it})
			return
		}
		deliver([]*item{it}, outcome{err: err})
	}
}

func deliver(items []*item, o outcome) {
	for _, it := range items {
		it.done <- o
	}
}

// ambiguous reports a failure after which the carrier may have created the tasks anyway.
func ambiguous(err error) bool {
	var ce *carrier.Error
	if errors.As(err, &ce) {
		return ce.Ambiguous
	}
	return err != nil
}

func outcomeLabel(err error) string {
	if err == nil {
		return "ok"
	}
	return carrier.ClassOf(err).String()
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}

// batchResults is the results column of waybill.dispatch_batches.
type batchResults map[string]batchOrderResult

type batchOrderResult struct {
	TaskID      string `json:"task_id,omitempty"`
	TrackingURL string `json:"tracking_url,omitempty"`
	Warning     string `json:"warning,omitempty"`
	Error       string `json:"error,omitempty"`
}

// summary is what a finished batch keeps of its results: counts.
func (r batchResults) summary(orders int) map[string]int {
	s := map[string]int{"created": 0, "refused": 0, "warnings": 0}
	for _, o := range r {
		switch {
		case o.TaskID != "":
			s["created"]++
			if o.Warning != "" {
				s["warnings"]++
			}
		case o.Error != "":
			s["refused"]++
		}
	}
	s["not_created"] = max(orders-s["created"]-s["refused"], 0)
	return s
}

func resultsOf(res carrier.BatchResult) batchResults {
	out := make(batchResults, len(res.Created)+len(res.Refused))
	for ext, t := range res.Created {
		out[ext] = batchOrderResult{TaskID: t.ID, TrackingURL: t.TrackingURL, Warning: t.Warning}
	}
	for ext, reason := range res.Refused {
		if _, ok := out[ext]; !ok {
			out[ext] = batchOrderResult{Error: reason}
		}
	}
	return out
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // maps of strings always encode
	}
	return b
}

// crash ends the process as a kill -9 would: no deferred function, no shutdown.
func crash() {
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal is on its way
}
