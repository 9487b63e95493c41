package daemon

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"riverqueue.com/riverui"

	"github.com/waybill/waybill/internal/alarm"
	"github.com/waybill/waybill/internal/background"
	"github.com/waybill/waybill/internal/carrier"
	"github.com/waybill/waybill/internal/carrier/generic"
	"github.com/waybill/waybill/internal/carrier/onfleet"
	"github.com/waybill/waybill/internal/config"
	"github.com/waybill/waybill/internal/dbsqlc"
	"github.com/waybill/waybill/internal/dispatch"
	"github.com/waybill/waybill/internal/httpapi"
	"github.com/waybill/waybill/internal/metrics"
	"github.com/waybill/waybill/internal/migrate"
	"github.com/waybill/waybill/internal/notify"
	"github.com/waybill/waybill/internal/orders"
	"github.com/waybill/waybill/internal/ratelimit"
	"github.com/waybill/waybill/internal/reconcile"
	"github.com/waybill/waybill/internal/webhook"
)

// Options are what tests and `waybill dev` change about serving.
type Options struct {
	// Listener to serve on; nil listens on cfg.HTTPAddr.
	Listener net.Listener
	// OnReady is called with the base URL once the service serves.
	OnReady func(baseURL string)
	// ShutdownTimeout bounds a graceful stop (default 20s).
	ShutdownTimeout time.Duration
	// MetricsListener serves /metrics when cfg.MetricsAddr is set; nil listens on it.
	MetricsListener net.Listener
	// RiverLogger is River's and River UI's logger (quieter than the service's); nil uses the
	// service's.
	RiverLogger *slog.Logger
}

// Serve runs Waybill until ctx ends: wire builds the service, run starts it and stops it in
// order. It owns opts.Listener: closed on the way out, early or not.
func Serve(ctx context.Context, cfg *config.Config, logger *slog.Logger, opts Options) error {
	if opts.ShutdownTimeout == 0 {
		opts.ShutdownTimeout = 20 * time.Second
	}
	// One line per failure per interval, however many loops and requests meet it (an outage).
	logger = throttledLogger(logger, DefaultLogThrottle)
	s := &service{cfg: cfg, logger: logger, opts: opts}
	defer s.close()
	if opts.Listener != nil {
		s.onClose(func() { _ = opts.Listener.Close() }) // the server closes it too; twice is harmless
	}
	if err := s.wire(ctx); err != nil {
		return err
	}
	return s.run(ctx)
}

// service is Waybill wired: everything built, nothing running yet.
type service struct {
	cfg    *config.Config
	logger *slog.Logger
	opts   Options

	pool       *pgxpool.Pool
	carriers   []string
	recorder   *alarm.Recorder
	store      *dispatch.Store
	dispatcher *dispatch.Dispatcher
	pipeline   *webhook.Pipeline
	intake     *webhook.Handler
	client     *river.Client[pgx.Tx]
	srv        *http.Server
	ln         net.Listener

	closers []func() // see close
}

// onClose adds f to what close undoes: the pool, listeners, side servers.
func (s *service) onClose(f func()) { s.closers = append(s.closers, f) }

// close undoes what wire built, last first; the pool closes last.
func (s *service) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
}

// wire connects to Postgres, checks it, and builds every part of the service. Nothing runs yet;
// whatever it opened is closed by close, also when it fails half way.
func (s *service) wire(ctx context.Context) error {
	cfg, logger := s.cfg, s.logger
	pool, err := newPool(ctx, cfg)
	if err != nil {
		return err
	}
	s.pool = pool
	s.onClose(pool.Close)

	if err := checkMigrated(ctx, pool); err != nil {
		return err
	}
	ownsRiver, err := ownsRiverTables(ctx, pool)
	if err != nil {
		return err
	}
	if !ownsRiver {
		logger.InfoContext(ctx, "this login does not own River's tables (waybill_service): River's nightly reindex is off; reindex as the owner (RUNBOOK)")
	}

	carriers, limiters, webhookSources, err := buildCarriers(cfg, pool, logger)
	if err != nil {
		return err
	}
	for name := range carriers {
		s.carriers = append(s.carriers, name)
	}
	if err := dbsqlc.New().CarrierEnsure(ctx, pool, s.carriers); err != nil {
		return fmt.Errorf("register carriers: %w", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	met := metrics.New(reg, pool, logger)
	// The recorder writes carrier-auth and webhook-signature observations for the alarms.
	s.recorder = alarm.NewRecorder(pool, logger, nil)
	hooks := dispatchHooks{met, s.recorder}

	notifier, err := notify.New(pool, notify.Config{
		SMTPURL:         cfg.SMTPURL,
		MailFrom:        cfg.MailFrom,
		LogisticsEmail:  cfg.LogisticsEmail,
		SlackWebhookURL: cfg.SlackWebhookURL,
		CallbackURL:     cfg.CallbackURL,
		CallbackSecret:  cfg.CallbackSecret,
		Logger:          logger,
		Now:             time.Now,
	})
	if err != nil {
		return err
	}

	s.store = dispatch.NewStore(dispatch.StoreConfig{Pool: pool, Hooks: hooks, Logger: logger, KeepFinishedJobs: cfg.KeepFinishedJobs > 0})
	s.dispatcher = dispatch.NewDispatcher(dispatch.DispatcherConfig{
		Pool:       pool,
		Carriers:   carriers,
		Limiters:   limiters,
		Store:      s.store,
		Hooks:      hooks,
		Logger:     logger,
		StuckAfter: cfg.BatchStuckAfter,

		CrashAfterBatchAnswer: cfg.TestCrashAt == "batch-answered",
	})
	workers := river.NewWorkers()
	river.AddWorker(workers, dispatch.NewWorker(dispatch.WorkerConfig{
		Dispatcher: s.dispatcher,
		Store:      s.store,
		Pool:       pool,
		Logger:     logger,
	}))
	notify.AddWorkers(workers, notifier)
	alarmCfg := alarm.Config{
		BacklogAlertAfter: cfg.BacklogAlertAfter,
		SilenceAlertAfter: cfg.SilenceAlertAfter,
		BatchStuckAfter:   cfg.BatchStuckAfter,
		Logger:            logger,
		Metrics:           met,

		CheckInterval:       cfg.AlarmCheckInterval,
		WebhookGapThreshold: int64(cfg.WebhookGapThreshold),
		WebhookGapWindow:    cfg.WebhookGapWindow,
	}
	alarm.AddWorkers(workers, pool, alarmCfg)
	reconcilePeriodic, err := addReconcile(workers, reg, pool, cfg, carriers, logger)
	if err != nil {
		return err
	}

	sources, err := carrier.NewSources(webhookSources...)
	if err != nil {
		return err
	}
	webhookMetrics, err := webhook.NewMetrics(reg, s.carriers...)
	if err != nil {
		return err
	}
	s.pipeline, err = webhook.NewPipeline(webhook.Deps{
		Pool: pool, Sources: sources, Logger: logger, CallbackEnabled: cfg.CallbackURL != "",
		Batches: s.dispatcher, KeepFinishedJobs: cfg.KeepFinishedJobs > 0,
	})
	if err != nil {
		return err
	}
	if err := s.pipeline.Add(workers); err != nil {
		return err
	}

	queues := map[string]river.QueueConfig{
		dispatch.QueueDispatch:   {MaxWorkers: cfg.DispatchWorkers},
		notify.QueueNotify:       {MaxWorkers: 20},
		alarm.QueueAlarm:         {MaxWorkers: 1},
		reconcile.QueueReconcile: {MaxWorkers: 1},
	}
	// Translate and act jobs wait for their step's next batch (one transaction, one connection
	// for all of them): many workers make large batches, and hold no connection while waiting.
	maps.Copy(queues, webhook.Queues(500))
	riverLogger := cmp.Or(s.opts.RiverLogger, logger)
	s.client, err = river.NewClient(riverpgxv5.New(pool), riverConfig(cfg, ownsRiver, workers, queues, append(alarm.PeriodicJobs(alarmCfg), reconcilePeriodic...), riverLogger))
	if err != nil {
		return fmt.Errorf("create river client: %w", err)
	}

	s.intake, err = webhook.NewHandler(webhook.HandlerConfig{
		Pool: pool, Sources: sources, Logger: logger,
		Hooks: webhookHooks{webhookMetrics, s.recorder},
	})
	if err != nil {
		return err
	}

	var riverUI http.Handler
	if cfg.AdminUser != "" {
		ui, err := riverui.NewHandler(&riverui.HandlerOpts{
			Endpoints: riverui.NewEndpoints(s.client, nil),
			Logger:    riverLogger, // it logs every API error, 404s included, at INFO
			Prefix:    "/riverui",
		})
		if err != nil {
			return fmt.Errorf("create river ui: %w", err)
		}
		if err := ui.Start(ctx); err != nil {
			return fmt.Errorf("start river ui: %w", err)
		}
		riverUI = httpapi.BasicAuth(cfg.AdminUser, cfg.AdminPassword, ui)
	} else {
		logger.WarnContext(ctx, "River UI not mounted: WAYBILL_ADMIN_USER and WAYBILL_ADMIN_PASSWORD are not set")
	}

	// /metrics is unauthenticated: with WAYBILL_METRICS_ADDR it is served there only (bind it to
	// a private interface), not on the public listener.
	publicMetrics := metrics.Handler(reg)
	if cfg.MetricsAddr != "" {
		stopMetrics, err := serveMetrics(cfg.MetricsAddr, s.opts.MetricsListener, publicMetrics, logger)
		if err != nil {
			return err
		}
		s.onClose(stopMetrics)
		publicMetrics = nil
	}
	client := s.client
	s.srv = &http.Server{
		Handler: httpapi.NewHandler(httpapi.Deps{
			Orders:      orders.NewStore(pool),
			IntakeToken: cfg.IntakeToken,
			Logger:      logger,
			Ready:       func(ctx context.Context) error { return metrics.Ready(ctx, pool, metrics.RiverRunning(client.Stopped)) },
			Metrics:     publicMetrics,
			Webhooks:    s.intake,
			RiverUI:     riverUI,
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	if cfg.PprofAddr != "" {
		stopPprof, err := servePprof(cfg.PprofAddr, logger)
		if err != nil {
			return err
		}
		s.onClose(stopPprof)
	}
	s.ln = s.opts.Listener
	if s.ln == nil {
		if s.ln, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return fmt.Errorf("listen on %s (WAYBILL_HTTP_ADDR): %w", cfg.HTTPAddr, err)
		}
		ln := s.ln
		s.onClose(func() { _ = ln.Close() })
	}
	return nil
}

// run starts the background loops, River and the HTTP server, and stops them in order once ctx
// ends (or the server fails): HTTP first, then River, then the loops they wait on, last started
// first. The loops outlive River's stop: jobs still running wait on the store, the dispatcher
// and the pipeline's batches, and requests still in flight on intake's group commit.
func (s *service) run(ctx context.Context) error {
	logger := s.logger
	var loops background.Group
	defer loops.Stop()
	loops.Start(ctx, s.recorder.Run) // flushes its last observations on the way out
	loops.Start(ctx, s.store.Run)
	loops.Start(ctx, s.dispatcher.Run) // its requests in flight finish and are recorded
	loops.Start(ctx, s.pipeline.Run)
	loops.Start(ctx, s.intake.Run)

	// River gets its own context: cancelling Start's context would hard-stop it.
	if err := s.client.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("start river: %w", err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- s.srv.Serve(s.ln) }()
	logger.InfoContext(ctx, "waybill serving", "addr", s.ln.Addr().String(), "carriers", s.carriers)
	if s.opts.OnReady != nil {
		s.opts.OnReady("http://" + s.ln.Addr().String())
	}

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		runErr = fmt.Errorf("http server: %w", err)
	}
	logger.Info("waybill stopping")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	if err := s.srv.Shutdown(shutdownCtx); err != nil {
		logger.Warn("http shutdown", "error", err)
	}
	if err := s.client.Stop(shutdownCtx); err != nil {
		logger.Warn("river did not stop in time; cancelling running jobs", "error", err)
		hardCtx, hardCancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer hardCancel()
		if err := s.client.StopAndCancel(hardCtx); err != nil {
			logger.Error("river stop and cancel", "error", err)
		}
	}
	return runErr
}

func newPool(ctx context.Context, cfg *config.Config) (*pgxpool.Pool, error) {
	pcfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	pcfg.MaxConns = cfg.DBMaxConns
	pcfg.ConnConfig.RuntimeParams["application_name"] = "waybill"
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("connect to Postgres: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to Postgres (DATABASE_URL): %w", err)
	}
	return pool, nil
}

// checkMigrated refuses to serve a database that lacks migrations, without DDL: serve may run
// as waybill_service, which reads and writes rows and nothing else.
func checkMigrated(ctx context.Context, pool *pgxpool.Pool) error {
	return migrate.CheckApplied(ctx, pool)
}

// ownsRiverTables reports whether the login may reindex River's job table (owns it, or is a
// member of its owner).
func ownsRiverTables(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	var owns bool
	err := pool.QueryRow(ctx, `SELECT pg_has_role(current_user, c.relowner, 'USAGE') FROM pg_class c WHERE c.oid = $1::regclass`,
		migrate.Schema+".river_job").Scan(&owns)
	if err != nil {
		return false, fmt.Errorf("check who owns River's tables: %w", err)
	}
	return owns, nil
}

// reindexIndexes is River's default when serve may reindex, none otherwise.
func reindexIndexes(owns bool) []string {
	if owns {
		return nil
	}
	return []string{}
}

// riverConfig tunes River for a dispatch queue that must keep up with thousands of orders a
// second, and for crash recovery within two minutes.
func riverConfig(cfg *config.Config, ownsRiver bool, workers *river.Workers, queues map[string]river.QueueConfig, periodic []*river.PeriodicJob, logger *slog.Logger) *river.Config {
	return &river.Config{
		Schema:       migrate.Schema,
		Logger:       throttledLogger(logger, DefaultLogThrottle),
		Workers:      workers,
		Queues:       queues,
		PeriodicJobs: periodic,
		// No LISTEN: River's control channel (pause, resume, cancel) and its insert and
		// leadership channels are plain NOTIFY, which Postgres lets any login that can connect
		// send, so acting on them would let any such login pause every queue or cancel running
		// jobs. Polling does the same work from tables only Waybill writes: producers fetch
		// every FetchPollInterval (the outbox sends no NOTIFY anyway), poll queue settings and
		// cancellation requests every 2 s (River UI's pause and cancel), and a resigned leader
		// is replaced within 5 s. BENCHMARKS.md has the latency this costs.
		PollOnly: true,
		// The outbox trigger sends no NOTIFY (it would halve insert throughput), so idle
		// producers poll; the cooldown lets a busy producer fetch again right away.
		FetchPollInterval: cfg.DispatchPoll,
		FetchCooldown:     min(cfg.DispatchPoll/5, 10*time.Millisecond),
		// After a crash, a job left running is rescued once RescueAfter has passed; jobs can't
		// legitimately run longer than JobTimeout, which is shorter.
		JobTimeout:           cfg.JobTimeout,
		RescueStuckJobsAfter: cfg.RescueAfter,
		// Finished jobs are evidence only briefly. Dead ones are copied into waybill.dead_jobs
		// (which can re-insert a job River already deleted), but River UI can only show and
		// retry jobs that still exist, so keep those a month.
		CompletedJobRetentionPeriod: max(cfg.CompletedRetention, cfg.KeepFinishedJobs),
		// River reindexes its job indexes daily, which only their owner may do. Under a login
		// that owns nothing (waybill_service) the reindexer would fail every night: off, and
		// ops reindex as the owner instead (RUNBOOK).
		ReindexerIndexNames:         reindexIndexes(ownsRiver),
		DiscardedJobRetentionPeriod: 30 * 24 * time.Hour,
		CancelledJobRetentionPeriod: 30 * 24 * time.Hour,
	}
}

// buildCarriers makes one adapter per configured carrier (Onfleet, plus those declared in
// WAYBILL_CARRIERS_FILE), the request budget of each carrier that has a rate limit (shared by
// every instance through Postgres), and their webhook sources.
func buildCarriers(cfg *config.Config, pool *pgxpool.Pool, logger *slog.Logger) (map[string]carrier.Carrier, map[string]carrier.Limiter, []carrier.Source, error) {
	onfleetSource, err := onfleet.NewSource(cfg.OnfleetWebhookSecret)
	if err != nil {
		return nil, nil, nil, err
	}
	limiters := map[string]carrier.Limiter{}
	if cfg.OnfleetRateLimit > 0 {
		limiters[onfleet.Name] = ratelimit.NewShared(pool, onfleet.Name, cfg.OnfleetRateLimit, logger)
	}
	carriers := map[string]carrier.Carrier{
		onfleet.Name: onfleet.New(onfleet.Options{
			BaseURL: cfg.OnfleetBaseURL,
			APIKey:  cfg.OnfleetAPIKey,
			Limiter: limiters[onfleet.Name],
			Timeout: cfg.CarrierTimeout,
			Logger:  logger,
		}),
	}
	sources := []carrier.Source{onfleetSource}
	if cfg.CarriersFile == "" {
		return carriers, limiters, sources, nil
	}
	configs, err := generic.LoadFile(cfg.CarriersFile)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("WAYBILL_CARRIERS_FILE: %w", err)
	}
	for _, gc := range configs {
		gc.Timeout = cmp.Or(gc.Timeout, cfg.CarrierTimeout)
		if gc.RateLimit > 0 {
			limiters[gc.Name] = ratelimit.NewShared(pool, gc.Name, gc.RateLimit, logger)
			gc.Limiter = limiters[gc.Name]
		}
		c, err := generic.New(gc, logger)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("WAYBILL_CARRIERS_FILE: %w", err)
		}
		carriers[c.Name()] = c
		sources = append(sources, c.WebhookSource())
	}
	return carriers, limiters, sources, nil
}
