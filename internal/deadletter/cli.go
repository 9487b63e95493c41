package deadletter

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/user"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/waybill/waybill/internal/truncate"
)

const usage = `usage:
  waybill dead list [--kind K] [--since D] [--limit N] [--json]
      open dead letters, newest first; D is a duration (24h, 7d) or a date (2006-01-02)
  waybill dead redrive JOB_ID... | --all [--kind K]  [--dry-run] [--by NAME]
      put dead jobs back to work; --dry-run shows what would happen and changes nothing
`

// RunCLI runs `waybill dead …`; args are what follows "dead".
func RunCLI(ctx context.Context, args []string, pool *pgxpool.Pool, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("dead: say list or redrive")
	}
	switch args[0] {
	case "list":
		return runList(ctx, args[1:], pool, stdout, stderr)
	case "redrive":
		return runRedrive(ctx, args[1:], pool, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("dead: unknown command %q", args[0])
	}
}

func runList(ctx context.Context, args []string, pool *pgxpool.Pool, stdout, stderr io.Writer) error {
	fs := newFlagSet("dead list", stderr)
	kind := fs.String("kind", "", "only jobs of this kind (e.g. dispatch_order)")
	since := fs.String("since", "", "only jobs dead since: a duration back from now (24h, 7d) or a date (2006-01-02)")
	limit := fs.Int("limit", defaultListLimit, "show at most this many")
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	rest, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("dead list: unexpected argument %q", rest[0])
	}
	if *limit < 1 {
		return errors.New("dead list: --limit must be at least 1")
	}
	p := ListParams{Kind: *kind, Limit: *limit + 1} // one more, to say the list was cut
	now := time.Now()
	if *since != "" {
		if p.Since, err = parseSince(*since, now); err != nil {
			return fmt.Errorf("dead list: --since: %w", err)
		}
	}
	jobs, err := List(ctx, pool, p)
	if err != nil {
		return err
	}
	more := len(jobs) > *limit
	if more {
		jobs = jobs[:*limit]
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(jobs)
	}
	if len(jobs) == 0 {
		fmt.Fprintln(stdout, "No open dead letters.")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tKIND\tORDER\tCARRIER\tATTEMPTS\tDIED\tREASON")
	for _, j := range jobs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s (%s ago)\t%s\n", j.JobID, j.Kind, orDash(j.ExternalID),
			orDash(j.Carrier), j.Attempts, j.DiscardedAt.UTC().Format("2006-01-02 15:04Z"),
			age(now.Sub(j.DiscardedAt)), truncate.Runes(j.Reason, 70))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if more {
		fmt.Fprintf(stdout, "\nShowing the newest %d; narrow with --kind/--since or raise --limit.\n", *limit)
	} else {
		fmt.Fprintf(stdout, "\n%d open dead letter(s).\n", len(jobs))
	}
	fmt.Fprintln(stdout, "Why: SELECT errors FROM waybill.dead_jobs WHERE job_id = …; redrive: waybill dead redrive JOB_ID… | --all [--kind K]")
	return nil
}

func runRedrive(ctx context.Context, args []string, pool *pgxpool.Pool, stdout, stderr io.Writer) error {
	fs := newFlagSet("dead redrive", stderr)
	all := fs.Bool("all", false, "redrive every open dead letter (of --kind, if given)")
	kind := fs.String("kind", "", "with --all: only jobs of this kind")
	dryRun := fs.Bool("dry-run", false, "show what would happen and change nothing")
	by := fs.String("by", "", "who is redriving, recorded in waybill.dead_jobs (default: your OS user)")
	rest, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	ids := make([]int64, 0, len(rest))
	for _, a := range rest {
		id, err := strconv.ParseInt(a, 10, 64)
		if err != nil || id < 1 {
			return fmt.Errorf("dead redrive: job id %q is not a positive integer", a)
		}
		ids = append(ids, id)
	}
	switch {
	case *all && len(ids) > 0:
		return errors.New("dead redrive: give job ids or --all, not both")
	case !*all && len(ids) == 0:
		fmt.Fprint(stderr, usage)
		return errors.New("dead redrive: give job ids or --all")
	case *kind != "" && !*all:
		return errors.New("dead redrive: --kind only goes with --all")
	}
	if *by == "" {
		*by = osUser()
	}
	if *all {
		if ids, err = OpenJobIDs(ctx, pool, *kind); err != nil {
			return err
		}
		if len(ids) == 0 {
			fmt.Fprintln(stdout, "No open dead letters to redrive.")
			return nil
		}
	}

	results, err := Redrive(ctx, pool, ids, RedriveOpts{By: *by, DryRun: *dryRun})
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tKIND\tORDER\tOUTCOME")
	var failed []RedriveResult
	for _, r := range results {
		outcome := string(r.Outcome)
		if r.Detail != "" {
			outcome += ": " + truncate.Runes(r.Detail, 70)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", r.JobID, orDash(r.Kind), orDash(r.ExternalID), outcome)
		if !r.OK() {
			failed = append(failed, r)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if *dryRun {
		fmt.Fprintln(stdout, "\nDry run: nothing was changed. These are the outcomes a redrive would have now.")
	}
	for _, r := range failed {
		fmt.Fprintf(stderr, "job %d not redriven: %s\n", r.JobID, explain(r))
	}
	if len(failed) > 0 {
		return fmt.Errorf("dead redrive: %d of %d job(s) not redriven", len(failed), len(results))
	}
	return nil
}

func explain(r RedriveResult) string {
	switch r.Outcome {
	case OutcomeUnknown:
		return "no such job and no open dead letter"
	case OutcomeNotDead:
		return "the job is " + r.Detail + ", not dead"
	case OutcomeConflict:
		return "another active job has the same unique key (" + r.Detail + ")"
	}
	return string(r.Outcome)
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseInterleaved parses flags wherever they appear among positional arguments
// (`redrive 12 13 --dry-run`), which flag.Parse alone stops at.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, fmt.Errorf("%s: %w", fs.Name(), err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		if args[0] == "--" {
			return append(positional, args[1:]...), nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

var daysRE = regexp.MustCompile(`^([0-9]+)d$`)

// parseSince reads --since: a Go duration back from now ("36h"), whole days ("7d"), a date
// ("2006-01-02", UTC midnight) or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if m := daysRE.FindStringSubmatch(s); m != nil {
		if n, err := strconv.Atoi(m[1]); err == nil && n <= 100000 {
			return now.AddDate(0, 0, -n), nil
		}
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is neither a duration (24h, 7d) nor a date (2006-01-02)", s)
}

// age is a short human duration: 45s, 12m, 5h, 3d.
func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", max(int(d.Seconds()), 0))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}

func osUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "cli"
}
