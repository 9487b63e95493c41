package config

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Config is every setting of `waybill serve`. See the README's configuration table.
type Config struct {
	DatabaseURL string // DATABASE_URL, required
	HTTPAddr    string // WAYBILL_HTTP_ADDR
	// MetricsAddr, when set, serves /metrics on this address only (not on HTTPAddr).
	MetricsAddr string // WAYBILL_METRICS_ADDR

	IntakeToken   string // WAYBILL_INTAKE_TOKEN; empty disables POST /v1/orders
	AdminUser     string // WAYBILL_ADMIN_USER
	AdminPassword string // WAYBILL_ADMIN_PASSWORD

	OnfleetBaseURL       string        // ONFLEET_BASE_URL
	OnfleetAPIKey        string        // ONFLEET_API_KEY, required
	OnfleetWebhookSecret []string      // ONFLEET_WEBHOOK_SECRET, one or two hex secrets
	OnfleetRateLimit     float64       // ONFLEET_RATE_LIMIT requests/s; 0 = unlimited
	CarrierTimeout       time.Duration // WAYBILL_CARRIER_TIMEOUT, per carrier request

	CarriersFile string // WAYBILL_CARRIERS_FILE

	SMTPURL         string // SMTP_URL
	MailFrom        string // MAIL_FROM
	LogisticsEmail  string // LOGISTICS_EMAIL
	SlackWebhookURL string // SLACK_WEBHOOK_URL
	CallbackURL     string // WAYBILL_CALLBACK_URL
	CallbackSecret  string // WAYBILL_CALLBACK_SECRET

	BacklogAlertAfter time.Duration // WAYBILL_BACKLOG_ALERT_AFTER
	SilenceAlertAfter time.Duration // WAYBILL_SILENCE_ALERT_AFTER
	// AlarmCheckInterval: how often the leader checks the alarms (WAYBILL_ALARM_CHECK_INTERVAL).
	AlarmCheckInterval time.Duration

	// Reconciliation with the carriers (internal/reconcile).
	ReconcileAfter       time.Duration // WAYBILL_RECONCILE_AFTER: an order in flight silent this long is looked up
	ReconcileInterval    time.Duration // WAYBILL_RECONCILE_INTERVAL: how often the leader runs a cycle
	PublicURL            string        // WAYBILL_PUBLIC_URL: where carriers reach this service; empty = unknown
	WebhookCheckInterval time.Duration // WAYBILL_WEBHOOK_CHECK_INTERVAL: how often the carriers' webhooks are checked
	WebhookGapThreshold  int           // WAYBILL_WEBHOOK_GAP_THRESHOLD: changes learnt by polling that fire "webhooks not arriving"
	WebhookGapWindow     time.Duration // WAYBILL_WEBHOOK_GAP_WINDOW: … within this window

	DispatchWorkers    int           // WAYBILL_DISPATCH_WORKERS
	DispatchPoll       time.Duration // WAYBILL_DISPATCH_POLL: how often idle workers look for new orders
	JobTimeout         time.Duration // WAYBILL_JOB_TIMEOUT
	RescueAfter        time.Duration // WAYBILL_RESCUE_AFTER: a running job older than this was lost in a crash
	CompletedRetention time.Duration // WAYBILL_COMPLETED_JOB_RETENTION
	BatchStuckAfter    time.Duration // WAYBILL_BATCH_STUCK_AFTER
	KeepFinishedJobs   time.Duration // WAYBILL_KEEP_FINISHED_JOBS; 0: dispatch, translate and act jobs are deleted when done
	// TestCrashAt names a point where the process kills itself (crash tests only):
	// WAYBILL_TEST_CRASH_AT=batch-answered.
	TestCrashAt string
	DBMaxConns  int32 // WAYBILL_DB_MAX_CONNS

	LogLevel string // WAYBILL_LOG_LEVEL: debug, info, warn, error

	PprofAddr string // WAYBILL_PPROF_ADDR: where to serve net/http/pprof; empty = off
}

// MaxDispatchWorkers is River's limit on one queue's workers.
const MaxDispatchWorkers = 10_000

// Defaults for optional settings.
const (
	DefaultHTTPAddr       = ":8080"
	DefaultOnfleetBaseURL = "https://onfleet.com/api/v2"
	DefaultOnfleetRate    = 18
)

// FromEnv reads and validates the configuration. Every problem is reported, each naming its
// variable.
func FromEnv(getenv func(string) string) (*Config, error) {
	p := parser{getenv: getenv}
	c := &Config{
		DatabaseURL:          p.url("DATABASE_URL", "", true, "postgres", "postgresql"),
		HTTPAddr:             p.str("WAYBILL_HTTP_ADDR", DefaultHTTPAddr),
		MetricsAddr:          p.str("WAYBILL_METRICS_ADDR", ""),
		IntakeToken:          p.str("WAYBILL_INTAKE_TOKEN", ""),
		AdminUser:            p.str("WAYBILL_ADMIN_USER", ""),
		AdminPassword:        p.str("WAYBILL_ADMIN_PASSWORD", ""),
		OnfleetBaseURL:       strings.TrimRight(p.url("ONFLEET_BASE_URL", DefaultOnfleetBaseURL, false, "http", "https"), "/"),
		OnfleetAPIKey:        p.required("ONFLEET_API_KEY"),
		OnfleetWebhookSecret: p.hexList("ONFLEET_WEBHOOK_SECRET"),
		OnfleetRateLimit:     p.float("ONFLEET_RATE_LIMIT", DefaultOnfleetRate),
		CarrierTimeout:       p.duration("WAYBILL_CARRIER_TIMEOUT", 10*time.Second),
		CarriersFile:         p.str("WAYBILL_CARRIERS_FILE", ""),
		SMTPURL:              p.url("SMTP_URL", "", false, "smtp", "smtps"),
		MailFrom:             p.str("MAIL_FROM", "waybill@localhost"),
		LogisticsEmail:       p.str("LOGISTICS_EMAIL", ""),
		SlackWebhookURL:      p.url("SLACK_WEBHOOK_URL", "", false, "http", "https"),
		CallbackURL:          p.url("WAYBILL_CALLBACK_URL", "", false, "http", "https"),
		CallbackSecret:       p.str("WAYBILL_CALLBACK_SECRET", ""),
		BacklogAlertAfter:    p.duration("WAYBILL_BACKLOG_ALERT_AFTER", 5*time.Minute),
		SilenceAlertAfter:    p.duration("WAYBILL_SILENCE_ALERT_AFTER", 24*time.Hour),
		AlarmCheckInterval:   p.duration("WAYBILL_ALARM_CHECK_INTERVAL", time.Minute),
		ReconcileAfter:       p.duration("WAYBILL_RECONCILE_AFTER", 30*time.Minute),
		ReconcileInterval:    p.duration("WAYBILL_RECONCILE_INTERVAL", time.Minute),
		PublicURL:            strings.TrimRight(p.url("WAYBILL_PUBLIC_URL", "", false, "http", "https"), "/"),
		WebhookCheckInterval: p.duration("WAYBILL_WEBHOOK_CHECK_INTERVAL", 15*time.Minute),
		WebhookGapThreshold:  p.int("WAYBILL_WEBHOOK_GAP_THRESHOLD", 10, 1, 1_000_000),
		WebhookGapWindow:     p.duration("WAYBILL_WEBHOOK_GAP_WINDOW", 15*time.Minute),
		DispatchWorkers:      p.int("WAYBILL_DISPATCH_WORKERS", MaxDispatchWorkers, 1, MaxDispatchWorkers),
		DispatchPoll:         p.duration("WAYBILL_DISPATCH_POLL", 50*time.Millisecond),
		JobTimeout:           p.duration("WAYBILL_JOB_TIMEOUT", 25*time.Second),
		RescueAfter:          p.duration("WAYBILL_RESCUE_AFTER", 45*time.Second),
		CompletedRetention:   p.duration("WAYBILL_COMPLETED_JOB_RETENTION", time.Hour),
		BatchStuckAfter:      p.duration("WAYBILL_BATCH_STUCK_AFTER", 5*time.Minute),
		KeepFinishedJobs:     p.durationOrOff("WAYBILL_KEEP_FINISHED_JOBS"),
		TestCrashAt:          p.oneOf("WAYBILL_TEST_CRASH_AT", "", "", "batch-answered"),
		DBMaxConns:           int32(p.int("WAYBILL_DB_MAX_CONNS", 40, 4, math.MaxInt32)),
		LogLevel:             p.oneOf("WAYBILL_LOG_LEVEL", "info", "debug", "info", "warn", "error"),
		PprofAddr:            p.str("WAYBILL_PPROF_ADDR", ""),
	}
	if c.OnfleetRateLimit < 0 {
		p.fail("ONFLEET_RATE_LIMIT", "must be 0 (no limit) or a positive number of requests per second")
	}
	if c.RescueAfter <= c.JobTimeout {
		p.fail("WAYBILL_RESCUE_AFTER", fmt.Sprintf("must be longer than WAYBILL_JOB_TIMEOUT (%s), or running jobs would be rescued", c.JobTimeout))
	}
	if c.ReconcileInterval > c.ReconcileAfter {
		p.fail("WAYBILL_RECONCILE_INTERVAL", fmt.Sprintf("must not be longer than WAYBILL_RECONCILE_AFTER (%s): an order would wait for the next cycle longer than it was silent", c.ReconcileAfter))
	}
	if (c.AdminUser == "") != (c.AdminPassword == "") {
		p.fail("WAYBILL_ADMIN_PASSWORD", "WAYBILL_ADMIN_USER and WAYBILL_ADMIN_PASSWORD are set together or not at all")
	}
	if c.CallbackURL != "" && c.CallbackSecret == "" {
		p.fail("WAYBILL_CALLBACK_SECRET", "required when WAYBILL_CALLBACK_URL is set (callbacks are signed)")
	}
	if err := errors.Join(p.errs...); err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	return c, nil
}

type parser struct {
	getenv func(string) string
	errs   []error
}

func (p *parser) fail(name, problem string) {
	p.errs = append(p.errs, fmt.Errorf("%s: %s", name, problem))
}

func (p *parser) str(name, def string) string {
	if v := strings.TrimSpace(p.getenv(name)); v != "" {
		return v
	}
	return def
}

func (p *parser) required(name string) string {
	v := p.str(name, "")
	if v == "" {
		p.fail(name, "required")
	}
	return v
}

func (p *parser) url(name, def string, required bool, schemes ...string) string {
	v := p.str(name, def)
	if v == "" {
		if required {
			p.fail(name, "required")
		}
		return ""
	}
	u, err := url.Parse(v)
	if err != nil || u.Host == "" && u.Scheme != "postgres" && u.Scheme != "postgresql" {
		p.fail(name, "not a URL")
		return ""
	}
	for _, s := range schemes {
		if u.Scheme == s {
			return v
		}
	}
	p.fail(name, fmt.Sprintf("scheme must be one of %s, not %q", strings.Join(schemes, ", "), u.Scheme))
	return ""
}

// durationOrOff reads a duration where 0 (and unset) means off.
func (p *parser) durationOrOff(name string) time.Duration {
	if strings.TrimSpace(p.str(name, "")) == "0" {
		return 0
	}
	return p.duration(name, 0)
}

func (p *parser) duration(name string, def time.Duration) time.Duration {
	v := p.str(name, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		p.fail(name, fmt.Sprintf("must be a positive Go duration such as 5m or 90s, not %q", v))
		return def
	}
	return d
}

// int reads a whole number in [lo, hi]; one outside is refused, never wrapped or clamped.
func (p *parser) int(name string, def, lo, hi int) int {
	v := p.str(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		p.fail(name, fmt.Sprintf("must be a whole number, not %q", v))
		return def
	}
	if err != nil || n < int64(lo) || n > int64(hi) {
		p.fail(name, fmt.Sprintf("must be between %d and %d, not %s", lo, hi, v))
		return def
	}
	return int(n)
}

func (p *parser) float(name string, def float64) float64 {
	v := p.str(name, "")
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		p.fail(name, fmt.Sprintf("must be a finite number, not %q", v))
		return def
	}
	return f
}

func (p *parser) oneOf(name, def string, allowed ...string) string {
	v := strings.ToLower(p.str(name, def))
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	p.fail(name, fmt.Sprintf("must be one of %s, not %q", strings.Join(allowed, ", "), v))
	return def
}

// hexList reads one or two comma-separated hex secrets (two while a secret is being rotated).
func (p *parser) hexList(name string) []string {
	v := p.str(name, "")
	if v == "" {
		return nil
	}
	parts := strings.Split(v, ",")
	if len(parts) > 2 {
		p.fail(name, "at most two secrets, separated by a comma")
		return nil
	}
	out := make([]string, 0, len(parts))
	for _, s := range parts {
		s = strings.TrimSpace(s)
		if s == "" || len(s)%2 != 0 || strings.Trim(strings.ToLower(s), "0123456789abcdef") != "" {
			p.fail(name, "each secret must be the hex string Onfleet shows")
			return nil
		}
		out = append(out, s)
	}
	return out
}
