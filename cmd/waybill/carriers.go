package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/waybill/waybill/internal/carrier"
	"github.com/waybill/waybill/internal/carrier/generic"
	"github.com/waybill/waybill/internal/carrier/onfleet"
	"github.com/waybill/waybill/internal/config"
	"github.com/waybill/waybill/internal/ratelimit"
	"github.com/waybill/waybill/internal/reconcile"
)

// runCarriers is `waybill carriers check|register`: the carriers' webhooks for this service.
func runCarriers(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("waybill carriers", "waybill carriers check|register [--url URL]", `check lists, per configured carrier, the webhooks the carrier has for this service (Onfleet:
GET /webhooks), and which triggers Waybill needs are missing, disabled or pointed elsewhere; it
exits 1 when any is. register creates the missing ones (Onfleet: POST /webhooks, one per
trigger, after Onfleet's ?check= request to the URL) and replaces disabled ones. The URL is
where carriers reach this service: --url, else WAYBILL_PUBLIC_URL; /webhooks/<carrier> is
appended unless given. Configured like serve (DATABASE_URL, ONFLEET_API_KEY, ...); the requests
count against the carrier's shared rate limit, behind dispatch.`)
	rawURL := fs.String("url", "", "this service's public URL, e.g. https://waybill.example.com (default WAYBILL_PUBLIC_URL)")
	rest, err := parseFlags(fs, args, 1, stdout, stderr)
	if err != nil {
		return err
	}
	if len(rest) != 1 || (rest[0] != "check" && rest[0] != "register") {
		fs.SetOutput(stderr)
		fs.Usage()
		return errUsage
	}
	cfg, err := config.FromEnv(getenv)
	if err != nil {
		return err
	}
	want, err := reconcile.WebhookURL(cmp.Or(*rawURL, cfg.PublicURL), onfleet.Name)
	if err != nil {
		return fmt.Errorf("--url: %w", err)
	}
	if rest[0] == "register" && want == "" {
		fmt.Fprintln(stderr, "waybill carriers register: --url (or WAYBILL_PUBLIC_URL) is required: where the carrier should send webhooks")
		return errUsage
	}
	pool, err := pgxpool.New(ctx, cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	defer pool.Close()
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	opts := onfleet.Options{BaseURL: cfg.OnfleetBaseURL, APIKey: cfg.OnfleetAPIKey, Timeout: cfg.CarrierTimeout, Logger: logger}
	if cfg.OnfleetRateLimit > 0 {
		opts.Limiter = ratelimit.NewShared(pool, onfleet.Name, cfg.OnfleetRateLimit, logger)
	}
	client := onfleet.New(opts)
	cctx := carrier.WithPriority(ctx, ratelimit.Low)

	var rep reconcile.WebhookReport
	if rest[0] == "register" {
		var created []onfleet.Webhook
		rep, created, err = reconcile.RegisterOnfleetWebhooks(cctx, client, want)
		for _, h := range created {
			fmt.Fprintf(stdout, "created %s webhook %s for %s → %s\n", onfleet.Name, h.ID, triggerName(h.Trigger), h.URL)
		}
		if err == nil && len(created) == 0 {
			fmt.Fprintf(stdout, "%s: every webhook Waybill needs already calls %s\n", onfleet.Name, want)
		}
	} else {
		rep, err = reconcile.CheckOnfleetWebhooks(cctx, client, want)
	}
	rep.URL = want
	if saveErr := reconcile.SaveWebhookReport(ctx, pool, onfleet.Name, rep, err, time.Now()); saveErr != nil {
		logger.Warn("could not record the check for the carrier_webhooks alarm", "error", saveErr)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", onfleet.Name, err)
	}
	printWebhookReport(stdout, rep)
	if cfg.CarriersFile != "" {
		configs, err := generic.LoadFile(cfg.CarriersFile)
		if err != nil {
			return fmt.Errorf("WAYBILL_CARRIERS_FILE: %w", err)
		}
		for _, gc := range configs {
			u, _ := reconcile.WebhookURL(cmp.Or(*rawURL, cfg.PublicURL, "https://<waybill>"), gc.Name)
			fmt.Fprintf(stdout, "\n%s: Waybill cannot list or create this carrier's webhooks; register %s in its dashboard.\n", gc.Name, u)
		}
	}
	if !rep.OK() {
		if rest[0] == "check" {
			fmt.Fprintf(stdout, "\nFix: %s carriers register --url %s\n", selfName(), cmp.Or(want, "https://<waybill>"))
		}
		return errors.New("some webhooks Waybill needs are missing, disabled or pointed elsewhere")
	}
	return nil
}

func printWebhookReport(w io.Writer, rep reconcile.WebhookReport) {
	target := rep.URL
	if target == "" {
		target = "any URL ending in /webhooks/" + rep.Carrier + " (set WAYBILL_PUBLIC_URL or --url to check the exact one)"
	}
	fmt.Fprintf(w, "%s webhooks for %s\n\n", rep.Carrier, target)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TRIGGER\tSTATE\tWEBHOOKS")
	for _, t := range rep.Triggers {
		var hooks []string
		for _, h := range t.Webhooks {
			s := h.ID + " " + h.URL
			if h.Disabled() {
				s += " (disabled)"
			}
			hooks = append(hooks, s)
		}
		sort.Strings(hooks)
		fmt.Fprintf(tw, "%d %s\t%s\t%s\n", t.Trigger, t.Name, t.State, strings.Join(hooks, "; "))
	}
	_ = tw.Flush()
	missing, disabled, elsewhere := rep.Problems()
	fmt.Fprintf(w, "\n%d webhooks call this service; missing: %d, disabled: %d, pointed elsewhere: %d\n",
		len(rep.Ours), len(missing), len(disabled), len(elsewhere))
}

func triggerName(trigger int) string {
	return fmt.Sprintf("%d %s", trigger, onfleet.Triggers[trigger])
}
