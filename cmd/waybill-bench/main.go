package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/waybill/waybill/internal/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "waybill-bench:", err)
		}
		os.Exit(1)
	}
}

type envList []string

func (e *envList) String() string     { return strings.Join(*e, " ") }
func (e *envList) Set(v string) error { *e = append(*e, v); return nil }

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("waybill-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	defaultDB := getenv("TEST_DATABASE_URL")
	if defaultDB == "" {
		defaultDB = "postgres://root@127.0.0.1:5432/test?sslmode=disable"
	}
	o := bench.Options{}
	var serveEnv envList
	fs.StringVar(&o.DatabaseURL, "database-url", defaultDB, "Postgres server to create the bench's own database `waybill_bench_<pid>` on (dropped at the end)")
	fs.StringVar(&o.Mode, "mode", "all", "orders | backlog | webhooks | carrier | all")
	fs.Float64Var(&o.Rate, "rate", 3000, "orders offered per second")
	fs.DurationVar(&o.Duration, "duration", 60*time.Second, "how long orders (and webhooks) are offered")
	fs.IntVar(&o.Backlog, "backlog", 100000, "orders in the backlog mode, and no-op jobs in River's reference")
	fs.IntVar(&o.Clients, "clients", 16, "database connections of the monolith (INSERT load and references)")
	fs.StringVar(&o.OutDir, "out", "bench-out", "directory for results.json, the charts and the processes' logs")
	fs.StringVar(&o.WaybillBin, "waybill-bin", "", "waybill binary to test (default: go build ./cmd/waybill into a temporary directory)")
	fs.DurationVar(&o.RefDuration, "ref-duration", 10*time.Second, "duration of the plain INSERT reference and of the outbox INSERT probe")
	fs.IntVar(&o.RefWorkers, "ref-workers", 2000, "MaxWorkers of River's no-op reference")
	fs.DurationVar(&o.RefFetchCooldown, "ref-fetch-cooldown", 2*time.Millisecond, "FetchCooldown of River's no-op reference")
	fs.DurationVar(&o.RefFetchPoll, "ref-fetch-poll", 20*time.Millisecond, "FetchPollInterval of River's no-op reference")
	fs.BoolVar(&o.RefVariants, "ref-variants", false, "also drain River no-op jobs with the order payload in their args and without River's GIN indexes (what job size and those indexes cost)")
	fs.BoolVar(&o.SkipRefs, "skip-refs", false, "skip the reference measurements (ratios are then not reported)")
	fs.DurationVar(&o.CarrierLowDuration, "carrier-low-duration", 30*time.Second, "carrier mode: how long 1 order/s is offered (latency of a lone order)")
	fs.Float64Var(&o.CarrierRate, "carrier-rate", 200, "carrier mode: steady one-row INSERTs per second")
	fs.DurationVar(&o.CarrierDuration, "carrier-duration", 20*time.Second, "carrier mode: how long the steady load lasts")
	fs.IntVar(&o.CarrierBulk, "carrier-bulk", 20000, "carrier mode: orders inserted in one statement")
	fs.BoolVar(&o.CarrierWebhook, "carrier-webhook", true, "carrier mode: register Onfleet's batch-completed webhook (trigger 19), as `waybill carriers register` does; false: batches settle by polling only")
	fs.StringVar(&o.SandboxBin, "sandbox-bin", "", "waybill binary whose sandbox carrier to run (default: the tested one)")
	fs.Float64Var(&o.WebhookRate, "webhook-rate", 0, "webhook events offered per second (default: -rate)")
	fs.DurationVar(&o.WebhookDuration, "webhook-duration", 0, "how long webhooks are offered (default: -duration)")
	fs.IntVar(&o.WebhookConcurrency, "webhook-concurrency", 64, "concurrent webhook requests (keep-alive connections)")
	fs.DurationVar(&o.DrainTimeout, "drain-timeout", 2*time.Minute, "how long to wait after the load for everything to be processed")
	fs.StringVar(&o.ServeDBParams, "serve-db-params", "", "URL query parameters added to serve's DATABASE_URL; pgx sends unknown ones as Postgres settings, e.g. plan_cache_mode=force_generic_plan")
	fs.Var(&serveEnv, "serve-env", "KEY=VALUE for `waybill serve` (repeatable), e.g. -serve-env WAYBILL_DISPATCH_WORKERS=1000")
	fs.BoolVar(&o.Pprof, "pprof", false, "serve Go's profiler from waybill serve (WAYBILL_PPROF_ADDR) and save a CPU profile of each load, with `go tool pprof -top` summaries")
	fs.BoolVar(&o.Perf, "perf", false, "record a system-wide CPU profile (perf record -a -g) during each load and summarise it")
	fs.DurationVar(&o.Timeout, "timeout", 30*time.Minute, "hard limit for the whole run; everything is stopped and dropped after it")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o.ServeEnv = serveEnv
	o.Command = strings.Join(args, " ")
	return bench.Run(ctx, o, stdout, stderr)
}
