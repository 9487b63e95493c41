package reconcile

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/tidwall/gjson"

	"github.com/waybill/waybill/internal/carrier"
	"github.com/waybill/waybill/internal/carrier/onfleet"
	"github.com/waybill/waybill/internal/dbsqlc"
	"github.com/waybill/waybill/internal/orders"
	"github.com/waybill/waybill/internal/ratelimit"
)

// TaskReader reads tasks back from Onfleet (*onfleet.Client).
type TaskReader interface {
	GetTask(ctx context.Context, id string) (json.RawMessage, error)
	ListTasks(ctx context.Context, from, to time.Time, lastID string, states []int) (onfleet.TaskPage, error)
}

// Defaults for Config.
const (
	DefaultAfter     = 30 * time.Minute
	DefaultMaxOrders = 2000
	DefaultBudget    = 20 * time.Second
	// listMargin widens a listing's window before the oldest order's dispatch: the task was
	// created before Waybill recorded the order as dispatched.
	listMargin = 10 * time.Minute
)

// Config configures a Reconciler.
type Config struct {
	Pool   *pgxpool.Pool
	Logger *slog.Logger
	// Onfleet reads Onfleet's tasks; nil: Onfleet is not reconciled.
	Onfleet TaskReader
	// After: an order in flight with no carrier event (and no look-up) for this long is looked
	// up (WAYBILL_RECONCILE_AFTER).
	After time.Duration
	// MaxOrders bounds the orders one cycle looks up per carrier; the rest wait for the next.
	MaxOrders int
	// Budget bounds one cycle; what it could not look up waits for the next.
	Budget time.Duration
	// ActWait bounds the wait for one round of an order's changes to be acted on before the
	// next round is stored (default 15s; see writer).
	ActWait time.Duration
	Metrics *Metrics // may be nil
	Now     func() time.Time
}

// Reconciler runs reconciliation cycles. Cycles may run on several instances at once without
// harm (what they store is keyed and idempotent), but the periodic job runs them on the leader.
type Reconciler struct {
	cfg Config
	q   *dbsqlc.Queries
}

// New returns a Reconciler for cfg.
func New(cfg Config) *Reconciler {
	cfg.After = cmp.Or(cfg.After, DefaultAfter)
	cfg.MaxOrders = cmp.Or(cfg.MaxOrders, DefaultMaxOrders)
	cfg.Budget = cmp.Or(cfg.Budget, DefaultBudget)
	cfg.ActWait = cmp.Or(cfg.ActWait, defaultActWait)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Reconciler{cfg: cfg, q: dbsqlc.New()}
}

// Result is what one cycle did for one carrier.
type Result struct {
	Due      int    // orders due for a look-up
	Checked  int    // orders looked up
	Events   int    // changes stored (synthetic events with their translate jobs)
	Requests int    // carrier requests made
	Method   string // "get" (one request per task) or "list" (GET /tasks/all pages)
}

// Cycle looks up the orders due at each carrier, within the budget. Requests wait behind
// dispatch on the carrier's shared limit; when the budget runs out, what was looked up is kept
// and the rest waits for the next cycle.
func (r *Reconciler) Cycle(ctx context.Context) (map[string]Result, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Budget)
	defer cancel()
	results := map[string]Result{}
	if r.cfg.Onfleet == nil {
		return results, nil
	}
	res, err := r.onfleetCycle(ctx)
	results[onfleet.Name] = res
	r.cfg.Metrics.cycle(onfleet.Name, res)
	if err != nil && ctx.Err() != nil {
		r.cfg.Logger.InfoContext(ctx, "reconciliation cycle ran out of time; the rest waits for the next",
			"carrier", onfleet.Name, "due", res.Due, "checked", res.Checked)
		return results, nil
	}
	return results, err
}

func (r *Reconciler) onfleetCycle(ctx context.Context) (Result, error) {
	now := r.cfg.Now()
	due, err := r.q.ReconcileDueOrders(ctx, r.cfg.Pool, dbsqlc.ReconcileDueOrdersParams{
		Carrier: onfleet.Name, Before: now.Add(-r.cfg.After), MaxOrders: int32(r.cfg.MaxOrders),
	})
	if err != nil {
		return Result{}, fmt.Errorf("reconcile: due orders: %w", err)
	}
	res := Result{Due: len(due)}
	if len(due) == 0 {
		return res, nil
	}
	// Low priority, never promoted: reconciliation takes only what dispatch leaves.
	cctx := ratelimit.Patient(carrier.WithPriority(ctx, ratelimit.Low))

	byTask := make(map[string]dbsqlc.ReconcileDueOrdersRow, len(due))
	oldest := due[0].DispatchedAt
	for _, o := range due {
		byTask[o.CarrierRef] = o
		if o.DispatchedAt.Before(oldest) {
			oldest = o.DispatchedAt
		}
	}
	// The fewest requests: one GET per task, or the pages of GET /tasks/all since the oldest
	// order's dispatch, whichever is fewer. Our own orders dispatched since then are a lower
	// bound of that listing; the listing gives up (and GETs the rest) once it has cost as many
	// pages as the GETs would have.
	from := oldest.Add(-listMargin)
	pages := len(due) // what per-task GETs cost
	if len(due) > 1 {
		n, err := r.q.ReconcileCountDispatchedSince(ctx, r.cfg.Pool, dbsqlc.ReconcileCountDispatchedSinceParams{Carrier: onfleet.Name, Since: from})
		if err != nil {
			return res, fmt.Errorf("reconcile: count dispatched: %w", err)
		}
		pages = int((n + onfleet.ListPageSize - 1) / onfleet.ListPageSize)
	}
	w := &writer{r: r, res: &res}
	if pages < len(due) {
		res.Method = "list"
		if err := r.onfleetList(cctx, w, byTask, from, now, len(due)); err != nil {
			w.flush(ctx)
			return res, err
		}
	} else {
		res.Method = "get"
	}
	// Whatever the listing did not find (or every order, without one): one GET each.
	for _, o := range due {
		if _, ok := byTask[o.CarrierRef]; !ok {
			continue
		}
		task, err := r.cfg.Onfleet.GetTask(cctx, o.CarrierRef)
		res.Requests++
		r.cfg.Metrics.request(onfleet.Name, "get_task")
		switch {
		case errors.Is(err, onfleet.ErrTaskNotFound):
			// Deleted at Onfleet, or never there: nothing to translate (a deletion is told by
			// its webhook only); recorded, so it is not asked again before After.
			r.cfg.Logger.WarnContext(ctx, "reconciliation: carrier has no such task", "carrier", onfleet.Name,
				"order_id", o.ID, "external_id", o.ExternalID, "task_id", o.CarrierRef)
			w.checked(o, "missing")
		case err != nil:
			w.flush(ctx)
			return res, fmt.Errorf("reconcile: get onfleet task %s: %w", o.CarrierRef, err)
		default:
			w.task(ctx, o, task)
		}
		delete(byTask, o.CarrierRef)
	}
	return res, w.flush(ctx)
}

// onfleetList pages through the organisation's tasks since from, handing the due orders' tasks to
// w and removing them from byTask; it stops when all are found or after maxPages.
func (r *Reconciler) onfleetList(ctx context.Context, w *writer, byTask map[string]dbsqlc.ReconcileDueOrdersRow, from, to time.Time, maxPages int) error {
	lastID := ""
	for page := 0; page < maxPages && len(byTask) > 0; page++ {
		p, err := r.cfg.Onfleet.ListTasks(ctx, from, to, lastID, nil)
		w.res.Requests++
		r.cfg.Metrics.request(onfleet.Name, "list_tasks")
		if err != nil {
			return fmt.Errorf("reconcile: list onfleet tasks: %w", err)
		}
		for _, t := range p.Tasks {
			id := gjson.GetBytes(t, "id").String()
			o, ok := byTask[id]
			if !ok {
				continue
			}
			w.task(ctx, o, t)
			delete(byTask, id)
		}
		if p.LastID == "" {
			break
		}
		lastID = p.LastID
	}
	return nil
}

// writer gathers what a cycle learnt and writes it at the end of the cycle (or when it fails):
// the synthetic events with their translate jobs, and the orders looked up.
//
// An order's changes (e.g. assigned, started, completed read off one completed task) go in
// rounds, the n-th change of every order in round n, each after the previous round's events
// went through translate and act: running jobs are batched in no particular order, and the
// forward-only rule would make an earlier change decided after a later one history only,
// without its notification.
type writer struct {
	r       *Reconciler
	res     *Result
	rounds  []dbsqlc.ReconcileEventInsertManyParams
	checks  dbsqlc.ReconcileRecordChecksParams
	ordersN int
}

func (w *writer) checked(o dbsqlc.ReconcileDueOrdersRow, state string) {
	w.checks.OrderIds = append(w.checks.OrderIds, o.ID)
	w.checks.CarrierStates = append(w.checks.CarrierStates, state)
	w.ordersN++
}

// task reads the changes off one order's task.
func (w *writer) task(ctx context.Context, o dbsqlc.ReconcileDueOrdersRow, raw json.RawMessage) {
	steps, state, err := onfleetSteps(raw, orders.Status(o.Status))
	if err != nil {
		w.r.cfg.Logger.WarnContext(ctx, "reconciliation: unreadable task", "carrier", onfleet.Name,
			"order_id", o.ID, "external_id", o.ExternalID, "task_id", o.CarrierRef, "error", err)
		w.checked(o, "unreadable")
		return
	}
	for i, s := range steps {
		if i == len(w.rounds) {
			w.rounds = append(w.rounds, dbsqlc.ReconcileEventInsertManyParams{})
		}
		ev := &w.rounds[i]
		ev.Carriers = append(ev.Carriers, onfleet.Name)
		ev.EventKeys = append(ev.EventKeys, s.key)
		ev.Bodies = append(ev.Bodies, s.body)
	}
	if len(steps) > 0 {
		w.r.cfg.Logger.InfoContext(ctx, "reconciliation: carrier is further than the order", "carrier", onfleet.Name,
			"order_id", o.ID, "external_id", o.ExternalID, "task_id", o.CarrierRef, "status", o.Status, "task_state", state, "changes", len(steps))
	}
	w.checked(o, state)
}

// flush writes what was gathered: the first round of changes with the orders looked up, in one
// transaction, then each further round once the one before has been acted on. It runs even when
// the cycle's context has ended, briefly, so that requests already answered are not asked again.
func (w *writer) flush(ctx context.Context) error {
	if w.ordersN == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second+time.Duration(len(w.rounds))*w.r.cfg.ActWait)
	defer cancel()
	w.checks.CheckedAt = w.r.cfg.Now()
	var stored []int64
	for i, round := range w.rounds {
		if i > 0 && len(stored) > 0 {
			w.waitActed(ctx, stored)
		}
		stored = stored[:0]
		err := pgx.BeginFunc(ctx, w.r.cfg.Pool, func(tx pgx.Tx) error {
			rows, err := w.r.q.ReconcileEventInsertMany(ctx, tx, round)
			if err != nil {
				return fmt.Errorf("store polled events: %w", err)
			}
			for _, r := range rows {
				stored = append(stored, r.ID)
			}
			if i == 0 {
				return w.r.q.ReconcileRecordChecks(ctx, tx, w.checks)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("reconcile: %w", err)
		}
		w.res.Events += len(stored)
		w.r.cfg.Metrics.learnt(onfleet.Name, len(stored), 0)
	}
	if len(w.rounds) == 0 {
		if err := w.r.q.ReconcileRecordChecks(ctx, w.r.cfg.Pool, w.checks); err != nil {
			return fmt.Errorf("reconcile: %w", err)
		}
	}
	w.res.Checked += w.ordersN
	w.r.cfg.Metrics.learnt(onfleet.Name, 0, w.ordersN)
	w.rounds, w.checks, w.ordersN = nil, dbsqlc.ReconcileRecordChecksParams{}, 0
	return nil
}

// waitActed waits, within ctx and at most ActWait, until the translate and act jobs of the
// stored events are done (both are deleted when done). Past that, the next round goes anyway:
// the forward-only rule decides.
func (w *writer) waitActed(ctx context.Context, eventIDs []int64) {
	ctx, cancel := context.WithTimeout(ctx, w.r.cfg.ActWait)
	defer cancel()
	for {
		pending, err := w.r.q.ReconcilePipelinePending(ctx, w.r.cfg.Pool, eventIDs)
		if err != nil || pending == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// defaultActWait bounds the wait for a round of changes to be acted on.
const defaultActWait = 15 * time.Second
