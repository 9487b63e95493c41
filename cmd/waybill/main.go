// Command waybill carries orders from the monolith to delivery carriers and the carriers'
// status updates back. `waybill help` lists its commands.
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
  waybill dev [--demo N]            run everything locally: Postgres, sandbox carrier, service
  waybill sandbox [flags]           run the Onfleet-compatible sandbox carrier
  waybill dead list|redrive ...     inspect and redrive dead jobs
  waybill archive --older-than 90d --out DIR
                                    move old webhook events and order history to gzip files
`

// errUsage marks a command-line mistake: exit status 2.
var errUsage = errors.New("usage")

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
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		cfg, err := config.FromEnv(getenv)
		if err != nil {
			return err
		}
		logger, err := newLogger(stderr, cfg.LogLevel)
		if err != nil {
			return err
		}
		return daemon.Serve(ctx, cfg, logger, daemon.Options{})
	case "migrate":
		return runMigrate(ctx, rest, getenv, stdout, stderr)
	case "dev":
		return runDev(ctx, rest, getenv, stdout, stderr)
	case "sandbox":
		return runSandbox(ctx, rest, stdout, stderr)
	case "dead":
		return runDead(ctx, rest, getenv, stdout, stderr)
	case "archive":
		return runArchive(ctx, rest, getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "waybill: unknown command %q\n\n%s", cmd, usage)
		return errUsage
	}
}

func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) != 1 || (args[0] != "up" && args[0] != "down" && args[0] != "status") {
		fmt.Fprint(stderr, "usage: waybill migrate up|down|status\n")
		return errUsage
	}
	dbURL := strings.TrimSpace(getenv("DATABASE_URL"))
	if dbURL == "" {
		return errors.New("configuration: DATABASE_URL: required")
	}
	logger, err := newLogger(stderr, "info")
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

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("WAYBILL_LOG_LEVEL: %w", err)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}
