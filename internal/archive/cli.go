package archive

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// RunCLI runs `waybill archive --older-than 90d --out DIR [--batch N]`; args are what follows
// "archive".
func RunCLI(ctx context.Context, args []string, pool *pgxpool.Pool, stdout, stderr io.Writer) error {
	return runCLI(ctx, args, pool, stdout, stderr, Options{})
}

func runCLI(ctx context.Context, args []string, pool *pgxpool.Pool, stdout, stderr io.Writer, opts Options) error {
	fs := flag.NewFlagSet("archive", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: waybill archive --older-than 90d --out DIR [--batch N]")
		fmt.Fprintln(stderr, "  writes webhook events and order history older than the cutoff to DIR as gzip JSON Lines, then deletes them")
		fs.PrintDefaults()
	}
	olderThan := fs.String("older-than", "", "archive rows older than this: days (90d) or a Go duration (2160h); required")
	dir := fs.String("out", "", "directory for the .jsonl.gz files (created if missing); required")
	batch := fs.Int("batch", DefaultBatchSize, "rows per file")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("archive: unexpected argument %q", fs.Arg(0))
	}
	var err error
	switch {
	case *olderThan == "":
		err = errors.New("archive: --older-than is required (e.g. 90d)")
	case *dir == "":
		err = errors.New("archive: --out is required")
	case *batch < 1:
		err = errors.New("archive: --batch must be at least 1")
	}
	if err != nil {
		fs.Usage()
		return err
	}
	if opts.OlderThan, err = parseAge(*olderThan); err != nil {
		return fmt.Errorf("archive: --older-than: %w", err)
	}
	opts.Dir, opts.BatchSize = *dir, *batch

	results, err := Archive(ctx, pool, opts)
	for _, r := range results {
		if r.Recovered > 0 {
			fmt.Fprintf(stdout, "%s: finished an interrupted batch: deleted %d rows already in its newest file\n", r.Table, r.Recovered)
		}
		fmt.Fprintf(stdout, "%s: archived %d rows older than %s into %d file(s) in %s\n",
			r.Table, r.Rows, r.Cutoff.UTC().Format(time.RFC3339), len(r.Files), opts.Dir)
	}
	return err
}

// parseAge reads --older-than: whole days ("90d"), which Go durations lack, or a Go duration.
func parseAge(s string) (time.Duration, error) {
	var d time.Duration
	var err error
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		if n, err = strconv.Atoi(days); err == nil {
			d = time.Duration(n) * 24 * time.Hour
			if n > 100000 {
				err = errors.New("too many days")
			}
		}
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a positive number of days (90d) or a duration (36h)", s)
	}
	return d, nil
}
