package main

import (
	"bytes"
	"cmp"
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
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/waybill/waybill/internal/archive"
	"github.com/waybill/waybill/internal/carrier/sandbox"
	"github.com/waybill/waybill/internal/config"
	"github.com/waybill/waybill/internal/daemon"
	"github.com/waybill/waybill/internal/deadletter"
	"github.com/waybill/waybill/internal/devenv"
	"github.com/waybill/waybill/internal/migrate"
)

// newFlagSet is a command's flags; its usage shows synopsis, about and the flags.
func newFlagSet(name, synopsis, about string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s\n\n%s\n", synopsis, about)
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprintln(fs.Output(), "\nflags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parseFlags parses a command's flags wherever they stand among its arguments and returns the
// arguments (at most maxArgs). -h/--help prints the usage to stdout and returns errHelp, which
// run turns into exit status 0 before anything starts; mistakes print it to stderr and return
// errUsage (exit status 2).
func parseFlags(fs *flag.FlagSet, args []string, maxArgs int, stdout, stderr io.Writer) ([]string, error) {
	var out bytes.Buffer
	fs.SetOutput(&out)
	defer fs.SetOutput(stderr)
	var positional []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			_, _ = stdout.Write(out.Bytes())
			return nil, errHelp
		}
		_, _ = stderr.Write(out.Bytes())
		if err != nil {
			return nil, errUsage
		}
		if args = fs.Args(); len(args) == 0 {
			break
		}
		if args[0] == "--" {
			positional = append(positional, args[1:]...)
			break
		}
		positional, args = append(positional, args[0]), args[1:]
	}
	if len(positional) > maxArgs {
		fmt.Fprintf(stderr, "%s: unexpected arguments: %s\n\n", fs.Name(), strings.Join(positional[maxArgs:], " "))
		fs.SetOutput(stderr)
		fs.Usage()
		return nil, errUsage
	}
	return positional, nil
}

func isHelpArg(a string) bool { return a == "-h" || a == "-help" || a == "--help" }

// wantsHelp reports whether args (a command's, for packages that parse their own) ask for help.
func wantsHelp(args []string) bool {
	for i, a := range args {
		if a == "--" {
			return false
		}
		if isHelpArg(a) || (i == 0 && a == "help") {
			return true
		}
	}
	return false
}

// runSandbox serves the Onfleet-compatible sandbox carrier until ctx ends.
func runSandbox(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("waybill sandbox", "waybill sandbox [flags]",
		"Serves an Onfleet-compatible fake carrier, with fault injection, until interrupted.")
	addr := fs.String("addr", "127.0.0.1:8081", "listen address")
	opts := sandbox.RegisterFlags(fs)
	if _, err := parseFlags(fs, args, 0, stdout, stderr); err != nil {
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

// runWithPool runs a database CLI (dead, archive) against DATABASE_URL, or else against the
// database of the dev stack running here (.waybill/dev-stack.json). Asked for help, it connects
// to nothing and the CLI's usage goes to stdout.
func runWithPool(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer,
	cli func(context.Context, []string, *pgxpool.Pool, io.Writer, io.Writer) error,
) error {
	help := wantsHelp(args)
	if help {
		stderr = stdout
	}
	dbURL := strings.TrimSpace(getenv("DATABASE_URL"))
	if dbURL == "" {
		if stack, err := devenv.ReadStack(devenv.DefaultDir); err == nil {
			dbURL = stack.DatabaseURL
			if !help {
				fmt.Fprintf(stderr, "waybill: DATABASE_URL is not set: using the dev stack's database (%s)\n", redactURL(dbURL))
			}
		}
	}
	var pcfg *pgxpool.Config
	var err error
	if dbURL != "" {
		if pcfg, err = pgxpool.ParseConfig(dbURL); err != nil {
			return fmt.Errorf("DATABASE_URL: %w", err)
		}
	} else if help {
		// Nothing to connect to, and nothing should: the pool refuses if the CLI ever tries.
		pcfg, _ = pgxpool.ParseConfig("")
		pcfg.BeforeConnect = func(context.Context, *pgx.ConnConfig) error { return errNoDatabaseURL }
	} else {
		return errNoDatabaseURL
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg) // connects on first use
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	defer pool.Close()
	return cliError(cli(ctx, args, pool, stdout, stderr))
}

var errNoDatabaseURL = errors.New("configuration: DATABASE_URL: required (beside a running `make run` in this directory, its database is used)")

func runDead(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return runWithPool(ctx, args, getenv, stdout, stderr, deadletter.RunCLI)
}

func runArchive(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return runWithPool(ctx, args, getenv, stdout, stderr, archive.RunCLI)
}

// cliError maps -h to success; other errors stand.
func cliError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// runDev is `make run`: Postgres found or started, migrations, the sandbox carrier sending
// webhooks back, and the service wired to it, with everything printed. It records itself in
// .waybill/dev-stack.json while it serves, for `waybill demo` and `waybill dead`.
func runDev(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("waybill dev", "waybill dev [flags]", `Runs everything locally (what `+"`make run`"+` runs): PostgreSQL (DATABASE_URL, else a server on
127.0.0.1:5432, else a private cluster in .waybill/), migrations, the sandbox carrier, the service
and River UI, then prints where everything is. The River UI password and intake token are made
once per checkout and kept in .waybill/dev-secrets.json. Logs are text; River's own at WARN
unless WAYBILL_LOG_LEVEL=debug. To add orders to a running stack: waybill demo N.`)
	demo := fs.Int("demo", 0, "insert N sample orders once the service is up")
	addr := fs.String("addr", "127.0.0.1:8080", "the service's listen address")
	sandboxAddr := fs.String("sandbox-addr", "127.0.0.1:8081", "the sandbox carrier's listen address")
	if _, err := parseFlags(fs, args, 0, stdout, stderr); err != nil {
		return err
	}
	if *demo < 0 || *demo > maxDemoOrders {
		fmt.Fprintf(stderr, "waybill dev: --demo takes a number from 0 to %d\n", maxDemoOrders)
		return errUsage
	}
	logger, riverLogger, err := newLoggers(stderr, cmp.Or(strings.TrimSpace(getenv("WAYBILL_LOG_LEVEL")), "info"), textLogs)
	if err != nil {
		return err
	}
	dir := devenv.DefaultDir
	if stack, err := devenv.ReadStack(dir); err == nil && stack.Serving(ctx) == nil {
		return fmt.Errorf("a dev stack already runs from this directory: %s (pid %d, since %s). "+
			"Add orders to it with `make demo N=20` (or %s demo 20); stop it (Ctrl-C in its terminal) to start another",
			stack.ServiceURL, stack.PID, stack.StartedAt.Local().Format(time.Kitchen), selfName())
	}

	// Listen first: a port in use fails at once, before any Postgres is started.
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s (--addr): %w; is another waybill running? `make demo N=20` adds orders to a running `make run`", *addr, err)
	}
	defer ln.Close()
	sandboxLn, err := net.Listen("tcp", *sandboxAddr)
	if err != nil {
		return fmt.Errorf("sandbox: listen on %s (--sandbox-addr): %w", *sandboxAddr, err)
	}
	defer sandboxLn.Close()
	baseURL, sandboxURL := "http://"+ln.Addr().String(), "http://"+sandboxLn.Addr().String()

	pg, err := devenv.FindPostgres(ctx, devenv.Options{DatabaseURL: getenv("DATABASE_URL"), Dir: dir, Stdout: stdout}, logger)
	if err != nil {
		return err
	}
	defer pg.Stop(context.WithoutCancel(ctx)) //nolint:errcheck
	if err := migrate.Up(ctx, pg.URL, logger); err != nil {
		return err
	}
	secrets, err := devenv.LoadSecrets(dir)
	if err != nil {
		return err
	}

	env := devEnv(getenv, pg.URL, ln.Addr().String(), sandboxURL, secrets)
	sb := sandbox.New(sandbox.Options{
		RateLimit:            sandbox.DefaultRateLimit, // Onfleet's, as `waybill sandbox` enforces it
		WebhookURL:           baseURL + "/webhooks/onfleet",
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
	defer devenv.RemoveStack(dir, os.Getpid()) //nolint:errcheck
	return daemon.Serve(ctx, cfg, logger, daemon.Options{Listener: ln, RiverLogger: riverLogger, OnReady: func(baseURL string) {
		stack := devenv.Stack{PID: os.Getpid(), DatabaseURL: pg.URL, ServiceURL: baseURL, SandboxURL: sandboxURL, StartedAt: time.Now().UTC()}
		if err := devenv.WriteStack(dir, stack); err != nil {
			logger.Warn("could not record the dev stack: waybill demo and waybill dead will need DATABASE_URL", "error", err)
		}
		printDevBanner(stdout, pg, cfg, baseURL, sandboxURL)
		if *demo > 0 {
			insertDemo(ctx, pg.URL, *demo, stdout, logger)
		}
	}})
}

// devEnv is the environment `waybill dev` serves with: the caller's, with the sandbox and the
// checkout's secrets filled in where unset.
func devEnv(getenv func(string) string, dbURL, addr, sandboxURL string, secrets devenv.Secrets) map[string]string {
	env := map[string]string{}
	for _, k := range []string{"WAYBILL_INTAKE_TOKEN", "WAYBILL_ADMIN_USER", "WAYBILL_ADMIN_PASSWORD", "SMTP_URL", "MAIL_FROM",
		"LOGISTICS_EMAIL", "SLACK_WEBHOOK_URL", "WAYBILL_CALLBACK_URL", "WAYBILL_CALLBACK_SECRET", "WAYBILL_LOG_LEVEL",
		"WAYBILL_BACKLOG_ALERT_AFTER", "WAYBILL_SILENCE_ALERT_AFTER", "WAYBILL_DISPATCH_WORKERS", "WAYBILL_CARRIERS_FILE",
		"WAYBILL_KEEP_FINISHED_JOBS", "ONFLEET_RATE_LIMIT"} {
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
	env["ONFLEET_BASE_URL"] = sandboxURL
	env["ONFLEET_API_KEY"] = "sandbox"
	env["ONFLEET_WEBHOOK_SECRET"] = randomHex(32)
	set("WAYBILL_INTAKE_TOKEN", secrets.IntakeToken)
	set("WAYBILL_ADMIN_USER", "admin")
	set("WAYBILL_ADMIN_PASSWORD", secrets.AdminPassword)
	set("LOGISTICS_EMAIL", "logistics@example.com")
	// A newcomer sees each order's jobs in River UI for an hour after they finish; production
	// deletes them when done (faster, and the order and its history are the record).
	set("WAYBILL_KEEP_FINISHED_JOBS", "1h")
	return env
}

func printDevBanner(w io.Writer, pg *devenv.Postgres, cfg *config.Config, baseURL, sandboxURL string) {
	id := devenv.ExampleExternalID(time.Now())
	fmt.Fprintf(w, `
Waybill is running.

  Service      %[1]s          (health %[1]s/healthz, ready %[1]s/readyz, metrics %[1]s/metrics)
  River UI     %[1]s/riverui/  user %[2]s  password %[3]s
  Sandbox      %[4]s          (Onfleet API fake; stats %[4]s/sandbox/stats)
  Postgres     %[5]s  (%[6]s)
  Intake       curl -H 'Authorization: Bearer %[7]s' %[1]s/v1/orders/%[9]s
  (the password and token are this checkout's, kept in %[10]s)

Try the monolith's side:

  psql '%[5]s'

%[8]s

  SELECT external_id, status, carrier_ref, tracking_url FROM waybill.orders ORDER BY id DESC LIMIT 5;

Each order's story is its rows in waybill.order_events (the sandbox walks each task through its
lifecycle with signed webhooks) and its jobs in River UI (%[1]s/riverui/), kept there an hour
after they finish (WAYBILL_KEEP_FINISHED_JOBS; production deletes them when done):
  SELECT order_id, status, carrier_status, occurred_at FROM waybill.order_events ORDER BY id DESC LIMIT 10;

More orders:   make demo N=20   (or %[11]s demo 20: it finds this stack by itself)
Dead letters:  %[11]s dead list   (uses this stack's database; elsewhere set DATABASE_URL)
Logs below are text; River's own only at WARN and above (WAYBILL_LOG_LEVEL=debug shows all).

Ctrl-C stops everything.
`, baseURL, cfg.AdminUser, cfg.AdminPassword, sandboxURL, pg.URL, pg.Source, cfg.IntakeToken, devenv.ExampleInsert(id), id,
		filepath.Join(devenv.DefaultDir, devenv.SecretsFile), selfName())
}

// maxDemoOrders bounds one demo insert (one transaction).
const maxDemoOrders = 100000

// runDemo inserts sample orders into the dev stack running from this directory (or DATABASE_URL).
func runDemo(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("waybill demo", "waybill demo [N]", fmt.Sprintf(`Inserts N sample orders (default 20, at most %d) into the database of the dev stack running
from this directory (`+"`make run`"+`, recorded in .waybill/%s), or into DATABASE_URL's when set.
They are dispatched and walked through their lifecycle like any other order.`, maxDemoOrders, devenv.StackFile))
	rest, err := parseFlags(fs, args, 1, stdout, stderr)
	if err != nil {
		return err
	}
	n := 20
	if len(rest) == 1 {
		if n, err = strconv.Atoi(rest[0]); err != nil || n < 1 || n > maxDemoOrders {
			fmt.Fprintf(stderr, "waybill demo: N must be a number from 1 to %d, not %q\n", maxDemoOrders, rest[0])
			return errUsage
		}
	}
	dbURL := strings.TrimSpace(getenv("DATABASE_URL"))
	if dbURL == "" {
		stack, err := devenv.ReadStack(devenv.DefaultDir)
		if err != nil {
			return fmt.Errorf("no dev stack runs from this directory (%w): start one with `make run` (in another terminal), or set DATABASE_URL", err)
		}
		if err := stack.Serving(ctx); err != nil {
			return fmt.Errorf("the dev stack recorded in %s (%s, pid %d) does not answer (%w): start it with `make run`, or set DATABASE_URL",
				filepath.Join(devenv.DefaultDir, devenv.StackFile), stack.ServiceURL, stack.PID, err)
		}
		dbURL = stack.DatabaseURL
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	defer pool.Close()
	ids, err := devenv.InsertDemoOrders(ctx, pool, n)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Inserted %d demo orders (%s … %s) into %s.\nWatch them: SELECT external_id, status, carrier_ref FROM waybill.orders WHERE external_id LIKE '%s%%' ORDER BY id;\n",
		len(ids), ids[0], ids[len(ids)-1], redactURL(dbURL), ids[0][:strings.LastIndex(ids[0], "-")+1])
	return nil
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

// selfName is how the person at the terminal ran this binary (bin/waybill under `make run`).
func selfName() string {
	if name := os.Args[0]; strings.Contains(name, "/") && !filepath.IsAbs(name) {
		return name
	}
	return "waybill"
}

// redactURL hides a database URL's password.
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Scheme != "" {
		return u.Redacted()
	}
	return "the database"
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
