package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// OrdersResult is the orders phase: the monolith's INSERTs offered at a fixed rate while the
// service dispatches them to the sandbox carrier.
type OrdersResult struct {
	OfferedPerSecond float64        `json:"offered_per_second"`
	DurationSeconds  float64        `json:"duration_seconds"`
	Clients          int            `json:"clients"`
	Generator        GeneratorStats `json:"generator"`
	Inserted         int            `json:"inserted"`
	InsertErrors     int            `json:"insert_errors"`
	FirstError       string         `json:"first_error,omitempty"`
	// InsertLatencyMs is send to COMMIT as the monolith sees it.
	InsertLatencyMs Summary `json:"insert_latency_ms"`
	// IngestPerSecond is committed orders over the time from the first due send to the last commit.
	IngestPerSecond float64 `json:"ingest_per_second"`
	InsertedInDB    int     `json:"inserted_in_db"`
	Dispatched      int     `json:"dispatched"`
	// Lost were inserted but not dispatched when the drain deadline passed.
	Lost                 int     `json:"lost"`
	DrainDeadlineSeconds float64 `json:"drain_deadline_seconds"`
	// DispatchedUnderLoadPerSecond counts orders dispatched while load was offered.
	DispatchedUnderLoadPerSecond float64 `json:"dispatched_under_load_per_second"`
	// DispatchedOverallPerSecond is all dispatched over the time from start to the last dispatch.
	DispatchedOverallPerSecond float64 `json:"dispatched_overall_per_second"`
	// LastDispatchSeconds is when, after the start, the last order was dispatched.
	LastDispatchSeconds float64 `json:"last_dispatch_seconds"`
	// LatencyMs is created_at → dispatched_at of every dispatched order (server clock).
	LatencyMs         Summary          `json:"insert_to_dispatched_ms"`
	Carrier           SandboxStats     `json:"carrier"`
	CarrierTasksDelta int64            `json:"carrier_tasks_created"`
	DuplicatedTasks   int64            `json:"carrier_duplicated_tasks"`
	CPU               CPUUsage         `json:"cpu"`
	ServePeakRSSBytes int64            `json:"serve_peak_rss_bytes"`
	Postgres          PostgresActivity `json:"postgres_activity"`
	Timeline          []SecondPoint    `json:"timeline"`
}

// SecondPoint is one second of a phase, for the chart.
type SecondPoint struct {
	Second       int       `json:"second"`
	Offered      int       `json:"offered"`
	Sent         int       `json:"sent"`
	Done         int       `json:"done"`      // orders: committed INSERTs; webhooks: 200 answers
	Processed    jsonFloat `json:"processed"` // orders: dispatched; webhooks: translated (sampled from the DB)
	P50Ms        jsonFloat `json:"p50_ms"`
	P99Ms        jsonFloat `json:"p99_ms"`
	ServeCores   float64   `json:"serve_cores"`
	SandboxCores float64   `json:"sandbox_cores"`
	PGCores      float64   `json:"postgres_cores"`
	BenchCores   float64   `json:"bench_cores"`
	BusyCores    float64   `json:"machine_busy_cores"`
}

// jsonFloat is a float64 that is null in JSON when it is not a number (a second without data).
type jsonFloat float64

func (f jsonFloat) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
		return []byte("null"), nil
	}
	return json.Marshal(float64(f))
}

type ordersConfig struct {
	rate         float64
	duration     time.Duration
	clients      int
	drainTimeout time.Duration
	prefix       string
}

// runOrders offers the load, waits (bounded) for every order to be dispatched, and reads the
// outcome from the database and the carrier.
func (b *runner) runOrders(ctx context.Context, cfg ordersConfig) (*OrdersResult, error) {
	res := &OrdersResult{OfferedPerSecond: cfg.rate, DurationSeconds: cfg.duration.Seconds(), Clients: cfg.clients,
		DrainDeadlineSeconds: cfg.drainTimeout.Seconds()}
	load, err := newPool(ctx, b.db.url, "waybill-bench-monolith", int32(cfg.clients))
	if err != nil {
		return nil, err
	}
	defer load.Close()
	conns := make([]*pgxpool.Conn, cfg.clients)
	for i := range conns {
		if conns[i], err = load.Acquire(ctx); err != nil {
			return nil, err
		}
		defer conns[i].Release()
	}
	fromID, err := b.maxID(ctx, "waybill.orders")
	if err != nil {
		return nil, err
	}
	before, err := b.stack.sandboxStats(ctx)
	if err != nil {
		return nil, err
	}

	t0 := time.Now().Add(200 * time.Millisecond).Truncate(100 * time.Millisecond)
	pacer := NewPacer(t0, cfg.rate, cfg.duration)
	smp := startSampler(ctx, b.pool, t0, newProgress("waybill.orders", "dispatched_at", fromID), b.pids)
	waits := startWaitSampler(ctx, b.pool, b.db.name)
	cpu0 := takeCPU(ctx, b.pool, b.servePID(), b.sandboxPID())
	stopPerf := b.startPerf(ctx, "orders", cfg.duration)

	now := time.Now()
	hardStop := t0.Add(2*cfg.duration + 10*time.Second)
	b.logger.Info("offering orders", "rate", cfg.rate, "duration", cfg.duration, "clients", cfg.clients)
	run := runOpenLoop(ctx, pacer, cfg.clients, hardStop, func(ctx context.Context, sender, i int) error {
		_, err := conns[sender].Exec(ctx, outboxInsertSQL, fmt.Sprintf("%s%d", cfg.prefix, i), orderPayload(i, now))
		return err
	})
	stopPerf()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res.Generator = run.generatorStats(pacer)
	res.Inserted = run.ok()
	res.InsertErrors = int(run.errors.Load())
	res.FirstError = run.firstError()
	var insertLat []float64
	lastCommit := 0.0
	for i := range run.doneAt {
		if !math.IsNaN(run.doneAt[i]) {
			insertLat = append(insertLat, (run.doneAt[i]-run.sendAt[i])*1000)
			lastCommit = max(lastCommit, run.doneAt[i])
		}
	}
	res.InsertLatencyMs = Summarize(insertLat)
	if lastCommit > 0 {
		res.IngestPerSecond = float64(res.Inserted) / lastCommit
	}
	b.logger.Info("load offered; waiting for dispatch", "inserted", res.Inserted, "generator_lag_p99_ms", res.Generator.LagMs.P99)

	// Wait for every inserted order to be dispatched, or the deadline. Asked of the table, not of
	// the sampler: its windowed counts are for the chart and may lag the end by a window.
	if err := b.waitDispatched(ctx, fromID, res.Inserted, cfg.drainTimeout); err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		b.logger.Warn("drain deadline passed with orders still pending", "error", err)
	}
	cpu1 := takeCPU(ctx, b.pool, b.servePID(), b.sandboxPID())
	res.CPU = cpuUsage(cpu0, cpu1, time.Since(t0), b.cores)
	if ps, err := ReadProcStat(b.servePID()); err == nil {
		res.ServePeakRSSBytes = ps.PeakRSSBytes
	}
	samples := smp.finish()
	res.Postgres = waits.finish(15)

	// The outcome, from the database.
	rows, err := b.pool.Query(ctx, `SELECT extract(epoch FROM created_at)::float8, extract(epoch FROM dispatched_at)::float8
		FROM waybill.orders WHERE id > $1`, fromID)
	if err != nil {
		return nil, err
	}
	type times struct{ created, dispatched *float64 }
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (times, error) {
		var t times
		return t, r.Scan(&t.created, &t.dispatched)
	})
	if err != nil {
		return nil, err
	}
	base := float64(t0.UnixMicro()) / 1e6
	loadEnd := cfg.duration.Seconds()
	var lat []float64
	latBySecond := map[int][]float64{}
	for _, t := range all {
		res.InsertedInDB++
		if t.dispatched == nil || t.created == nil {
			continue
		}
		res.Dispatched++
		l := (*t.dispatched - *t.created) * 1000
		lat = append(lat, l)
		sec := int(*t.created - base)
		latBySecond[sec] = append(latBySecond[sec], l)
		d := *t.dispatched - base
		res.LastDispatchSeconds = max(res.LastDispatchSeconds, d)
		if d <= loadEnd {
			res.DispatchedUnderLoadPerSecond++
		}
	}
	res.DispatchedUnderLoadPerSecond /= loadEnd
	if res.LastDispatchSeconds > 0 {
		res.DispatchedOverallPerSecond = float64(res.Dispatched) / res.LastDispatchSeconds
	}
	res.LatencyMs = Summarize(lat)
	res.Lost = res.InsertedInDB - res.Dispatched

	after, err := b.stack.sandboxStats(ctx)
	if err != nil {
		return nil, err
	}
	res.Carrier = after
	res.CarrierTasksDelta = after.TasksCreated - before.TasksCreated
	res.DuplicatedTasks = after.DuplicatedExternal - before.DuplicatedExternal

	// Timeline.
	n := int(math.Ceil(max(res.LastDispatchSeconds, lastCommit, loadEnd))) + 1
	dues := make([]float64, pacer.Total())
	for i := range dues {
		dues[i] = pacer.Due(i).Sub(t0).Seconds()
	}
	offered, sent, done := perSecond(dues, n), perSecond(run.sendAt, n), perSecond(run.doneAt, n)
	res.Timeline = timeline(n, samples, func(p *SecondPoint) {
		s := p.Second
		p.Offered, p.Sent, p.Done = offered[s], sent[s], done[s]
		if l := latBySecond[s]; len(l) > 0 {
			slices.Sort(l)
			p.P50Ms, p.P99Ms = jsonFloat(Percentile(l, 50)), jsonFloat(Percentile(l, 99))
		} else {
			p.P50Ms, p.P99Ms = jsonFloat(math.NaN()), jsonFloat(math.NaN())
		}
	})
	return res, nil
}

// timeline builds n one-second points; Processed and CPU come from the sampler's per-second
// differences (column B), the rest from fill.
func timeline(n int, samples []sample, fill func(*SecondPoint)) []SecondPoint {
	out := make([]SecondPoint, n)
	for s := range out {
		out[s].Second = s
		out[s].Processed = jsonFloat(math.NaN())
		fill(&out[s])
	}
	for k := 1; k < len(samples); k++ {
		a, b := samples[k-1], samples[k]
		if a.failed || b.failed {
			continue
		}
		s := int(math.Round(a.T))
		if s < 0 || s >= n {
			continue
		}
		dt := b.T - a.T
		if dt <= 0 {
			continue
		}
		out[s].Processed = jsonFloat(float64(b.B-a.B) / dt)
		out[s].ServeCores = max(0, b.CPU.Serve-a.CPU.Serve) / dt
		out[s].SandboxCores = max(0, b.CPU.Sandbox-a.CPU.Sandbox) / dt
		pg := max(0, b.CPU.Postgres-a.CPU.Postgres)
		if b.CPU.Backends != nil {
			pg = min(pg, backendDelta(a.CPU.Backends, b.CPU.Backends))
		}
		out[s].PGCores = pg / dt
		out[s].BenchCores = max(0, b.CPU.Bench-a.CPU.Bench) / dt
		out[s].BusyCores = max(0, b.CPU.MachineBusy-a.CPU.MachineBusy) / dt
	}
	return out
}
