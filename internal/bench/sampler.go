package bench

import (
	"cmp"
	"context"
	"maps"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// cpuSnapshot is cumulative CPU seconds of each party on the machine at one moment.
type cpuSnapshot struct {
	Serve, Sandbox, Postgres, Bench, MachineBusy float64
	// Backends is the CPU of the Postgres processes that work for the bench database, or for
	// no database (WAL writer, checkpointer…), by pid. The machine's Postgres may serve other
	// databases too; their work is not ours and counts as noise.
	Backends map[int]float64
}

// backendPIDs lists the Postgres processes serving dbName or no database.
func backendPIDs(ctx context.Context, pool *pgxpool.Pool) []int {
	if pool == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	rows, err := pool.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database() OR datname IS NULL`)
	if err != nil {
		return nil
	}
	pids, _ := pgx.CollectRows(rows, pgx.RowTo[int32])
	out := make([]int, len(pids))
	for i, p := range pids {
		out[i] = int(p)
	}
	return out
}

// takeCPU reads the CPU time of the serve and sandbox processes (pid 0: none), of every
// Postgres process and of those working for the bench database (found through pool; nil: not
// split), of the bench itself, and of the whole machine.
func takeCPU(ctx context.Context, pool *pgxpool.Pool, servePID, sandboxPID int) cpuSnapshot {
	s := cpuSnapshot{Backends: map[int]float64{}}
	for _, pid := range backendPIDs(ctx, pool) {
		if ps, err := ReadProcStat(pid); err == nil {
			s.Backends[pid] = ps.CPUSeconds
		}
	}
	if servePID > 0 {
		if ps, err := ReadProcStat(servePID); err == nil {
			s.Serve = ps.CPUSeconds
		}
	}
	if sandboxPID > 0 {
		if ps, err := ReadProcStat(sandboxPID); err == nil {
			s.Sandbox = ps.CPUSeconds
		}
	}
	s.Postgres = CommandCPUSeconds("postgres")
	if ps, err := ReadProcStat(os.Getpid()); err == nil {
		s.Bench = ps.CPUSeconds
	}
	if m, err := ReadMachineCPU(); err == nil {
		s.MachineBusy = m.Busy
	}
	return s
}

// CPUUsage is the CPU seconds each party used in a window. Postgres is this run's share of
// Postgres (its database's backends and the shared background processes); PostgresOther is
// Postgres working for other databases. Sandbox is the carrier fake, which in production would
// run elsewhere. Other is the machine's busy time that none of them account for: anything else
// on the box (other databases' queries, builds, tests). The figures are only as clean as Other
// is small.
type CPUUsage struct {
	WindowSeconds float64 `json:"window_seconds"`
	Serve         float64 `json:"serve_cpu_seconds"`
	Sandbox       float64 `json:"sandbox_cpu_seconds"`
	Postgres      float64 `json:"postgres_cpu_seconds"`
	PostgresOther float64 `json:"postgres_other_databases_cpu_seconds"`
	Bench         float64 `json:"bench_cpu_seconds"`
	MachineBusy   float64 `json:"machine_busy_cpu_seconds"`
	Other         float64 `json:"other_cpu_seconds"`
	Cores         int     `json:"cores"`
}

// backendDelta is the CPU the processes in b used since a; one absent from a started in
// between, so all of its time counts.
func backendDelta(a, b map[int]float64) float64 {
	var sum float64
	for pid, t := range b {
		sum += max(0, t-a[pid])
	}
	return sum
}

func cpuUsage(a, b cpuSnapshot, window time.Duration, cores int) CPUUsage {
	u := CPUUsage{
		WindowSeconds: window.Seconds(),
		Serve:         max(0, b.Serve-a.Serve),
		Sandbox:       max(0, b.Sandbox-a.Sandbox),
		Postgres:      max(0, b.Postgres-a.Postgres),
		Bench:         max(0, b.Bench-a.Bench),
		MachineBusy:   max(0, b.MachineBusy-a.MachineBusy),
		Cores:         cores,
	}
	if b.Backends != nil {
		ours := min(u.Postgres, backendDelta(a.Backends, b.Backends))
		u.Postgres, u.PostgresOther = ours, u.Postgres-ours
	}
	u.Other = max(0, u.MachineBusy-u.Serve-u.Sandbox-u.Postgres-u.Bench)
	return u
}

// sample is one per-second observation: rows of the phase's table and how many of them are
// done (dispatched, translated), cumulative, and cumulative CPU.
type sample struct {
	T      float64 // seconds since the phase started
	A, B   int64   // rows, done rows
	CPU    cpuSnapshot
	failed bool
}

// sampler observes a phase once a second from the database and /proc.
type sampler struct {
	mu      sync.Mutex
	samples []sample
	stop    context.CancelFunc
	done    chan struct{}
}

// progress counts a table's rows after fromID and those of them whose done column is set,
// without rescanning what is known. Rows get done roughly in id order (River fetches oldest
// first), so each sample reads only a window of rows after a watermark; below it every row is
// done except a few stragglers (a job waiting for a retry while later rows got done), whose
// ids are kept and re-read until they are done. Counts of done rows more than a window ahead of
// the watermark show up once it gets there. A count over the whole table every second cost Postgres a visible
// share of its time at 100,000 rows.
type progress struct {
	table, doneCol string
	watermark      int64   // every row with fromID < id <= watermark is done or a straggler
	below          int64   // rows with fromID < id <= watermark
	stragglers     []int64 // rows below the watermark not done when it passed them
	pass, keep     int     // progressPass and maxStragglers (tests lower them)
}

const (
	// progressWindow bounds the rows one sample reads after the watermark.
	progressWindow = 20000
	// progressPass is how many pending rows the watermark may pass (and keep as stragglers)
	// in one sample, and maxStragglers how many it keeps in all; past that it waits.
	progressPass  = 500
	maxStragglers = 20000
)

// newProgress counts table's rows (id > fromID) and those with doneCol set. table and doneCol
// are the bench's own constants.
func newProgress(table, doneCol string, fromID int64) *progress {
	return &progress{table: table, doneCol: doneCol, watermark: fromID, pass: progressPass, keep: maxStragglers}
}

// read returns the cumulative rows and done rows, and advances the watermark.
func (p *progress) read(ctx context.Context, pool *pgxpool.Pool) (rows, done int64, err error) {
	if len(p.stragglers) > 0 {
		var still []int64
		if err := pool.QueryRow(ctx, `SELECT coalesce(array_agg(id), '{}') FROM `+p.table+
			` WHERE id = ANY($1) AND `+p.doneCol+` IS NULL`, p.stragglers).Scan(&still); err != nil {
			return 0, 0, err
		}
		p.stragglers = still
	}
	// The window after the watermark: its rows, done rows, and the first pending ids the
	// watermark may pass (not if too many stragglers are kept already).
	pass := max(0, min(p.pass, p.keep-len(p.stragglers)))
	var (
		inWindow, doneInWindow, passedRows, last int64
		pending                                  []int64
	)
	// Only pending rows with done rows after them are passed: when work simply lags, the
	// watermark waits instead of collecting the whole lag as stragglers.
	err = pool.QueryRow(ctx, `WITH w AS (
			SELECT id, `+p.doneCol+` IS NOT NULL AS done FROM `+p.table+` WHERE id > $1 ORDER BY id LIMIT $2
		), last_done AS (
			SELECT max(id) AS id FROM w WHERE done
		), pending AS (
			SELECT id, row_number() OVER (ORDER BY id) AS n FROM w WHERE NOT done
		), stop AS (
			SELECT min(pending.id) AS id FROM pending, last_done
			WHERE pending.n > $3 OR last_done.id IS NULL OR pending.id > last_done.id
		)
		SELECT (SELECT count(*) FROM w), (SELECT count(*) FROM w WHERE done),
			(SELECT count(*) FROM w, stop WHERE stop.id IS NULL OR w.id < stop.id),
			(SELECT coalesce(array_agg(pending.id ORDER BY pending.id), '{}') FROM pending, stop WHERE stop.id IS NULL OR pending.id < stop.id),
			coalesce((SELECT CASE WHEN stop.id IS NULL THEN (SELECT max(id) FROM w) ELSE stop.id - 1 END FROM stop), $1)`,
		p.watermark, progressWindow, pass).Scan(&inWindow, &doneInWindow, &passedRows, &pending, &last)
	if err != nil {
		return 0, 0, err
	}
	rows = p.below + inWindow
	done = p.below - int64(len(p.stragglers)) + doneInWindow
	p.below += passedRows
	p.watermark = last
	p.stragglers = append(p.stragglers, pending...)
	return rows, done, nil
}

// startSampler reads progress every second from t0, with the CPU of each party.
func startSampler(ctx context.Context, pool *pgxpool.Pool, t0 time.Time, prog *progress, pids func() (serve, sandbox int)) *sampler {
	ctx, cancel := context.WithCancel(ctx)
	s := &sampler{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for k := 0; ; k++ {
			next := t0.Add(time.Duration(k) * time.Second)
			if d := time.Until(next); d > 0 && sleepCtx(ctx, d) != nil {
				return
			}
			servePID, sandboxPID := pids()
			cpu, at := takeCPU(ctx, pool, servePID, sandboxPID), time.Since(t0).Seconds()
			var sm sample
			qctx, cancel := context.WithTimeout(ctx, 900*time.Millisecond)
			var err error
			sm.A, sm.B, err = prog.read(qctx, pool)
			cancel()
			if ctx.Err() != nil {
				return
			}
			sm.T, sm.CPU, sm.failed = at, cpu, err != nil
			s.mu.Lock()
			s.samples = append(s.samples, sm)
			s.mu.Unlock()
		}
	}()
	return s
}

func (s *sampler) finish() []sample {
	s.stop()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.samples)
}

// WaitShare is how often Postgres backends of one application were seen active in one state:
// where the database's time goes, without pg_stat_statements. Wait "CPU" means active with no
// wait event (running, or in a wait Postgres does not instrument). Query, when set, is the
// start of the statement they were running.
type WaitShare struct {
	Application string  `json:"application"`
	Wait        string  `json:"wait,omitempty"`
	Query       string  `json:"query,omitempty"`
	Samples     int     `json:"samples"`
	Share       float64 `json:"share"`
}

// PostgresActivity is what sampling pg_stat_activity found, by wait state and by statement.
// OtherDatabasesActive is the mean number of active backends working for other databases of
// the same server: they share its WAL and disk, so the figures are clean only when it is ~0.
type PostgresActivity struct {
	Samples              int         `json:"samples"`
	ByWait               []WaitShare `json:"by_wait"`
	ByQuery              []WaitShare `json:"by_query"`
	OtherDatabasesActive float64     `json:"other_databases_active"`
	OtherDatabases       []string    `json:"other_databases,omitempty"`
}

type activityKey struct{ app, wait, query string }

// waitSampler samples pg_stat_activity of the bench database every 50 ms.
type waitSampler struct {
	mu      sync.Mutex
	byWait  map[activityKey]int
	byQuery map[activityKey]int
	total   int
	rounds  int
	others  int
	otherDB map[string]bool
	stop    context.CancelFunc
	done    chan struct{}
}

func startWaitSampler(ctx context.Context, pool *pgxpool.Pool, dbName string) *waitSampler {
	ctx, cancel := context.WithCancel(ctx)
	w := &waitSampler{byWait: map[activityKey]int{}, byQuery: map[activityKey]int{}, otherDB: map[string]bool{}, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for sleepCtx(ctx, 50*time.Millisecond) == nil {
			rows, err := pool.Query(ctx, `SELECT datname, application_name,
					coalesce(wait_event_type || ':' || wait_event, 'CPU'),
					left(regexp_replace(query, '\s+', ' ', 'g'), 90)
				FROM pg_stat_activity
				WHERE datname IS NOT NULL AND state = 'active' AND pid <> pg_backend_pid()`)
			if err != nil {
				continue
			}
			w.mu.Lock()
			w.rounds++
			for rows.Next() {
				var db string
				var k activityKey
				if rows.Scan(&db, &k.app, &k.wait, &k.query) != nil {
					continue
				}
				if db != dbName {
					w.others++
					w.otherDB[db] = true
					continue
				}
				w.byWait[activityKey{app: k.app, wait: k.wait}]++
				w.byQuery[activityKey{app: k.app, query: k.query}]++
				w.total++
			}
			w.mu.Unlock()
			rows.Close()
		}
	}()
	return w
}

// finish stops sampling and returns the top states and statements, largest first.
func (w *waitSampler) finish(top int) PostgresActivity {
	w.stop()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	a := PostgresActivity{Samples: w.rounds, ByWait: w.ranked(w.byWait, top), ByQuery: w.ranked(w.byQuery, top)}
	if w.rounds > 0 {
		a.OtherDatabasesActive = float64(w.others) / float64(w.rounds)
	}
	a.OtherDatabases = slices.Sorted(maps.Keys(w.otherDB))
	return a
}

func (w *waitSampler) ranked(m map[activityKey]int, top int) []WaitShare {
	out := make([]WaitShare, 0, len(m))
	for _, k := range slices.Collect(maps.Keys(m)) {
		n := m[k]
		out = append(out, WaitShare{Application: k.app, Wait: k.wait, Query: k.query, Samples: n, Share: float64(n) / float64(max(w.total, 1))})
	}
	slices.SortFunc(out, func(a, b WaitShare) int {
		return cmp.Or(cmp.Compare(b.Samples, a.Samples), cmp.Compare(a.Application+a.Wait+a.Query, b.Application+b.Wait+b.Query))
	})
	return out[:min(top, len(out))]
}
