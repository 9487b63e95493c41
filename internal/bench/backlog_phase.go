package bench

import (
	"context"
	"fmt"
	"math"
	"time"
)

// BacklogResult is the backlog phase: orders inserted while the service is down, then drained
// by a freshly started service.
type BacklogResult struct {
	Orders int `json:"orders"`
	// JobsLeftAtStart counts River jobs still available or running from earlier phases when the
	// service was stopped for the backlog (0 unless the wait for them timed out).
	JobsLeftAtStart int `json:"jobs_left_at_start"`
	// Insert is the backlog's INSERTs: the monolith's one-row transactions at full speed into
	// waybill.orders with the service stopped, i.e. the outbox INSERT's own cost.
	Insert     InsertRate `json:"insert"`
	Dispatched int        `json:"dispatched"`
	Lost       int        `json:"lost"`
	// Seconds is from the first order's dispatch to the last one's (orders.dispatched_at; the
	// dispatch jobs are deleted when done): the River reference's measure, first fetch to last
	// completion, minus one fetch-to-dispatch round at the start (tens of milliseconds).
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"per_second"`
	// WallSeconds is from starting `waybill serve` to every order dispatched.
	WallSeconds       float64          `json:"wall_seconds"`
	RatioToRiverNoop  float64          `json:"ratio_to_river_noop"`
	LatencyMs         Summary          `json:"insert_to_dispatched_ms"`
	CarrierTasksDelta int64            `json:"carrier_tasks_created"`
	DuplicatedTasks   int64            `json:"carrier_duplicated_tasks"`
	CPU               CPUUsage         `json:"cpu"`
	ServePeakRSSBytes int64            `json:"serve_peak_rss_bytes"`
	Postgres          PostgresActivity `json:"postgres_activity"`
	Timeline          []SecondPoint    `json:"timeline"`
}

func (b *runner) runBacklog(ctx context.Context, n, clients int, drainTimeout time.Duration, river *RiverDrain) (*BacklogResult, error) {
	res := &BacklogResult{Orders: n}
	// Start from a quiet service: jobs left from an earlier phase would share the drain's Postgres.
	if b.servePID() != 0 {
		res.JobsLeftAtStart = b.waitJobsIdle(ctx, drainTimeout)
	}
	if err := b.stack.stopServe(); err != nil {
		return nil, err
	}
	fromID, err := b.maxID(ctx, "waybill.orders")
	if err != nil {
		return nil, err
	}
	b.logger.Info("inserting the backlog with the service stopped", "orders", n, "clients", clients)
	res.Insert, err = closedLoopInsert(ctx, b.pool, outboxInsertSQL, fmt.Sprintf("bench-bl-%d-", time.Now().Unix()), clients, 0, n)
	res.Insert.Target = "waybill.orders (the outbox: validation and dispatch-job triggers), service stopped"
	if err != nil {
		return nil, fmt.Errorf("insert backlog: %w", err)
	}
	before, err := b.stack.sandboxStats(ctx)
	if err != nil {
		return nil, err
	}
	// A checkpoint now keeps one from landing in the middle of the drain by chance.
	_, _ = b.pool.Exec(ctx, "CHECKPOINT")

	t0 := time.Now()
	smp := startSampler(ctx, b.pool, t0, newProgress("waybill.orders", "dispatched_at", fromID), b.pids)
	waits := startWaitSampler(ctx, b.pool, b.db.name)
	cpu0 := takeCPU(ctx, b.pool, 0, b.sandboxPID())
	b.logger.Info("starting the service on the backlog")
	if err := b.stack.startServe(ctx); err != nil {
		smp.finish()
		waits.finish(0)
		return nil, err
	}
	stopPerf := b.startPerf(ctx, "backlog", 20*time.Second)
	err = b.waitDispatched(ctx, fromID, res.Insert.Rows, drainTimeout)
	res.WallSeconds = time.Since(t0).Seconds()
	stopPerf()
	if err != nil && ctx.Err() != nil {
		return nil, err
	}
	cpu1 := takeCPU(ctx, b.pool, b.servePID(), b.sandboxPID())
	cpu0.Serve = 0 // the service started inside the window
	res.CPU = cpuUsage(cpu0, cpu1, time.Since(t0), b.cores)
	if ps, err := ReadProcStat(b.servePID()); err == nil {
		res.ServePeakRSSBytes = ps.PeakRSSBytes
	}
	samples := smp.finish()
	res.Postgres = waits.finish(15)

	var seconds *float64
	if err := b.pool.QueryRow(ctx, `SELECT extract(epoch FROM max(dispatched_at) - min(dispatched_at))::float8
		FROM waybill.orders WHERE id > $1`, fromID).Scan(&seconds); err != nil {
		return nil, err
	}
	var lat []float64
	rows, err := b.pool.Query(ctx, `SELECT extract(epoch FROM dispatched_at - created_at)::float8 * 1000
		FROM waybill.orders WHERE id > $1 AND dispatched_at IS NOT NULL`, fromID)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var l float64
		if err := rows.Scan(&l); err != nil {
			rows.Close()
			return nil, err
		}
		lat = append(lat, l)
	}
	rows.Close()
	res.LatencyMs = Summarize(lat)
	res.Dispatched = len(lat)
	res.Lost = res.Insert.Rows - res.Dispatched
	if seconds != nil && *seconds > 0 {
		res.Seconds = *seconds
		res.PerSecond = float64(res.Dispatched) / res.Seconds
	}
	if river != nil && river.PerSecond > 0 {
		res.RatioToRiverNoop = res.PerSecond / river.PerSecond
	}
	after, err := b.stack.sandboxStats(ctx)
	if err != nil {
		return nil, err
	}
	res.CarrierTasksDelta = after.TasksCreated - before.TasksCreated
	res.DuplicatedTasks = after.DuplicatedExternal - before.DuplicatedExternal
	res.Timeline = timeline(int(math.Ceil(res.WallSeconds))+1, samples, func(p *SecondPoint) {
		p.P50Ms, p.P99Ms = jsonFloat(math.NaN()), jsonFloat(math.NaN())
	})
	return res, nil
}

// waitDispatched waits until the n orders after fromID (all inserted already) are dispatched,
// or timeout. It asks only whether one is still pending, which costs little while many are.
func (b *runner) waitDispatched(ctx context.Context, fromID int64, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var pending bool
		if err := b.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM waybill.orders WHERE id > $1 AND dispatched_at IS NULL)`, fromID).Scan(&pending); err != nil {
			return err
		}
		if !pending {
			return nil
		}
		if time.Now().After(deadline) {
			var done int
			_ = b.pool.QueryRow(ctx, `SELECT count(dispatched_at) FROM waybill.orders WHERE id > $1`, fromID).Scan(&done)
			return fmt.Errorf("%d of %d orders dispatched after %s", done, n, timeout)
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// waitJobsIdle waits (bounded) until no River job is available or running, and returns how
// many were when it stopped waiting.
func (b *runner) waitJobsIdle(ctx context.Context, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for {
		var n int
		if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM waybill.river_job WHERE state IN ('available', 'running')`).Scan(&n); err != nil {
			return -1
		}
		if n == 0 || time.Now().After(deadline) || sleepCtx(ctx, 250*time.Millisecond) != nil {
			return n
		}
	}
}
