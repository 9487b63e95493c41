package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/procfs"
)

// Options are waybill-bench's flags.
type Options struct {
	DatabaseURL string // server to create the bench database on
	Mode        string // orders, backlog, webhooks, all
	Rate        float64
	Duration    time.Duration
	Backlog     int
	Clients     int
	OutDir      string
	WaybillBin  string // empty: build ./cmd/waybill

	RefDuration      time.Duration // plain INSERT reference and outbox INSERT probe
	RefWorkers       int           // River no-op reference MaxWorkers
	RefFetchCooldown time.Duration
	RefFetchPoll     time.Duration
	SkipRefs         bool
	RefVariants      bool // also drain with the order payload in the args, and without River's GIN indexes

	// The carrier mode: a sandbox enforcing CarrierLimit requests/s, two instances.
	CarrierLowDuration time.Duration // 1 order/s for this long
	CarrierRate        float64       // steady one-row INSERTs per second
	CarrierDuration    time.Duration
	CarrierBulk        int    // orders in one INSERT
	CarrierWebhook     bool   // register the batch-completed webhook (trigger 19)
	SandboxBin         string // empty: WaybillBin

	WebhookRate        float64 // 0: Rate
	WebhookDuration    time.Duration
	WebhookConcurrency int

	DrainTimeout time.Duration
	ServeEnv     []string // KEY=VALUE for waybill serve, e.g. WAYBILL_DISPATCH_WORKERS=1000
	// ServeDBParams are added to serve's DATABASE_URL; pgx sends unknown ones to Postgres as
	// session settings, e.g. plan_cache_mode=force_generic_plan.
	ServeDBParams string
	Perf          bool // record a system-wide perf profile during each load
	Pprof         bool // fetch a Go CPU profile of waybill serve during each load
	Timeout       time.Duration
	Command       string // how the bench was invoked, for the record
}

// Modes lists the valid -mode values.
var Modes = []string{"orders", "backlog", "webhooks", "carrier", "all"}

// Validate reports the first bad option.
func (o *Options) Validate() error {
	switch {
	case !strings.Contains(" "+strings.Join(Modes, " ")+" ", " "+o.Mode+" "):
		return fmt.Errorf("-mode must be one of %s, not %q", strings.Join(Modes, ", "), o.Mode)
	case o.Rate <= 0:
		return errors.New("-rate must be positive")
	case o.Duration < time.Second:
		return errors.New("-duration must be at least 1s")
	case o.Backlog < 1:
		return errors.New("-backlog must be at least 1")
	case o.Clients < 1 || o.Clients > 200:
		return errors.New("-clients must be between 1 and 200")
	case o.WebhookConcurrency < 1:
		return errors.New("-webhook-concurrency must be at least 1")
	}
	for _, kv := range o.ServeEnv {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("-serve-env %q: want KEY=VALUE", kv)
		}
	}
	return nil
}

// Results is everything a run measured; it is written as results.json.
type Results struct {
	Date     string          `json:"date"`
	Command  string          `json:"command"`
	Mode     string          `json:"mode"`
	Machine  Machine         `json:"machine"`
	Postgres PostgresInfo    `json:"postgres"`
	ServeEnv []string        `json:"serve_env"`
	ServeDB  string          `json:"serve_db_params,omitempty"`
	Plain    *InsertRate     `json:"ref_plain_insert,omitempty"`
	River    *RiverDrain     `json:"ref_river_noop,omitempty"`
	Variants []RiverDrain    `json:"ref_river_noop_variants,omitempty"`
	Outbox   *InsertRate     `json:"outbox_insert,omitempty"`
	Orders   *OrdersResult   `json:"orders,omitempty"`
	Webhooks *WebhooksResult `json:"webhooks,omitempty"`
	Backlog  *BacklogResult  `json:"backlog,omitempty"`
	Carrier  *CarrierResult  `json:"carrier,omitempty"`
	Checks   []Check         `json:"checks"`
	Errors   []string        `json:"errors,omitempty"`
	Files    []string        `json:"files"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs      int    `json:"cpus"`
	MemTotal  string `json:"mem_total"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
	LoadAvg   string `json:"load_average_at_start"`
}

// PostgresInfo is the server's version and the settings that matter for these figures.
type PostgresInfo struct {
	Version  string            `json:"version"`
	Settings map[string]string `json:"settings"`
	Database string            `json:"bench_database"`
}

type runner struct {
	opts   Options
	logger *slog.Logger
	db     *benchDatabase
	pool   *pgxpool.Pool // the bench's observer connections
	stack  *stack
	cores  int
	perf   []string // perf.data files to report on
	pprofs []string // Go CPU profiles of serve to summarise
	bin    string
}

func (b *runner) servePID() int {
	if b.stack.serve == nil || b.stack.serve.exited() {
		return 0
	}
	return b.stack.serve.pid()
}

func (b *runner) sandboxPID() int {
	if b.stack.sandbox == nil || b.stack.sandbox.exited() {
		return 0
	}
	return b.stack.sandbox.pid()
}

func (b *runner) pids() (serve, sandbox int) { return b.servePID(), b.sandboxPID() }

func (b *runner) maxID(ctx context.Context, table string) (int64, error) {
	var id int64
	err := b.pool.QueryRow(ctx, "SELECT coalesce(max(id), 0) FROM "+table).Scan(&id)
	return id, err
}

// Run runs the bench. Whatever happens, it stops what it started and drops its database
// before returning.
func Run(ctx context.Context, opts Options, stdout, stderr io.Writer) (err error) {
	if err := opts.Validate(); err != nil {
		return err
	}
	if opts.WebhookRate == 0 {
		opts.WebhookRate = opts.Rate
	}
	if opts.WebhookDuration == 0 {
		opts.WebhookDuration = opts.Duration
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := os.MkdirAll(opts.OutDir, 0o755); err != nil {
		return err
	}
	b := &runner{opts: opts, logger: logger, cores: runtime.NumCPU()}
	res := &Results{
		Date:     time.Now().UTC().Format(time.RFC3339),
		Command:  opts.Command,
		Mode:     opts.Mode,
		Machine:  machine(),
		ServeEnv: opts.ServeEnv,
		ServeDB:  opts.ServeDBParams,
	}

	bin := opts.WaybillBin
	if bin == "" {
		dir, err := os.MkdirTemp("", "waybill-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		logger.Info("building ./cmd/waybill")
		if bin, err = buildWaybill(ctx, dir); err != nil {
			return err
		}
	}

	if b.db, err = createBenchDatabase(ctx, opts.DatabaseURL, logger); err != nil {
		return err
	}
	defer func() {
		if dropErr := b.db.drop(); dropErr != nil {
			logger.Warn("drop bench database", "database", b.db.name, "error", dropErr)
		} else {
			logger.Info("dropped bench database", "database", b.db.name)
		}
	}()
	logger.Info("bench database created", "database", b.db.name)

	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	absOut, _ := filepath.Abs(opts.OutDir)
	b.bin = bin
	b.stack = &stack{bin: bin, sandboxBinary: opts.SandboxBin, dbURL: b.db.url, outDir: absOut, secretHex: hex.EncodeToString(secret),
		serveEnv: opts.ServeEnv, pprof: opts.Pprof, logger: logger}
	if opts.ServeDBParams != "" {
		u, err := url.Parse(b.db.url)
		if err != nil {
			return err
		}
		extra, err := url.ParseQuery(opts.ServeDBParams)
		if err != nil {
			return fmt.Errorf("-serve-db-params: %w", err)
		}
		q := u.Query()
		for k, vs := range extra {
			for _, v := range vs {
				q.Set(k, v)
			}
		}
		u.RawQuery = q.Encode()
		b.stack.serveDB = u.String()
	}
	defer b.stack.close()
	if err := b.stack.migrate(ctx); err != nil {
		return err
	}
	if b.pool, err = newPool(ctx, b.db.url, "waybill-bench", 4); err != nil {
		return err
	}
	defer b.pool.Close()
	res.Postgres = postgresInfo(ctx, b.pool, b.db.name)
	if err := b.stack.startSandbox(ctx); err != nil {
		return err
	}

	phaseErr := func(phase string, err error) {
		logger.Error("phase failed", "phase", phase, "error", err)
		res.Errors = append(res.Errors, phase+": "+err.Error())
	}
	mode := opts.Mode
	want := func(m string) bool { return mode == m || mode == "all" }

	// References, on the same Postgres, before Waybill runs.
	if !opts.SkipRefs && mode != "webhooks" && mode != "carrier" {
		logger.Info("reference: plain one-row INSERTs", "clients", opts.Clients, "duration", opts.RefDuration)
		if r, err := measurePlainInsert(ctx, b.pool, opts.Clients, opts.RefDuration); err != nil {
			phaseErr("reference plain INSERT", err)
		} else {
			res.Plain = &r
		}
		logger.Info("reference: River draining no-op jobs", "jobs", opts.Backlog, "workers", opts.RefWorkers)
		if r, err := measureRiverNoop(ctx, b.db.url, riverRefConfig{jobs: opts.Backlog, workers: opts.RefWorkers,
			fetchCooldown: opts.RefFetchCooldown, fetchPoll: opts.RefFetchPoll}, logger); err != nil {
			phaseErr("reference River no-op", err)
		} else {
			res.River = &r
		}
		if opts.RefVariants {
			for _, v := range []riverRefConfig{{payloadArgs: true}, {dropGIN: true}, {payloadArgs: true, dropGIN: true}} {
				v.jobs, v.workers, v.fetchCooldown, v.fetchPoll = opts.Backlog, opts.RefWorkers, opts.RefFetchCooldown, opts.RefFetchPoll
				logger.Info("reference variant: River draining no-op jobs", "variant", v.variant())
				r, err := measureRiverNoop(ctx, b.db.url, v, logger)
				if err != nil {
					phaseErr("reference River no-op, "+v.variant(), err)
					break
				}
				res.Variants = append(res.Variants, r)
			}
		}
	}
	if ctx.Err() != nil {
		return b.finish(ctx, res, stdout)
	}
	probeRows := 0
	if want("orders") {
		// The outbox INSERT at full speed, measured like the plain one, before the service ever
		// runs. The service then dispatches these orders before the orders phase: it meets the
		// load warm, as in production. (Truncating them instead left River's job table analyzed
		// as empty; the fetch's cached generic plan then became a sequential scan joined by
		// nested loop, seconds per fetch at 100,000 jobs — a trap worth knowing, not a fair
		// start.)
		logger.Info("outbox INSERT probe (service stopped)", "clients", opts.Clients, "duration", opts.RefDuration)
		r, err := closedLoopInsert(ctx, b.pool, outboxInsertSQL, "probe-", opts.Clients, opts.RefDuration, 0)
		r.Target = "waybill.orders (the outbox: validation and dispatch-job triggers), service stopped"
		res.Outbox = &r
		probeRows = r.Rows
		if err != nil {
			phaseErr("outbox INSERT probe", err)
		}
	}
	if want("orders") || mode == "webhooks" {
		if err := b.stack.startServe(ctx); err != nil {
			phaseErr("start waybill serve", err)
			return b.finish(ctx, res, stdout)
		}
	}
	if probeRows > 0 {
		logger.Info("service dispatching the probe's orders before the load", "orders", probeRows)
		if err := b.waitDispatched(ctx, 0, probeRows, opts.DrainTimeout); err != nil {
			phaseErr("dispatch the probe's orders", err)
		}
	}
	if want("orders") && ctx.Err() == nil {
		r, err := b.runOrders(ctx, ordersConfig{rate: opts.Rate, duration: opts.Duration, clients: opts.Clients,
			drainTimeout: opts.DrainTimeout, prefix: fmt.Sprintf("bench-%d-", time.Now().Unix())})
		if err != nil {
			phaseErr("orders", err)
		}
		res.Orders = r
	}
	// Backlog before webhooks: the webhook follow-up jobs would otherwise still run during the
	// drain and share its Postgres.
	if want("backlog") && ctx.Err() == nil {
		r, err := b.runBacklog(ctx, opts.Backlog, opts.Clients, opts.DrainTimeout, res.River)
		if err != nil {
			phaseErr("backlog", err)
		}
		res.Backlog = r
	}
	if want("webhooks") && ctx.Err() == nil && b.servePID() == 0 {
		if err := b.stack.startServe(ctx); err != nil {
			phaseErr("start waybill serve", err)
			return b.finish(ctx, res, stdout)
		}
	}
	if want("webhooks") && ctx.Err() == nil {
		r, err := b.runWebhooks(ctx, webhooksConfig{rate: opts.WebhookRate, duration: opts.WebhookDuration,
			concurrency: opts.WebhookConcurrency, clients: opts.Clients, drainTimeout: opts.DrainTimeout})
		if err != nil {
			phaseErr("webhooks", err)
		}
		res.Webhooks = r
	}
	if want("carrier") && ctx.Err() == nil {
		r, err := b.runCarrier(ctx, carrierConfig{lowRate: 1, lowFor: opts.CarrierLowDuration,
			steadyRate: opts.CarrierRate, steadyFor: opts.CarrierDuration, bulk: opts.CarrierBulk,
			carrierLimit: 20, instances: 2, limit: 18, drainTimeout: opts.DrainTimeout, webhook: opts.CarrierWebhook})
		if err != nil {
			phaseErr("carrier", err)
		}
		res.Carrier = r
	}
	return b.finish(ctx, res, stdout)
}

// finish writes what was measured, even after a failure or an interrupt.
func (b *runner) finish(ctx context.Context, res *Results, stdout io.Writer) error {
	if err := ctx.Err(); err != nil {
		res.Errors = append(res.Errors, "interrupted: "+err.Error())
	}
	res.Checks = checks(res)
	all := charts(res)
	for _, name := range slices.Sorted(maps.Keys(all)) {
		chart := all[name]
		path := filepath.Join(b.opts.OutDir, name+".svg")
		if err := writeFile(path, chart.WriteSVG); err != nil {
			b.logger.Warn("write chart", "path", path, "error", err)
			continue
		}
		res.Files = append(res.Files, path)
	}
	res.Files = append(res.Files, b.perfReports()...)
	for _, name := range []string{"serve.log", "sandbox.log", "migrate.log"} {
		if p := filepath.Join(b.opts.OutDir, name); fileExists(p) {
			res.Files = append(res.Files, p)
		}
	}
	jsonPath := filepath.Join(b.opts.OutDir, "results.json")
	res.Files = append(res.Files, jsonPath)
	if err := writeFile(jsonPath, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}); err != nil {
		return err
	}
	printTable(stdout, res)
	if len(res.Errors) > 0 {
		return fmt.Errorf("%d phase(s) failed; see above and %s", len(res.Errors), jsonPath)
	}
	return nil
}

// startPerf records, for d, a system-wide CPU profile (serve, Postgres and the bench alike)
// with -perf, and a Go CPU profile of serve with -pprof. The returned function waits for them.
func (b *runner) startPerf(ctx context.Context, name string, d time.Duration) func() {
	waitPprof := b.startPprof(ctx, name, d)
	waitPerf := b.startSystemPerf(ctx, name, d)
	return func() { waitPerf(); waitPprof() }
}

// startPprof reads /debug/pprof/profile from serve (WAYBILL_PPROF_ADDR) for d.
func (b *runner) startPprof(ctx context.Context, name string, d time.Duration) func() {
	if !b.opts.Pprof || b.stack.pprofURL == "" {
		return func() {}
	}
	path := filepath.Join(b.opts.OutDir, name+".serve.pprof")
	url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", b.stack.pprofURL, max(1, int(d.Seconds())))
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := (&http.Client{Timeout: d + 30*time.Second}).Do(req)
		if err != nil {
			b.logger.Warn("pprof", "error", err)
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.logger.Warn("pprof", "status", resp.Status)
			return
		}
		if err := writeFile(path, func(w io.Writer) error { _, err := io.Copy(w, resp.Body); return err }); err == nil {
			b.pprofs = append(b.pprofs, path)
		}
	}()
	return func() { <-done }
}

func (b *runner) startSystemPerf(ctx context.Context, name string, d time.Duration) func() {
	if !b.opts.Perf {
		return func() {}
	}
	path := filepath.Join(b.opts.OutDir, name+".perf.data")
	cmd := exec.CommandContext(ctx, "perf", "record", "-F", "199", "-g", "-a", "-o", path, "--", "sleep", fmt.Sprint(int(d.Seconds())))
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		b.logger.Warn("perf record", "error", err)
		return func() {}
	}
	b.perf = append(b.perf, path)
	return func() { _ = cmd.Wait() }
}

// perfReports summarises each recorded profile: Go profiles with `go tool pprof -top`, perf
// recordings by process and, for the service and Postgres, by function.
func (b *runner) perfReports() []string {
	var files []string
	for _, prof := range b.pprofs {
		out := strings.TrimSuffix(prof, ".pprof") + "-top.txt"
		text, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=60", b.bin, prof).Output()
		if err == nil && os.WriteFile(out, text, 0o644) == nil {
			files = append(files, out)
		}
		cum, err := exec.Command("go", "tool", "pprof", "-top", "-cum", "-nodecount=60", b.bin, prof).Output()
		if out := strings.TrimSuffix(prof, ".pprof") + "-cum.txt"; err == nil && os.WriteFile(out, cum, 0o644) == nil {
			files = append(files, out)
		}
		files = append(files, prof)
	}
	for _, data := range b.perf {
		base := strings.TrimSuffix(data, ".data")
		reports := map[string][]string{
			base + "-by-process.txt": {"--sort", "comm,dso"},
			base + "-serve.txt":      {"--comm", "waybill", "--sort", "sym"},
			base + "-postgres.txt":   {"--comm", "postgres", "--sort", "sym"},
			base + "-bench.txt":      {"--comm", "waybill-bench", "--sort", "sym"},
		}
		for out, args := range reports {
			all := append([]string{"report", "-i", data, "--stdio", "--no-children", "-g", "none", "--percent-limit", "0.5"}, args...)
			cmd := exec.Command("perf", all...)
			text, err := cmd.Output()
			if err != nil || len(text) == 0 {
				continue
			}
			if os.WriteFile(out, text, 0o644) == nil {
				files = append(files, out)
			}
		}
		files = append(files, data)
	}
	return files
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return m
	}
	if l, err := fs.LoadAvg(); err == nil {
		m.LoadAvg = fmt.Sprintf("%.2f %.2f %.2f", l.Load1, l.Load5, l.Load15)
	}
	if mi, err := fs.Meminfo(); err == nil && mi.MemTotal != nil {
		m.MemTotal = fmt.Sprintf("%.1f GiB", float64(*mi.MemTotal)/(1<<20))
	}
	return m
}

func postgresInfo(ctx context.Context, pool *pgxpool.Pool, dbName string) PostgresInfo {
	info := PostgresInfo{Settings: map[string]string{}, Database: dbName}
	_ = pool.QueryRow(ctx, "SHOW server_version").Scan(&info.Version)
	for _, name := range []string{"shared_buffers", "synchronous_commit", "max_connections", "wal_level", "fsync",
		"full_page_writes", "wal_buffers", "max_wal_size", "checkpoint_timeout", "commit_delay", "work_mem",
		"shared_preload_libraries", "autovacuum"} {
		var v string
		if pool.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v) == nil {
			info.Settings[name] = v
		}
	}
	return info
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
