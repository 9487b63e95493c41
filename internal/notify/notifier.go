package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/waybill/waybill/internal/dbsqlc"
)

// Config is what the notifier needs from the environment (see internal/config). An empty
// channel setting means that channel is not configured: its jobs are logged and recorded as
// skipped, not failed.
type Config struct {
	SMTPURL         string // SMTP_URL: smtp://[user:pass@]host[:port] (port 25) or smtps://… (port 465)
	MailFrom        string // MAIL_FROM; waybill@localhost when empty
	LogisticsEmail  string // LOGISTICS_EMAIL: one address or a comma-separated list
	SlackWebhookURL string // SLACK_WEBHOOK_URL
	CallbackURL     string // WAYBILL_CALLBACK_URL
	CallbackSecret  string // WAYBILL_CALLBACK_SECRET, required with CallbackURL

	// TLSConfig is used for SMTP over TLS (STARTTLS and smtps). Server certificates are always
	// verified: a relay with a private CA needs its CA in RootCAs, not a switch that turns
	// verification off. ServerName defaults to the SMTP_URL host. Nil: the system roots.
	TLSConfig *tls.Config
	// HTTPClient posts to Slack and the callback URL; nil: a client with a 15 s timeout.
	HTTPClient *http.Client
	Logger     *slog.Logger
	Now        func() time.Time
}

// Notifier sends email, Slack messages and callbacks for River jobs and records each outcome in
// waybill.notifications.
type Notifier struct {
	pool   *pgxpool.Pool
	logger *slog.Logger
	now    func() time.Time
	http   *http.Client

	mail        *mailer  // nil: SMTP_URL or LOGISTICS_EMAIL not set
	mailSkip    string   // why mail is nil
	mailTo      []string // LOGISTICS_EMAIL, parsed
	mailTarget  string   // LOGISTICS_EMAIL's bare addresses, for waybill.notifications
	slackURL    *url.URL // nil: not configured
	callbackURL *url.URL // nil: not configured
	callbackKey string
}

// New validates cfg (every problem names its variable) and returns a Notifier that records
// outcomes through pool.
func New(pool *pgxpool.Pool, cfg Config) (*Notifier, error) {
	n := &Notifier{
		pool:        pool,
		logger:      cfg.Logger,
		now:         cfg.Now,
		http:        cfg.HTTPClient,
		callbackKey: cfg.CallbackSecret,
	}
	if n.logger == nil {
		n.logger = slog.New(slog.DiscardHandler)
	}
	if n.now == nil {
		n.now = time.Now
	}
	if n.http == nil {
		n.http = &http.Client{Timeout: 15 * time.Second}
	}

	var errs []error
	var err error
	if cfg.LogisticsEmail != "" {
		if n.mailTo, n.mailTarget, err = parseAddressList(cfg.LogisticsEmail); err != nil {
			errs = append(errs, fmt.Errorf("LOGISTICS_EMAIL: %w", err))
		}
	}
	from := cfg.MailFrom
	if from == "" {
		from = "waybill@localhost"
	}
	switch {
	case cfg.SMTPURL == "":
		n.mailSkip = "SMTP_URL is not set"
	case cfg.LogisticsEmail == "":
		n.mailSkip = "LOGISTICS_EMAIL is not set"
	}
	if cfg.SMTPURL != "" {
		m, err := newMailer(cfg.SMTPURL, from, cfg.TLSConfig)
		if err != nil {
			errs = append(errs, err)
		} else if cfg.LogisticsEmail != "" {
			n.mail = m
		}
	}
	if n.slackURL, err = parseHTTPURL(cfg.SlackWebhookURL); err != nil {
		errs = append(errs, fmt.Errorf("SLACK_WEBHOOK_URL: %w", err))
	}
	if n.callbackURL, err = parseHTTPURL(cfg.CallbackURL); err != nil {
		errs = append(errs, fmt.Errorf("WAYBILL_CALLBACK_URL: %w", err))
	}
	if cfg.CallbackURL != "" && cfg.CallbackSecret == "" {
		errs = append(errs, errors.New("WAYBILL_CALLBACK_SECRET: required when WAYBILL_CALLBACK_URL is set (callbacks are signed)"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("notify: %w", err)
	}
	return n, nil
}

// AddWorkers registers the email, Slack and callback workers. The client must work QueueNotify.
func AddWorkers(workers *river.Workers, n *Notifier) {
	river.AddWorker(workers, &emailWorker{n: n})
	river.AddWorker(workers, &slackWorker{n: n})
	river.AddWorker(workers, &callbackWorker{n: n})
}

// outcome is one row of waybill.notifications.
type outcome struct {
	kind       string // email, slack, callback
	skipReason string // empty: sent
	target     string
	subject    string
	body       string
	orderID    int64 // 0: not about one order
	externalID string
}

// finish logs o and records it in the transaction that completes job, so a completed job has
// exactly one row.
func finish[T river.JobArgs](ctx context.Context, n *Notifier, job *river.Job[T], o outcome) error {
	attrs := []any{"channel", o.kind, "target", o.target, "subject", o.subject, "job_id", job.ID}
	if o.orderID != 0 {
		attrs = append(attrs, "order_id", o.orderID)
	}
	if o.externalID != "" {
		attrs = append(attrs, "external_id", o.externalID)
	}
	if o.skipReason != "" {
		// A Slack message (an integration problem, no personal data) goes to the log, so a dev
		// setup without Slack still shows it. Emails name the recipient, their phone and address,
		// and callbacks carry the carrier's words: personal data never reaches the log, those
		// stay in waybill.notifications.
		if o.kind == "slack" {
			attrs = append(attrs, "body", o.body)
		}
		n.logger.InfoContext(ctx, "notification skipped: "+o.skipReason, attrs...)
	} else {
		n.logger.InfoContext(ctx, "notification sent", attrs...)
	}

	err := record(ctx, n, job, o)
	if err == nil || o.skipReason != "" {
		// A skipped notification is only its record: failing retries it at no cost.
		return err
	}
	// It was sent; failing now would send it again on retry. A missing audit row is the
	// lesser harm, and River completes the job itself.
	n.logger.ErrorContext(ctx, "notification sent but not recorded", append(attrs, "error", err)...)
	return nil
}

func record[T river.JobArgs](ctx context.Context, n *Notifier, job *river.Job[T], o outcome) error {
	tx, err := n.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("record notification: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit

	params := dbsqlc.NotificationInsertParams{
		Kind:      o.kind,
		Outcome:   "sent",
		Target:    o.target,
		Subject:   o.subject,
		Body:      o.body,
		OrderID:   pgtype.Int8{Int64: o.orderID, Valid: o.orderID != 0},
		JobID:     job.ID,
		CreatedAt: n.now(),
	}
	if o.skipReason != "" {
		params.Outcome, params.SkipReason = "skipped", &o.skipReason
	}
	if o.externalID != "" {
		params.ExternalID = &o.externalID
	}
	if _, err := dbsqlc.New().NotificationInsert(ctx, tx, params); err != nil {
		return fmt.Errorf("record notification: %w", err)
	}
	if _, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job); err != nil {
		return fmt.Errorf("record notification: complete job: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("record notification: %w", err)
	}
	return nil
}

// post sends body to target and fails on anything but 2xx, so River retries it.
func (n *Notifier) post(ctx context.Context, target *url.URL, header http.Header, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.String(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("post to %s: %w", target.Host, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "waybill")
	resp, err := n.http.Do(req)
	if err != nil {
		// *url.Error repeats the whole URL, and a Slack webhook URL is a secret: name the host only.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("post to %s: %w", target.Host, err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("post to %s: HTTP %d: %s", target.Host, resp.StatusCode, strings.TrimSpace(string(snippet)))
	}
	return nil
}

// parseHTTPURL returns nil for an empty setting.
func parseHTTPURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("not a URL") // url.Parse's error would echo a secret URL
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("scheme must be http or https, not %q", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("missing host")
	}
	return u, nil
}
