package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// refSchema holds the references' tables, apart from Waybill's schema.
const refSchema = "bench_ref"

// The monolith's statement, and the same statement on a table of the same shape without
// Waybill's triggers.
const (
	outboxInsertSQL = `INSERT INTO waybill.orders (external_id, carrier, payload) VALUES ($1, 'onfleet', $2)`
	plainInsertSQL  = `INSERT INTO bench_ref.plain_orders (external_id, carrier, payload) VALUES ($1, 'onfleet', $2)`
)

// InsertRate is a closed-loop run of one-row INSERT transactions: each client sends its next
// INSERT as soon as the last one committed.
type InsertRate struct {
	Target    string  `json:"target"`
	Clients   int     `json:"clients"`
	Rows      int     `json:"rows"`
	Errors    int     `json:"errors"`
	FirstErr  string  `json:"first_error,omitempty"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"per_second"`
	// LatencyMs is INSERT to COMMIT as the client saw it.
	LatencyMs Summary  `json:"latency_ms"`
	CPU       CPUUsage `json:"cpu"`
	// OtherDatabasesActive: see PostgresActivity.
	OtherDatabasesActive float64 `json:"other_databases_active"`
}

// closedLoopInsert runs one-row INSERT transactions from clients connections until d has passed
// or n rows are in (whichever is set). Row i has external id prefix+i. It opens its own
// connections; observer is used to watch the database meanwhile.
func closedLoopInsert(ctx context.Context, observer *pgxpool.Pool, stmt, prefix string, clients int, d time.Duration, n int) (InsertRate, error) {
	pool, err := newPool(ctx, observer.Config().ConnString(), "waybill-bench-monolith", int32(clients))
	if err != nil {
		return InsertRate{}, err
	}
	defer pool.Close()
	var (
		next     atomic.Int64
		rows     atomic.Int64
		errs     atomic.Int64
		firstErr atomic.Value
		mu       sync.Mutex
		lat      []float64
		wg       sync.WaitGroup
	)
	cpu0 := takeCPU(ctx, observer, 0, 0)
	noise := startWaitSampler(ctx, observer, observer.Config().ConnConfig.Database)
	start := time.Now()
	deadline := time.Time{}
	if d > 0 {
		deadline = start.Add(d)
	}
	now := time.Now()
	for range clients {
		wg.Go(func() {
			conn, err := pool.Acquire(ctx)
			if err != nil {
				firstErr.CompareAndSwap(nil, err.Error())
				errs.Add(1)
				return
			}
			defer conn.Release()
			local := make([]float64, 0, 4096)
			for ctx.Err() == nil {
				if !deadline.IsZero() && time.Now().After(deadline) {
					break
				}
				i := int(next.Add(1) - 1)
				if n > 0 && i >= n {
					break
				}
				t0 := time.Now()
				_, err := conn.Exec(ctx, stmt, fmt.Sprintf("%s%d", prefix, i), orderPayload(i, now))
				if err != nil {
					if ctx.Err() != nil {
						break
					}
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				local = append(local, float64(time.Since(t0).Microseconds())/1000)
				rows.Add(1)
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	activity := noise.finish(0)
	r := InsertRate{
		Clients:   clients,
		Rows:      int(rows.Load()),
		Errors:    int(errs.Load()),
		Seconds:   elapsed,
		PerSecond: float64(rows.Load()) / elapsed,
		LatencyMs: Summarize(lat),
		CPU:       cpuUsage(cpu0, takeCPU(ctx, observer, 0, 0), time.Since(start), runtime.NumCPU()),

		OtherDatabasesActive: activity.OtherDatabasesActive,
	}
	if s, ok := firstErr.Load().(string); ok {
		r.FirstErr = s
	}
	if err := ctx.Err(); err != nil {
		return r, err
	}
	if r.Rows == 0 {
		return r, fmt.Errorf("no INSERT succeeded: %s", r.FirstErr)
	}
	return r, nil
}

// measurePlainInsert is reference (a): the monolith's one-row INSERT into a table as wide as
// waybill.orders, with its indexes and CHECKs but without Waybill's triggers.
func measurePlainInsert(ctx context.Context, pool *pgxpool.Pool, clients int, d time.Duration) (InsertRate, error) {
	if _, err := pool.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS bench_ref;
		CREATE TABLE bench_ref.plain_orders (LIKE waybill.orders INCLUDING ALL)`); err != nil {
		return InsertRate{}, fmt.Errorf("create reference table: %w", err)
	}
	r, err := closedLoopInsert(ctx, pool, plainInsertSQL, "plain-", clients, d, 0)
	r.Target = "bench_ref.plain_orders (waybill.orders' columns, indexes and CHECKs; no triggers)"
	if err != nil {
		return r, fmt.Errorf("plain INSERT reference: %w", err)
	}
	if _, err := pool.Exec(ctx, `TRUNCATE bench_ref.plain_orders`); err != nil {
		return r, err
	}
	return r, nil
}

// RiverDrain is reference (b): River working off a backlog of jobs that do nothing.
type RiverDrain struct {
	// Variant says how this drain differs from the main reference (empty for the main one).
	Variant         string  `json:"variant,omitempty"`
	Jobs            int     `json:"jobs"`
	ArgsBytes       int     `json:"args_bytes"`
	MaxWorkers      int     `json:"max_workers"`
	FetchCooldownMs float64 `json:"fetch_cooldown_ms"`
	FetchPollMs     float64 `json:"fetch_poll_interval_ms"`
	InsertSeconds   float64 `json:"insert_seconds"`
	// Seconds is from the first job's fetch (attempted_at) to the last one's completion
	// (finalized_at), both as River stored them; PerSecond is Jobs over it.
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"per_second"`
	// WallSeconds is from the client's Start to every job completed in the database.
	WallSeconds          float64  `json:"wall_seconds"`
	CPU                  CPUUsage `json:"cpu"`
	OtherDatabasesActive float64  `json:"other_databases_active"`
}

// noopArgs are shaped like a dispatch job's args (the order's identity), so River fetches as
// many bytes per job as it does for Waybill: the reference is River's cost for these jobs.
// The payload is only set by the variant that measures what carrying the order would cost.
type noopArgs struct {
	OrderID    int64           `json:"order_id"`
	ExternalID string          `json:"external_id"`
	Carrier    string          `json:"carrier"`
	Payload    json.RawMessage `json:"payload,omitempty"`
}

func (noopArgs) Kind() string { return "bench_noop" }

type riverRefConfig struct {
	jobs          int
	workers       int
	fetchCooldown time.Duration
	fetchPoll     time.Duration
	// payloadArgs puts the whole order payload in the args; dropGIN drops River's GIN indexes
	// on args and metadata first. Both are experiments: what a bigger job and those indexes cost.
	payloadArgs bool
	dropGIN     bool
}

func (c riverRefConfig) variant() string {
	switch {
	case c.payloadArgs && c.dropGIN:
		return "args with the order payload, no GIN indexes on args/metadata"
	case c.payloadArgs:
		return "args with the order payload"
	case c.dropGIN:
		return "no GIN indexes on args/metadata"
	}
	return ""
}

func measureRiverNoop(ctx context.Context, dbURL string, cfg riverRefConfig, logger *slog.Logger) (RiverDrain, error) {
	res := RiverDrain{Variant: cfg.variant(), Jobs: cfg.jobs, MaxWorkers: cfg.workers,
		FetchCooldownMs: ms(cfg.fetchCooldown), FetchPollMs: ms(cfg.fetchPoll)}
	// As many connections as the service's default pool (WAYBILL_DB_MAX_CONNS).
	pool, err := newPool(ctx, dbURL, "waybill-bench-river-ref", 40)
	if err != nil {
		return res, err
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+refSchema); err != nil {
		return res, err
	}
	driver := riverpgxv5.New(pool)
	migrator, err := rivermigrate.New(driver, &rivermigrate.Config{Schema: refSchema, Logger: quiet(logger)})
	if err != nil {
		return res, err
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return res, fmt.Errorf("migrate River into %s: %w", refSchema, err)
	}
	if cfg.dropGIN {
		if _, err := pool.Exec(ctx, `DROP INDEX IF EXISTS bench_ref.river_job_args_index, bench_ref.river_job_metadata_index`); err != nil {
			return res, err
		}
	}

	var worked atomic.Int64
	workers := river.NewWorkers()
	river.AddWorker(workers, river.WorkFunc(func(context.Context, *river.Job[noopArgs]) error {
		worked.Add(1)
		return nil
	}))
	client, err := river.NewClient(driver, &river.Config{
		Schema:            refSchema,
		Logger:            quiet(logger),
		Workers:           workers,
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.workers}},
		FetchCooldown:     cfg.fetchCooldown,
		FetchPollInterval: cfg.fetchPoll,
	})
	if err != nil {
		return res, err
	}

	now := time.Now()
	t0 := time.Now()
	const chunk = 5000
	for i := 0; i < cfg.jobs; i += chunk {
		batch := make([]river.InsertManyParams, 0, chunk)
		for j := i; j < min(i+chunk, cfg.jobs); j++ {
			a := noopArgs{OrderID: int64(j), ExternalID: fmt.Sprintf("bench-%d", j), Carrier: "onfleet"}
			if cfg.payloadArgs {
				a.Payload = orderPayload(j, now)
			}
			if j == 0 {
				b, _ := json.Marshal(a)
				res.ArgsBytes = len(b)
			}
			batch = append(batch, river.InsertManyParams{Args: a})
		}
		if _, err := client.InsertManyFast(ctx, batch); err != nil {
			return res, fmt.Errorf("insert no-op jobs: %w", err)
		}
	}
	res.InsertSeconds = time.Since(t0).Seconds()

	cpu0 := takeCPU(ctx, pool, 0, 0)
	noise := startWaitSampler(ctx, pool, pool.Config().ConnConfig.Database)
	defer noise.finish(0)
	start := time.Now()
	if err := client.Start(ctx); err != nil {
		return res, err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
		defer cancel()
		_ = client.Stop(stopCtx)
	}()
	deadline := start.Add(10 * time.Minute)
	for worked.Load() < int64(cfg.jobs) {
		if err := sleepCtx(ctx, 5*time.Millisecond); err != nil {
			return res, err
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("River worked only %d of %d no-op jobs in 10 minutes", worked.Load(), cfg.jobs)
		}
	}
	// Worked is not yet completed: River's completer commits in batches. Done is when the
	// database says so.
	for {
		var left int64
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM bench_ref.river_job WHERE state <> 'completed'`).Scan(&left); err != nil {
			return res, err
		}
		if left == 0 {
			break
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return res, err
		}
		if time.Now().After(deadline) {
			return res, errors.New("River's no-op jobs were worked but not all completed within 10 minutes")
		}
	}
	res.WallSeconds = time.Since(start).Seconds()
	res.CPU = cpuUsage(cpu0, takeCPU(ctx, pool, 0, 0), time.Since(start), runtime.NumCPU())
	res.OtherDatabasesActive = noise.finish(0).OtherDatabasesActive
	if err := pool.QueryRow(ctx, `SELECT extract(epoch FROM max(finalized_at) - min(attempted_at))::float8
		FROM bench_ref.river_job`).Scan(&res.Seconds); err != nil {
		return res, err
	}
	res.PerSecond = float64(cfg.jobs) / res.Seconds
	// Leave nothing behind that the next phases would pay for.
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
	defer cancel()
	_ = client.Stop(stopCtx)
	if _, err := pool.Exec(ctx, `TRUNCATE bench_ref.river_job`); err != nil {
		return res, err
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE bench_ref.river_job`); err != nil {
		return res, err
	}
	return res, nil
}

func quiet(logger *slog.Logger) *slog.Logger {
	return slog.New(levelFilter{logger.Handler(), slog.LevelWarn})
}

type levelFilter struct {
	slog.Handler
	min slog.Level
}

func (f levelFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.min && f.Handler.Enabled(ctx, l)
}

func (f levelFilter) WithAttrs(attrs []slog.Attr) slog.Handler {
	return levelFilter{f.Handler.WithAttrs(attrs), f.min}
}

func (f levelFilter) WithGroup(name string) slog.Handler {
	return levelFilter{f.Handler.WithGroup(name), f.min}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
