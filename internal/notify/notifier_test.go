package notify

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/dbsqlc"
	"github.com/waybill/waybill/internal/dbtest"
	"github.com/waybill/waybill/internal/logtest"
)

// testNow is every test's clock: callbacks are signed with it and rows record it.
var testNow = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

type testBundle struct {
	pool   *pgxpool.Pool
	client *river.Client[pgx.Tx]
	events <-chan *river.Event
	logs   *logtest.Buffer
}

type testOpts struct {
	// retryNow makes a failed job available again at once; otherwise it waits an hour, so a test
	// sees exactly one failed attempt.
	retryNow bool
}

// setup starts a real River client working QueueNotify with the notifier's workers, on a fresh
// database.
func setup(t *testing.T, cfg Config, opts testOpts) *testBundle {
	t.Helper()
	pool, _ := dbtest.NewPool(t)
	logs := &logtest.Buffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	cfg.Now = func() time.Time { return testNow }
	n, err := New(pool, cfg)
	require.NoError(t, err)

	workers := river.NewWorkers()
	AddWorkers(workers, n)
	client, events := dbtest.StartRiver(t, pool, &river.Config{
		Queues:            map[string]river.QueueConfig{QueueNotify: {MaxWorkers: 2}},
		Workers:           workers,
		FetchCooldown:     10 * time.Millisecond,
		FetchPollInterval: 50 * time.Millisecond,
		RetryPolicy:       retryPolicy{now: opts.retryNow},
		TestOnly:          true,
	}, river.EventKindJobCompleted, river.EventKindJobFailed)
	return &testBundle{pool: pool, client: client, events: events, logs: logs}
}

// insert enqueues args with their own InsertOpts (so QueueNotify is what routes them here).
func (b *testBundle) insert(t *testing.T, args river.JobArgs) int64 {
	t.Helper()
	res, err := b.client.Insert(context.Background(), args, nil)
	require.NoError(t, err)
	require.Equal(t, QueueNotify, res.Job.Queue)
	return res.Job.ID
}

// await returns the next completed or failed event of job id.
func (b *testBundle) await(t *testing.T, id int64) *river.Event {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case ev := <-b.events:
			if ev.Job.ID == id {
				return ev
			}
		case <-timeout:
			t.Fatalf("job %d: no completed or failed event", id)
		}
	}
}

// work inserts args and waits for the job's first completion or failure.
func (b *testBundle) work(t *testing.T, args river.JobArgs) *river.Event {
	t.Helper()
	return b.await(t, b.insert(t, args))
}

func (b *testBundle) notifications(t *testing.T) []dbsqlc.WaybillNotification {
	t.Helper()
	rows, err := dbsqlc.New().NotificationListRecent(context.Background(), b.pool, dbsqlc.NotificationListRecentParams{MaxRows: 100})
	require.NoError(t, err)
	return rows
}

func requireCompleted(t *testing.T, ev *river.Event) {
	t.Helper()
	require.Equal(t, river.EventKindJobCompleted, ev.Kind, "job errors: %v", ev.Job.Errors)
	require.Equal(t, rivertype.JobStateCompleted, ev.Job.State)
}

// requireFailed checks that the job errored and is waiting for River's retry (available at once
// when the retry is due within River's scheduler interval), and returns its latest error.
func requireFailed(t *testing.T, ev *river.Event) string {
	t.Helper()
	require.Equal(t, river.EventKindJobFailed, ev.Kind)
	require.Contains(t, []rivertype.JobState{rivertype.JobStateRetryable, rivertype.JobStateAvailable}, ev.Job.State)
	require.NotEmpty(t, ev.Job.Errors)
	return ev.Job.Errors[len(ev.Job.Errors)-1].Error
}

type retryPolicy struct{ now bool }

func (p retryPolicy) NextRetry(*rivertype.JobRow) time.Time {
	if p.now {
		return time.Now()
	}
	return time.Now().Add(time.Hour)
}

func TestNotConfiguredIsSkippedAndRecorded(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{}, testOpts{})

	requireCompleted(t, b.work(t, EmailArgs{OrderID: 7, ExternalID: "SO-7", Carrier: "onfleet", Status: "failed_attempt", Reason: "Nobody home",
		Recipient: "Ada Lovelace, +15551234567", Address: "12 St James's Square, London, SW1Y 4JH, GB"}))
	requireCompleted(t, b.work(t, SlackArgs{Title: "Quarantined status", Text: "onfleet sent taskFoo", Severity: "alarm"}))
	requireCompleted(t, b.work(t, CallbackArgs{OrderID: 7, ExternalID: "SO-7", Status: "delivered", PreviousStatus: "in_transit"}))

	byKind := map[string]dbsqlc.WaybillNotification{}
	for _, r := range b.notifications(t) {
		byKind[r.Kind] = r
	}
	require.Len(t, byKind, 3)
	for kind, reason := range map[string]string{
		"email":    "SMTP_URL is not set",
		"slack":    "SLACK_WEBHOOK_URL is not set",
		"callback": "WAYBILL_CALLBACK_URL is not set",
	} {
		r := byKind[kind]
		require.Equal(t, "skipped", r.Outcome, kind)
		require.NotNil(t, r.SkipReason, kind)
		require.Equal(t, reason, *r.SkipReason)
		require.True(t, testNow.Equal(r.CreatedAt), kind)
		require.NotZero(t, r.JobID)
	}
	require.Equal(t, "[Waybill] failed_attempt: order SO-7", byKind["email"].Subject)
	require.Contains(t, byKind["email"].Body, "Nobody home")
	require.Equal(t, int64(7), byKind["email"].OrderID.Int64)
	require.Equal(t, "SO-7", *byKind["email"].ExternalID)
	require.Equal(t, "Quarantined status", byKind["slack"].Subject)
	require.False(t, byKind["slack"].OrderID.Valid)
	require.Nil(t, byKind["slack"].ExternalID)
	require.Contains(t, byKind["callback"].Body, `"previous_status":"in_transit"`)

	require.Contains(t, byKind["email"].Body, "Ada Lovelace")

	// What was not sent is logged, but personal data never is: the email (recipient, phone,
	// address) stays in waybill.notifications; Slack's integration message is logged in full.
	logs := b.logs.String()
	require.Contains(t, logs, "notification skipped: SMTP_URL is not set")
	for _, personal := range []string{"Ada Lovelace", "+15551234567", "St James", "SW1Y 4JH", "Nobody home"} {
		require.NotContains(t, logs, personal)
	}
	require.Contains(t, logs, "onfleet sent taskFoo")
}

func TestEmailWithoutLogisticsEmailIsSkipped(t *testing.T) {
	t.Parallel()
	sink := startSMTP(t, smtpPlain, "", "")
	b := setup(t, Config{SMTPURL: sink.url("smtp", "")}, testOpts{})

	requireCompleted(t, b.work(t, EmailArgs{ExternalID: "SO-8", Status: "returned"}))
	rows := b.notifications(t)
	require.Len(t, rows, 1)
	require.Equal(t, "skipped", rows[0].Outcome)
	require.Equal(t, "LOGISTICS_EMAIL is not set", *rows[0].SkipReason)
	require.Empty(t, sink.messages())
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     Config
		wantErr []string
	}{
		{"bad SMTP scheme", Config{SMTPURL: "http://mail.example.com"}, []string{"SMTP_URL", `not "http"`}},
		{"SMTP missing host", Config{SMTPURL: "smtp:///"}, []string{"SMTP_URL: missing host"}},
		{"SMTP bad port", Config{SMTPURL: "smtp://mail.example.com:99999"}, []string{"SMTP_URL: port"}},
		{"SMTP unparsable, password not echoed", Config{SMTPURL: "smtp://u:hunter2@exa mple.com:x"}, []string{"SMTP_URL: not a URL"}},
		{"bad MAIL_FROM", Config{SMTPURL: "smtp://mail.example.com", MailFrom: "not an address"}, []string{"MAIL_FROM"}},
		{"bad LOGISTICS_EMAIL", Config{LogisticsEmail: "ops@example.com, nope"}, []string{"LOGISTICS_EMAIL"}},
		{"bad Slack URL", Config{SlackWebhookURL: "ftp://hooks.slack.com/x"}, []string{"SLACK_WEBHOOK_URL", "scheme"}},
		{"callback without secret", Config{CallbackURL: "https://monolith.example.com/waybill"}, []string{"WAYBILL_CALLBACK_SECRET"}},
		{"every problem at once", Config{SMTPURL: "imap://x", SlackWebhookURL: "https://"}, []string{"SMTP_URL", "SLACK_WEBHOOK_URL: missing host"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(nil, tt.cfg)
			require.Error(t, err)
			for _, want := range tt.wantErr {
				require.Contains(t, err.Error(), want)
			}
			require.False(t, strings.Contains(err.Error(), "hunter2"), "error echoes the password: %v", err)
		})
	}

	n, err := New(nil, Config{
		SMTPURL:         "smtps://user:pass@mail.example.com",
		MailFrom:        "Waybill <waybill@example.com>",
		LogisticsEmail:  "ops@example.com, Lead <lead@example.com>",
		SlackWebhookURL: "https://hooks.slack.com/services/T/B/x",
		CallbackURL:     "https://monolith.example.com/waybill",
		CallbackSecret:  "s3cret",
	})
	require.NoError(t, err)
	require.Equal(t, []string{"<ops@example.com>", `"Lead" <lead@example.com>`}, n.mailTo)
	require.Equal(t, "ops@example.com, lead@example.com", n.mailTarget)
}
