package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/waybill/waybill/internal/config"
	"github.com/waybill/waybill/internal/daemon"
	"github.com/waybill/waybill/internal/migrate"
)

const usage = `waybill carries orders from the monolith to delivery carriers and their updates back.

Usage:
  waybill serve                     run the service (configured by environment; see README)
  waybill migrate up|down|status    apply, roll back one, or list migrations (needs DATABASE_URL)
  waybill dev [flags]               run everything locally: Postgres, sandbox carrier, service
  waybill demo [N]                  insert N sample orders into the running dev stack
  waybill sandbox [flags]           run the Onfleet-compatible sandbox carrier
  waybill dead list|redrive ...     inspect and redrive dead jobs
  waybill archive --older-than 90d --out DIR
                                    move old webhook events and order history to gzip files
  waybill carriers check|register [--url URL]
                                    the carriers' webhooks for this service: list, or create the missing

'waybill COMMAND -h' (or 'waybill help COMMAND') describes a command; it starts nothing.
`

var (
	// errUsage marks a command-line mistake: exit status 2.
	errUsage = errors.New("usage")
	// errHelp marks a command that printed its help as asked: exit status 0, nothing started.
	errHelp = errors.New("help printed")
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "waybill:", err)
			os.Exit(1)
		}
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if err := runCommand(ctx, args, getenv, stdout, stderr); !errors.Is(err, errHelp) {
		return err
	}
	return nil
}

func runCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		return runServe(ctx, rest, getenv, stdout, stderr)
	case "migrate":
		return runMigrate(ctx, rest, getenv, stdout, stderr)
	case "dev":
		return runDev(ctx, rest, getenv, stdout, stderr)
	case "demo":
		return runDemo(ctx, rest, getenv, stdout, stderr)
	case "sandbox":
		return runSandbox(ctx, rest, stdout, stderr)
	case "dead":
		return runDead(ctx, rest, getenv, stdout, stderr)
	case "archive":
		return runArchive(ctx, rest, getenv, stdout, stderr)
	case "carriers":
		return runCarriers(ctx, rest, getenv, stdout, stderr)
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 && !isHelpArg(rest[0]) && rest[0] != "help" {
			return runCommand(ctx, []string{rest[0], "-h"}, getenv, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "waybill: unknown command %q\n\n%s", cmd, usage)
		return errUsage
	}
}

func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("waybill serve", "waybill serve", `Runs the service: HTTP API, carrier webhooks, River workers, River UI (/riverui/) and
/metrics. It takes no flags: the environment configures it (DATABASE_URL, ONFLEET_API_KEY, ...;
README, "Configuration"), and it refuses to start naming every missing or malformed variable.
Logs are JSON on stderr; River's own at WARN unless WAYBILL_LOG_LEVEL=debug.`)
	if _, err := parseFlags(fs, args, 0, stdout, stderr); err != nil {
		return err
	}
	cfg, err := config.FromEnv(getenv)
	if err != nil {
		return err
	}
	logger, riverLogger, err := newLoggers(stderr, cfg.LogLevel, jsonLogs)
	if err != nil {
		return err
	}
	return daemon.Serve(ctx, cfg, logger, daemon.Options{RiverLogger: riverLogger})
}

func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("waybill migrate", "waybill migrate up|down|status", `up applies every pending migration (River's schema included), down rolls back the last one,
status lists them. Needs only DATABASE_URL; two instances starting at once do not both migrate.`)
	args, err := parseFlags(fs, args, 1, stdout, stderr)
	if err != nil {
		return err
	}
	if len(args) != 1 || (args[0] != "up" && args[0] != "down" && args[0] != "status") {
		fs.SetOutput(stderr)
		fs.Usage()
		return errUsage
	}
	dbURL := strings.TrimSpace(getenv("DATABASE_URL"))
	if dbURL == "" {
		return errors.New("configuration: DATABASE_URL: required")
	}
	logger, _, err := newLoggers(stderr, "info", jsonLogs)
	if err != nil {
		return err
	}
	m, err := migrate.New(ctx, dbURL, logger)
	if err != nil {
		return err
	}
	defer m.Close()
	switch args[0] {
	case "up":
		res, err := m.Up(ctx)
		for _, r := range res {
			fmt.Fprintf(stdout, "applied %05d %s (%s)\n", r.Source.Version, r.Source.Path, r.Duration.Round(1e6))
		}
		if err == nil && len(res) == 0 {
			fmt.Fprintln(stdout, "up to date")
		}
		return err
	case "down":
		res, err := m.Down(ctx)
		if res != nil {
			fmt.Fprintf(stdout, "rolled back %05d %s\n", res.Source.Version, res.Source.Path)
		}
		return err
	default:
		return m.WriteStatus(ctx, stdout)
	}
}

// Log formats: serve logs JSON for machines, dev readable text for the person at the terminal.
const (
	jsonLogs = false
	textLogs = true
)

// newLoggers makes the service's logger at level and River's (River UI's too): quiet by default,
// at WARN or above, and at DEBUG with everything else when level is debug. Both write through one
// handler, so their lines never interleave.
func newLoggers(w io.Writer, level string, text bool) (logger, riverLogger *slog.Logger, err error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, nil, fmt.Errorf("WAYBILL_LOG_LEVEL: %w", err)
	}
	opts := &slog.HandlerOptions{Level: l}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if text {
		h = slog.NewTextHandler(w, opts)
	}
	riverLevel := max(l, slog.LevelWarn)
	if l <= slog.LevelDebug {
		riverLevel = l
	}
	return slog.New(h), slog.New(minLevelHandler{h, riverLevel}), nil
}

// minLevelHandler drops records below min, whatever the handler it wraps would take.
type minLevelHandler struct {
	slog.Handler
	min slog.Level
}

func (h minLevelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevelHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevelHandler{h.Handler.WithAttrs(attrs), h.min}
}

func (h minLevelHandler) WithGroup(name string) slog.Handler {
	return minLevelHandler{h.Handler.WithGroup(name), h.min}
}
