package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/waybill/waybill/internal/archive"
	"github.com/waybill/waybill/internal/carrier/sandbox"
	"github.com/waybill/waybill/internal/config"
	"github.com/waybill/waybill/internal/daemon"
	"github.com/waybill/waybill/internal/deadletter"
	"github.com/waybill/waybill/internal/devenv"
	"github.com/waybill/waybill/internal/migrate"
)

// parseFlags parses a subcommand's flags; mistakes are usage errors (exit 2).
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return errUsage
	}
	return nil
}

// runSandbox serves the Onfleet-compatible sandbox carrier until ctx ends.
func runSandbox(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("waybill sandbox", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8081", "listen address")
	opts := sandbox.RegisterFlags(fs)
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if err := opts.Validate(); err != nil {
		fmt.Fprintln(stderr, "waybill sandbox:", err)
		return errUsage
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("sandbox: listen on %s: %w", *addr, err)
	}
	srv := sandbox.New(*opts, logger)
	defer srv.Close()
	fmt.Fprintf(stdout, "sandbox carrier (Onfleet API) on http://%s\n", ln.Addr())
	return serveUntilDone(ctx, ln, srv.Handler())
}

func serveUntilDone(ctx context.Context, ln net.Listener, h http.Handler) error {
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 120 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return hs.Shutdown(shutdownCtx)
}

// runWithPool runs a database CLI (dead, archive) against DATABASE_URL.
func runWithPool(ctx context.Context, getenv func(string) string, fn func(*pgxpool.Pool) error) error {
	dbURL := strings.TrimSpace(getenv("DATABASE_URL"))
	if dbURL == "" {
		return errors.New("configuration: DATABASE_URL: required")
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	defer pool.Close()
	return fn(pool)
}

func runDead(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return runWithPool(ctx, getenv, func(pool *pgxpool.Pool) error {
		return cliError(deadletter.RunCLI(ctx, args, pool, stdout, stderr))
	})
}

func runArchive(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return runWithPool(ctx, getenv, func(pool *pgxpool.Pool) error {
		return cliError(archive.RunCLI(ctx, args, pool, stdout, stderr))
	})
}

// cliError maps -h to success; other errors stand.
func cliError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// runDev is `make run`: Postgres found or started, migrations, the sandbox carrier sending
// webhooks back, and the service wired to it, with everything printed.
func runDev(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("waybill dev", flag.ContinueOnError)
	demo := fs.Int("demo", 0, "insert N sample orders once the service is up")
	addr := fs.String("addr", "127.0.0.1:8080", "the service's listen address")
	sandboxAddr := fs.String("sandbox-addr", "127.0.0.1:8081", "the sandbox carrier's listen address")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if *demo < 0 || *demo > 100000 {
		fmt.Fprintln(stderr, "waybill dev: --demo takes a number from 0 to 100000")
		return errUsage
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	pg, err := devenv.FindPostgres(ctx, devenv.Options{DatabaseURL: getenv("DATABASE_URL"), Stdout: stdout}, logger)
	if err != nil {
		return err
	}
	defer pg.Stop(context.WithoutCancel(ctx)) //nolint:errcheck
	if err := migrate.Up(ctx, pg.URL, logger); err != nil {
		return err
	}

	env := devEnv(getenv, pg.URL, *addr, *sandboxAddr)
	sandboxLn, err := net.Listen("tcp", *sandboxAddr)
	if err != nil {
		return fmt.Errorf("sandbox: listen on %s (--sandbox-addr): %w", *sandboxAddr, err)
	}
	sb := sandbox.New(sandbox.Options{
		WebhookURL:           "http://" + *addr + "/webhooks/onfleet",
		WebhookSecret:        env["ONFLEET_WEBHOOK_SECRET"],
		WebhookStep:          3 * time.Second,
		WebhookFailureRate:   0.1,
		WebhookDuplicateRate: 0.05,
		WebhookReorderRate:   0.05,
		WebhookWorkers:       sandbox.DefaultWebhookWorkers,
		Seed:                 time.Now().UnixNano(),
	}, logger)
	defer sb.Close()
	sandboxCtx, stopSandbox := context.WithCancel(ctx)
	defer stopSandbox()
	go serveUntilDone(sandboxCtx, sandboxLn, sb.Handler()) //nolint:errcheck

	cfg, err := config.FromEnv(func(k string) string { return env[k] })
	if err != nil {
		return err
	}
	return daemon.Serve(ctx, cfg, logger, daemon.Options{OnReady: func(baseURL string) {
		printDevBanner(stdout, pg, cfg, baseURL, "http://"+sandboxLn.Addr().String())
		if *demo > 0 {
			insertDemo(ctx, pg.URL, *demo, stdout, logger)
		}
	}})
}

// devEnv is the environment `waybill dev` serves with: the caller's, with the sandbox and
// generated secrets filled in where unset.
func devEnv(getenv func(string) string, dbURL, addr, sandboxAddr string) map[string]string {
	env := map[string]string{}
	for _, k := range []string{"WAYBILL_INTAKE_TOKEN", "WAYBILL_ADMIN_USER", "WAYBILL_ADMIN_PASSWORD", "SMTP_URL", "MAIL_FROM",
		"LOGISTICS_EMAIL", "SLACK_WEBHOOK_URL", "WAYBILL_CALLBACK_URL", "WAYBILL_CALLBACK_SECRET", "WAYBILL_LOG_LEVEL",
		"WAYBILL_BACKLOG_ALERT_AFTER", "WAYBILL_SILENCE_ALERT_AFTER", "WAYBILL_DISPATCH_WORKERS", "WAYBILL_CARRIERS_FILE"} {
		if v := getenv(k); v != "" {
			env[k] = v
		}
	}
	set := func(k, v string) {
		if env[k] == "" {
			env[k] = v
		}
	}
	env["DATABASE_URL"] = dbURL
	env["WAYBILL_HTTP_ADDR"] = addr
	env["ONFLEET_BASE_URL"] = "http://" + sandboxAddr
	env["ONFLEET_API_KEY"] = "sandbox"
	env["ONFLEET_RATE_LIMIT"] = "0"
	env["ONFLEET_WEBHOOK_SECRET"] = randomHex(32)
	set("WAYBILL_INTAKE_TOKEN", randomHex(16))
	set("WAYBILL_ADMIN_USER", "admin")
	set("WAYBILL_ADMIN_PASSWORD", randomHex(8))
	set("LOGISTICS_EMAIL", "logistics@example.com")
	return env
}

func printDevBanner(w io.Writer, pg *devenv.Postgres, cfg *config.Config, baseURL, sandboxURL string) {
	fmt.Fprintf(w, `
Waybill is running.

  Service      %[1]s          (health %[1]s/healthz, ready %[1]s/readyz, metrics %[1]s/metrics)
  River UI     %[1]s/riverui/  user %[2]s  password %[3]s
  Sandbox      %[4]s          (Onfleet API fake; stats %[4]s/sandbox/stats)
  Postgres     %[5]s  (%[6]s)
  Intake       curl -H 'Authorization: Bearer %[7]s' %[1]s/v1/orders/SO-1001

Try the monolith's side:

  psql '%[5]s'

%[8]s

  SELECT external_id, status, carrier_ref, tracking_url FROM waybill.orders ORDER BY id DESC LIMIT 5;

The sandbox then walks each task through its lifecycle with signed webhooks:
  SELECT order_id, status, carrier_status, occurred_at FROM waybill.order_events ORDER BY id DESC LIMIT 10;

Ctrl-C stops everything.
`, baseURL, cfg.AdminUser, cfg.AdminPassword, sandboxURL, pg.URL, pg.Source, cfg.IntakeToken, devenv.ExampleInsert("SO-1001"))
}

func insertDemo(ctx context.Context, dbURL string, n int, w io.Writer, logger *slog.Logger) {
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		logger.Error("demo orders", "error", err)
		return
	}
	defer pool.Close()
	ids, err := devenv.InsertDemoOrders(ctx, pool, n)
	if err != nil {
		logger.Error("demo orders", "error", err)
		return
	}
	fmt.Fprintf(w, "Inserted %d demo orders (%s … %s).\n", len(ids), ids[0], ids[len(ids)-1])
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
