// Package daemon runs `waybill serve`: the HTTP API, River's workers and the dispatch completer
// over one Postgres pool, started and stopped in order.
package daemon

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"riverqueue.com/riverui"

	"github.com/waybill/waybill/internal/alarm"
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

// Serve runs Waybill until ctx ends.
func Serve(ctx context.Context, cfg *config.Config, logger *slog.Logger, opts Options) error {
	if opts.ShutdownTimeout == 0 {
		opts.ShutdownTimeout = 20 * time.Second
	}
	// One line per failure per interval, however many loops and requests meet it (an outage).
	logger = throttledLogger(logger, DefaultLogThrottle)
	pool, err := newPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()

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
	names := make([]string, 0, len(carriers))
	for name := range carriers {
		names = append(names, name)
	}
	if err := dbsqlc.New().CarrierEnsure(ctx, pool, names); err != nil {
		return fmt.Errorf("register carriers: %w", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	met := metrics.New(reg, pool, logger)
	// The recorder writes carrier-auth and webhook-signature observations for the alarms; it
	// flushes its last observations on the way out, before the pool closes.
	recorder := alarm.NewRecorder(pool, logger, nil)
	recorderCtx, stopRecorder := context.WithCancel(context.WithoutCancel(ctx))
	recorderDone := make(chan struct{})
	go func() { defer close(recorderDone); recorder.Run(recorderCtx) }()
	defer func() { stopRecorder(); <-recorderDone }()
	hooks := dispatchHooks{met, recorder}

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

	completer := dispatch.NewStore(dispatch.StoreConfig{Pool: pool, Hooks: hooks, Logger: logger, KeepFinishedJobs: cfg.KeepFinishedJobs > 0})
	dispatcher := dispatch.NewDispatcher(dispatch.DispatcherConfig{
		Pool:       pool,
		Carriers:   carriers,
		Limiters:   limiters,
		Store:      completer,
		Hooks:      hooks,
		Logger:     logger,
		StuckAfter: cfg.BatchStuckAfter,

		CrashAfterBatchAnswer: cfg.TestCrashAt == "batch-answered",
	})
	workers := river.NewWorkers()
	river.AddWorker(workers, dispatch.NewWorker(dispatch.WorkerConfig{
		Dispatcher: dispatcher,
		Store:      completer,
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

	sources, err := webhook.NewSources(webhookSources...)
	if err != nil {
		return err
	}
	webhookMetrics, err := webhook.NewMetrics(reg, names...)
	if err != nil {
		return err
	}
	pipeline, err := webhook.NewPipeline(webhook.Deps{
		Pool: pool, Sources: sources, Logger: logger, CallbackEnabled: cfg.CallbackURL != "",
		Batches: dispatcher, KeepFinishedJobs: cfg.KeepFinishedJobs > 0,
	})
	if err != nil {
		return err
	}
	if err := pipeline.Add(workers); err != nil {
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
	riverLogger := cmp.Or(opts.RiverLogger, logger)
	client, err := river.NewClient(riverpgxv5.New(pool), riverConfig(cfg, ownsRiver, workers, queues, append(alarm.PeriodicJobs(alarmCfg), reconcilePeriodic...), riverLogger))
	if err != nil {
		return fmt.Errorf("create river client: %w", err)
	}

	webhooks, err := webhook.NewHandler(webhook.HandlerConfig{
		Pool: pool, Sources: sources, Logger: logger,
		Hooks: webhookHooks{webhookMetrics, recorder},
	})
	if err != nil {
		return err
	}

	var riverUI http.Handler
	if cfg.AdminUser != "" {
		ui, err := riverui.NewHandler(&riverui.HandlerOpts{
			Endpoints: riverui.NewEndpoints(client, nil),
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
		stopMetrics, err := serveMetrics(cfg.MetricsAddr, opts.MetricsListener, publicMetrics, logger)
		if err != nil {
			return err
		}
		defer stopMetrics()
		publicMetrics = nil
	}
	handler := httpapi.NewHandler(httpapi.Deps{
		Orders:      orders.NewStore(pool),
		IntakeToken: cfg.IntakeToken,
		Logger:      logger,
		Ready:       func(ctx context.Context) error { return metrics.Ready(ctx, pool, metrics.RiverRunning(client.Stopped)) },
		Metrics:     publicMetrics,
		Webhooks:    webhooks,
		RiverUI:     riverUI,
	})
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	ln := opts.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return fmt.Errorf("listen on %s (WAYBILL_HTTP_ADDR): %w", cfg.HTTPAddr, err)
		}
	}

	if cfg.PprofAddr != "" {
		stopPprof, err := servePprof(cfg.PprofAddr, logger)
		if err != nil {
			return err
		}
		defer stopPprof()
	}

	// The completer outlives River's stop: jobs still running when River stops wait on it.
	completerCtx, stopCompleter := context.WithCancel(context.WithoutCancel(ctx))
	completerDone := make(chan struct{})
	go func() { defer close(completerDone); completer.Run(completerCtx) }()
	defer func() { stopCompleter(); <-completerDone }()
	// The dispatcher too: its requests in flight finish and are recorded before it stops.
	dispatcherCtx, stopDispatcher := context.WithCancel(context.WithoutCancel(ctx))
	dispatcherDone := make(chan struct{})
	go func() { defer close(dispatcherDone); dispatcher.Run(dispatcherCtx) }()
	defer func() { stopDispatcher(); <-dispatcherDone }()
	// So do the webhook pipeline's batches; webhook intake's group commit outlives the HTTP
	// server, whose requests in flight at shutdown wait on it.
	webhookCtx, stopWebhooks := context.WithCancel(context.WithoutCancel(ctx))
	var webhooksDone sync.WaitGroup
	webhooksDone.Go(func() { pipeline.Run(webhookCtx) })
	webhooksDone.Go(func() { webhooks.Run(webhookCtx) })
	defer func() { stopWebhooks(); webhooksDone.Wait() }()

	// River gets its own context: cancelling Start's context would hard-stop it.
	if err := client.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("start river: %w", err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	baseURL := "http://" + ln.Addr().String()
	logger.InfoContext(ctx, "waybill serving", "addr", ln.Addr().String(), "carriers", names)
	if opts.OnReady != nil {
		opts.OnReady(baseURL)
	}

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		runErr = fmt.Errorf("http server: %w", err)
	}
	logger.Info("waybill stopping")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), opts.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		logger.Warn("http shutdown", "error", err)
	}
	if err := client.Stop(shutdownCtx); err != nil {
		logger.Warn("river did not stop in time; cancelling running jobs", "error", err)
		hardCtx, hardCancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer hardCancel()
		if err := client.StopAndCancel(hardCtx); err != nil {
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
func buildCarriers(cfg *config.Config, pool *pgxpool.Pool, logger *slog.Logger) (map[string]carrier.Carrier, map[string]carrier.Limiter, []webhook.Source, error) {
	onfleetSource, err := webhook.NewOnfleet(cfg.OnfleetWebhookSecret)
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
	sources := []webhook.Source{onfleetSource}
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
