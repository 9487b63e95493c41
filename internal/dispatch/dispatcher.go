package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/waybill/waybill/internal/carrier"
	"github.com/waybill/waybill/internal/dbsqlc"
	"github.com/waybill/waybill/internal/orders"
	"github.com/waybill/waybill/internal/ratelimit"
)

// Defaults for DispatcherConfig.
const (
	DefaultStuckAfter     = 5 * time.Minute
	DefaultAmbiguousAfter = 20 * time.Second
	DefaultPollEvery      = time.Second
	DefaultInFlight       = 32
)

// DispatcherConfig wires a Dispatcher.
type DispatcherConfig struct {
	Pool     *pgxpool.Pool
	Carriers map[string]carrier.Carrier // by name, as in waybill.orders.carrier
	Limiters map[string]carrier.Limiter // by carrier; none: no limit for that carrier
	Store    *Store
	Hooks    Hooks
	Logger   *slog.Logger
	// StuckAfter is when a batch whose async job has not finished is settled by a lookup and
	// reported (WAYBILL_BATCH_STUCK_AFTER).
	StuckAfter time.Duration
	// AmbiguousAfter is how long a request whose answer was lost (timeout, 5xx, crash) is given
	// to take effect at the carrier before its batch is looked up.
	AmbiguousAfter time.Duration
	// PollEvery is how often an unfinished batch's row is read, and its job polled at most.
	PollEvery time.Duration
	// InFlight bounds one carrier's concurrent requests per process.
	InFlight int
	// CrashAfterBatchAnswer kills the process with SIGKILL once a batch's job id has come
	// back and before it is recorded (WAYBILL_TEST_CRASH_AT=batch-answered): the crash tests'
	// way to stop exactly there. Never set in production.
	CrashAfterBatchAnswer bool
}

// Dispatcher sends orders to carriers in as few requests as the load allows and settles every
// batch exactly once. One per process; Run serves it.
type Dispatcher struct {
	cfg     DispatcherConfig
	pool    *pgxpool.Pool
	queries *dbsqlc.Queries
	store   *Store
	hooks   Hooks
	logger  *slog.Logger

	collectors map[string]*collector
	runCtx     context.Context
	started    chan struct{}
	wg         sync.WaitGroup

	mu       sync.Mutex
	trackers map[int64]*tracker
	jobTime  jobTime
	// webhookAt is when a batch was last settled by the carrier's completion webhook (unix
	// ns): while they arrive, polls wait for them a while longer and mostly never happen.
	webhookAt atomic.Int64
}

// NewDispatcher returns a Dispatcher; call Run before jobs use it.
func NewDispatcher(cfg DispatcherConfig) *Dispatcher {
	if cfg.StuckAfter == 0 {
		cfg.StuckAfter = DefaultStuckAfter
	}
	if cfg.AmbiguousAfter == 0 {
		cfg.AmbiguousAfter = DefaultAmbiguousAfter
	}
	if cfg.PollEvery == 0 {
		cfg.PollEvery = DefaultPollEvery
	}
	if cfg.InFlight == 0 {
		cfg.InFlight = DefaultInFlight
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Dispatcher{
		cfg: cfg, pool: cfg.Pool, queries: dbsqlc.New(), store: cfg.Store,
		hooks: hooksOrNop(cfg.Hooks), logger: cfg.Logger,
		collectors: map[string]*collector{},
		started:    make(chan struct{}),
		trackers:   map[int64]*tracker{},
	}
	d.jobTime.d = cfg.PollEvery / 2
	for name, c := range cfg.Carriers {
		d.collectors[name] = newCollector(d, c, cfg.Limiters[name], cfg.InFlight)
	}
	return d
}

// Run sends and settles batches until ctx ends, then waits for requests in flight. Start it
// before River and stop it after River: jobs still running wait on it.
func (d *Dispatcher) Run(ctx context.Context) {
	d.runCtx = ctx
	close(d.started)
	for _, c := range d.collectors {
		d.wg.Go(func() { c.run(ctx) })
	}
	<-ctx.Done()
	d.wg.Wait()
}

// dispatch hands an order to its carrier's collector; the outcome arrives on the channel.
func (d *Dispatcher) dispatch(ctx context.Context, carrierName string, jobID int64, req carrier.Request) (<-chan outcome, error) {
	c, ok := d.collectors[carrierName]
	if !ok {
		return nil, fmt.Errorf("carrier %q is not configured in this service", carrierName)
	}
	select {
	case <-d.started:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	it := &item{req: req, jobID: jobID, done: make(chan outcome, 1)}
	c.submit(it)
	return it.done, nil
}

// await follows an unfinished batch the order sits in (after a crash, a timeout, or a job
// that gave up waiting) until it is settled.
func (d *Dispatcher) await(ctx context.Context, batchID, jobID, orderID int64) (<-chan outcome, error) {
	select {
	case <-d.started:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	ch := make(chan outcome, 1)
	d.track(batchID).add(orderID, waiter{jobID: jobID, done: ch})
	return ch, nil
}

// follow settles a batch that was just sent, for the orders that went in it.
func (d *Dispatcher) follow(batchID int64, items []*item) *tracker {
	t := d.track(batchID)
	for _, it := range items {
		t.add(it.req.OrderID, waiter{jobID: it.jobID, done: it.done})
	}
	return t
}

func (d *Dispatcher) track(batchID int64) *tracker {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t, ok := d.trackers[batchID]; ok {
		return t
	}
	t := &tracker{d: d, id: batchID, waiters: map[int64][]waiter{}}
	if d.runCtx.Err() != nil {
		t.stopped = true // nothing may start once Run is waiting for the rest to end
		return t
	}
	d.trackers[batchID] = t
	d.wg.Go(func() { t.run(d.runCtx) })
	return t
}

func (d *Dispatcher) untrack(t *tracker) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.trackers[t.id] == t {
		delete(d.trackers, t.id)
	}
}

func (d *Dispatcher) recordAmbiguous(ctx context.Context, batchID int64, cause error) {
	msg := cause.Error()
	if err := d.queries.DispatchBatchFailed(context.WithoutCancel(ctx), d.pool, dbsqlc.DispatchBatchFailedParams{ID: batchID, Error: &msg}); err != nil {
		d.logger.WarnContext(ctx, "could not record a batch's failure", "batch_id", batchID, "error", err)
	}
}

// finishUnsent closes a batch whose request the carrier certainly did not act on.
func (d *Dispatcher) finishUnsent(ctx context.Context, batchID int64) {
	by := "unsent"
	if err := d.queries.DispatchBatchFinishSingle(context.WithoutCancel(ctx), d.pool, dbsqlc.DispatchBatchFinishSingleParams{
		ID: batchID, SettledBy: &by, Results: []byte(`{}`),
	}); err != nil {
		// Left unfinished, it is settled by a lookup: slower, never wrong.
		d.logger.WarnContext(ctx, "could not close an unsent batch", "batch_id", batchID, "error", err)
	}
}

// settle records a batch's results, once for the whole cluster, in one transaction: the batch,
// its created orders (dispatched), its refused ones (rejected), the warnings in their history,
// and the end of waiting's jobs (job id → order id) whose orders it dispatched. Orders absent
// from results were not created and go out again. It returns the jobs it ended.
func (d *Dispatcher) settle(ctx context.Context, batchID int64, orderIDs []int64, results batchResults, by string, waiting map[int64]int64) (map[int64]bool, error) {
	params := dbsqlc.DispatchBatchFinishParams{
		BatchID: batchID, OrderIds: orderIDs, Results: mustJSON(results), Summary: mustJSON(results.summary(len(orderIDs))),
		SettledBy: &by, Keep: d.store.keep,
		JobIds: make([]int64, 0, len(waiting)), JobOrderIds: make([]int64, 0, len(waiting)),
	}
	for jobID, orderID := range waiting {
		params.JobIds = append(params.JobIds, jobID)
		params.JobOrderIds = append(params.JobOrderIds, orderID)
	}
	var ended map[int64]bool
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		// A commit lost in a crash leaves the batch unfinished and its jobs running: it is
		// settled again (by poll or lookup). So it need not wait for the WAL flush.
		if err := d.queries.TxCommitAsync(ctx, tx); err != nil {
			return err
		}
		rows, err := d.queries.DispatchBatchFinish(ctx, tx, params)
		if err != nil {
			return fmt.Errorf("settle batch %d: %w", batchID, err)
		}
		byID := make(map[int64]bool, len(rows))
		for _, r := range rows {
			byID[r.ID] = r.CarrierRef != nil
			if r.Status == "dispatched" && r.DispatchedAt != nil {
				d.hooks.Dispatched(r.CreatedAt, *r.DispatchedAt)
			}
		}
		ended = make(map[int64]bool, len(waiting))
		for jobID, orderID := range waiting {
			if byID[orderID] {
				ended[jobID] = true
			}
		}
		if len(rows) == 0 {
			return nil
		}
		warnings, err := d.warnings(ctx, tx, batchID, results)
		if err != nil {
			return err
		}
		for orderID, w := range warnings {
			if _, ok := byID[orderID]; !ok {
				continue
			}
			if err := d.queries.OrderEventInsertDispatchWarning(ctx, tx, dbsqlc.OrderEventInsertDispatchWarningParams{
				OrderID: orderID, Warning: w, BatchID: batchID,
			}); err != nil {
				return fmt.Errorf("record dispatch warning: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ended, nil
}

// warnings maps the batch's orders to their carrier warnings.
func (d *Dispatcher) warnings(ctx context.Context, tx pgx.Tx, batchID int64, results batchResults) (map[int64]string, error) {
	any := false
	for _, r := range results {
		if r.Warning != "" {
			any = true
			break
		}
	}
	if !any {
		return nil, nil
	}
	b, err := d.queries.DispatchBatchGet(ctx, tx, batchID)
	if err != nil {
		return nil, fmt.Errorf("read batch %d: %w", batchID, err)
	}
	out := map[int64]string{}
	for i, ext := range b.ExternalIds {
		if r, ok := results[ext]; ok && r.Warning != "" && i < len(b.OrderIds) {
			out[b.OrderIds[i]] = r.Warning
		}
	}
	return out, nil
}

// SettleFromWebhook records a batch's results from the carrier's job-completed webhook
// (Onfleet trigger 19), whichever of it and the poll comes first. An unknown job is ignored.
func (d *Dispatcher) SettleFromWebhook(ctx context.Context, carrierName, jobID string, res carrier.BatchResult) error {
	b, err := d.queries.DispatchBatchGetByJobID(ctx, d.pool, dbsqlc.DispatchBatchGetByJobIDParams{Carrier: carrierName, CarrierJobID: &jobID})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("find batch of job %s: %w", jobID, err)
	}
	if b.State == "finished" {
		return nil
	}
	_, err = d.settle(ctx, b.ID, b.OrderIds, resultsOf(res), "webhook", nil)
	return err
}

// waiter is a job waiting for its order's outcome in a batch.
type waiter struct {
	jobID int64
	done  chan outcome
}

// tracker follows one unfinished batch until it is settled, then tells each waiting job.
type tracker struct {
	d  *Dispatcher
	id int64

	mu       sync.Mutex
	waiters  map[int64][]waiter
	finished map[int64]outcome // set once settled
	ended    map[int64]bool    // jobs whose end the settling statement wrote
	stopped  bool
}

// settle settles the batch with results, ending the jobs that wait here for the orders it
// dispatches in the same statement.
func (t *tracker) settle(ctx context.Context, orderIDs []int64, results batchResults, by string) error {
	t.mu.Lock()
	waiting := make(map[int64]int64)
	for orderID, ws := range t.waiters {
		for _, w := range ws {
			if w.jobID != 0 {
				waiting[w.jobID] = orderID
			}
		}
	}
	t.mu.Unlock()
	ended, err := t.d.settle(ctx, t.id, orderIDs, results, by, waiting)
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.ended = ended
	t.mu.Unlock()
	return nil
}

func (t *tracker) add(orderID int64, w waiter) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		w.done <- outcome{err: errStopping}
		return
	}
	if t.finished != nil {
		t.deliver(orderID, w)
		return
	}
	t.waiters[orderID] = append(t.waiters[orderID], w)
}

// deliver ends a created order's job, then hands over the outcome. Called with t.mu held.
func (t *tracker) deliver(orderID int64, w waiter) {
	o, ok := t.finished[orderID]
	if !ok {
		o = outcome{resend: true}
	}
	if o.created && w.jobID != 0 && !t.ended[w.jobID] {
		t.d.wg.Go(func() {
			if err := t.d.store.End(context.WithoutCancel(t.d.runCtx), w.jobID); err != nil {
				// The job runs again, finds the order dispatched, and ends then.
				t.d.logger.Warn("could not end a dispatched order's job", "job_id", w.jobID, "error", err)
			}
			w.done <- o
		})
		return
	}
	w.done <- o
}

func (t *tracker) run(ctx context.Context) {
	defer t.d.untrack(t)
	logger := t.d.logger.With("batch_id", t.id)
	var polls pollState
	for {
		b, err := t.d.queries.DispatchBatchGet(ctx, t.d.pool, t.id)
		switch {
		case err != nil && ctx.Err() != nil:
			t.abandon()
			return
		case err != nil:
			logger.WarnContext(ctx, "could not read a dispatch batch; retrying", "error", err)
		case b.State == "finished":
			if err := t.finish(ctx, b); err != nil {
				logger.WarnContext(ctx, "could not read a settled batch's outcomes; retrying", "error", err)
				break
			}
			return
		default:
			if settled := t.step(ctx, logger, b, &polls); settled {
				continue // read the results back, as any other instance would
			}
		}
		select {
		case <-time.After(t.d.cfg.PollEvery / 4):
		case <-ctx.Done():
			t.abandon()
			return
		}
	}
}

// step moves an unfinished batch on: poll its job, or look it up once its answer is overdue.
// It reports whether the batch was settled.
func (t *tracker) step(ctx context.Context, logger *slog.Logger, b dbsqlc.DispatchBatchGetRow, polls *pollState) bool {
	col, ok := t.d.collectors[b.Carrier]
	if !ok {
		return false // another instance's carrier: it settles the batch
	}
	now := time.Now()
	switch {
	case b.State == "submitted" && b.CarrierJobID != nil && col.batcher != nil:
		if b.SubmittedAt != nil && now.Sub(*b.SubmittedAt) > t.d.cfg.StuckAfter {
			logger.ErrorContext(ctx, "carrier batch job did not finish; settling it by a lookup",
				"carrier", b.Carrier, "carrier_job_id", *b.CarrierJobID, "stuck_after", t.d.cfg.StuckAfter)
			t.d.hooks.BatchStuck(ctx, b.Carrier, t.id)
			return t.lookup(ctx, logger, col, b)
		}
		submitted := now
		if b.SubmittedAt != nil {
			submitted = *b.SubmittedAt
		}
		typical := t.d.jobTime.get()
		if now.Sub(time.Unix(0, t.d.webhookAt.Load())) < webhookFresh {
			typical += webhookGrace
		}
		if !polls.due(now, submitted, typical, t.d.cfg.PollEvery) {
			return false
		}
		// Polling a batch's job is part of dispatching it, not a background chore: at the
		// priority of creating tasks (measured: as a low-priority request, polls waited behind
		// dispatch whenever the limit bound, and the p99 insert→dispatched grew to 5 s).
		res, done, err := col.batcher.BatchStatus(ctx, *b.CarrierJobID)
		t.d.hooks.CarrierRequest(b.Carrier, "batch_status", outcomeLabel(err))
		if err != nil || !done {
			return false
		}
		if typical == t.d.jobTime.get() { // a wait for the webhook says nothing of the job
			t.d.jobTime.observe(time.Since(submitted), polls.n == 1)
		}
		if err := t.settle(ctx, b.OrderIds, resultsOf(res), "poll"); err != nil {
			logger.WarnContext(ctx, "could not settle a batch", "error", err)
			return false
		}
		return true
	case now.Sub(b.CreatedAt) > t.d.cfg.AmbiguousAfter:
		return t.lookup(ctx, logger, col, b)
	}
	return false
}

// lookup asks the carrier, in one request, which of the batch's tasks exist, and settles the
// batch with that answer. One instance at a time does it.
func (t *tracker) lookup(ctx context.Context, logger *slog.Logger, col *collector, b dbsqlc.DispatchBatchGetRow) bool {
	n, err := t.d.queries.DispatchBatchClaimLookup(ctx, t.d.pool, dbsqlc.DispatchBatchClaimLookupParams{ID: t.id, StaleSeconds: 30})
	if err != nil || n == 0 {
		return false
	}
	lowCtx := carrier.WithPriority(ctx, ratelimit.Low)
	found := map[string]carrier.Task{}
	if col.batcher != nil {
		found, err = col.batcher.FindBatch(lowCtx, t.id)
		t.d.hooks.CarrierRequest(b.Carrier, "find_batch", outcomeLabel(err))
	} else {
		for _, ext := range b.ExternalIds {
			task, ok, ferr := col.carrier.FindTask(lowCtx, ext)
			t.d.hooks.CarrierRequest(b.Carrier, "find", outcomeLabel(ferr))
			if ferr != nil {
				err = ferr
				break
			}
			if ok {
				found[ext] = task
			}
		}
	}
	if err != nil {
		logger.WarnContext(ctx, "batch lookup failed; will try again", "error", err)
		return false
	}
	res := carrier.BatchResult{Created: map[string]carrier.CreatedTask{}}
	for ext, task := range found {
		res.Created[ext] = carrier.CreatedTask{Task: task}
	}
	logger.InfoContext(ctx, "batch settled by lookup", "carrier", b.Carrier, "found", len(found), "orders", len(b.OrderIds))
	if err := t.settle(ctx, b.OrderIds, resultsOf(res), "lookup"); err != nil {
		logger.WarnContext(ctx, "could not settle a batch", "error", err)
		return false
	}
	return true
}

// finish turns the settled batch's results into each waiting job's outcome.
func (t *tracker) finish(ctx context.Context, b dbsqlc.DispatchBatchGetRow) error {
	if b.SettledBy != nil && *b.SettledBy == "webhook" {
		t.d.webhookAt.Store(time.Now().UnixNano())
	}
	rows, err := t.d.queries.DispatchBatchOutcomes(ctx, t.d.pool, b.OrderIds)
	if err != nil {
		return fmt.Errorf("read the outcomes of batch %d: %w", t.id, err)
	}
	finished := make(map[int64]outcome, len(rows))
	for _, r := range rows {
		switch {
		case r.Created:
			finished[r.ID] = outcome{created: true}
		case r.Status == string(orders.StatusRejected):
			finished[r.ID] = outcome{refused: r.StatusReason}
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.finished = finished
	for orderID, ws := range t.waiters {
		for _, w := range ws {
			t.deliver(orderID, w)
		}
	}
	t.waiters = nil
	return nil
}

// abandon tells waiting jobs to come back later: the service is stopping.
func (t *tracker) abandon() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	for _, ws := range t.waiters {
		for _, w := range ws {
			w.done <- outcome{err: errStopping}
		}
	}
	t.waiters = map[int64][]waiter{}
}

var errStopping = errors.New("dispatch is stopping; the order's batch is settled when it runs again")

const (
	// webhookFresh: completion webhooks count as arriving while one came this recently.
	webhookFresh = time.Minute
	// webhookGrace: how much longer a batch's first poll waits while webhooks arrive.
	webhookGrace = 2 * time.Second
)

// pollState spaces one batch's polls: the first when a job usually finishes (jobTime), then
// every PollEvery (or half the usual job time if longer), backing off after a few, so that a
// batch costs one poll when all goes well.
type pollState struct {
	n    int
	last time.Time
}

func (p *pollState) due(now, submitted time.Time, typical, every time.Duration) bool {
	var next time.Time
	switch {
	case p.n == 0:
		next = submitted.Add(typical)
	case p.n < 4:
		// Not sooner than every: under the limit a poll costs a create's token.
		next = p.last.Add(max(typical/2, every))
	default:
		next = p.last.Add(min(every<<(p.n-4), 4*every))
	}
	if now.Before(next) {
		return false
	}
	p.n++
	p.last = now
	return true
}

// jobTime is how long the carrier's batch jobs typically take, learnt from polls: a job found
// finished at its first poll lowers the estimate a little (it may finish sooner), one found
// later raises it toward what it took.
type jobTime struct {
	mu sync.Mutex
	d  time.Duration
}

func (j *jobTime) get() time.Duration {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.d
}

func (j *jobTime) observe(took time.Duration, firstPoll bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if firstPoll {
		j.d = j.d * 95 / 100
	} else {
		j.d = (j.d*4 + took) / 5
	}
	j.d = min(max(j.d, 100*time.Millisecond), 10*time.Second)
}
