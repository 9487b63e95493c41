package alarm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/waybill/waybill/internal/dbsqlc"
	"github.com/waybill/waybill/internal/metrics"
	"github.com/waybill/waybill/internal/notify"
)

// Alarm names: waybill.alarms.name and the alarm label of waybill_alarms_sent_total.
const (
	NameDeadLetters       = "dead_letters"
	NameBacklog           = "backlog"
	NameCarrierAuth       = "carrier_auth"
	NameWebhookSignatures = "webhook_signatures"
	NameSilence           = "silence"
	NameStuckBatches      = "stuck_batches"
	// NameWebhooksNotArriving: reconciliation keeps learning what webhooks should have said.
	NameWebhooksNotArriving = "webhooks_not_arriving"
	// NameCarrierWebhooks: a webhook Waybill needs is missing or disabled at the carrier.
	NameCarrierWebhooks = "carrier_webhooks"
)

// Alarm states, as stored and as labelled in waybill_alarms_sent_total.
const (
	stateFiring   = "firing"
	stateResolved = "resolved"
)

// Config tunes the alarms. Zero values take the defaults.
type Config struct {
	// BacklogAlertAfter: a pending order or available job older than this is a backlog
	// (WAYBILL_BACKLOG_ALERT_AFTER, default 5m).
	BacklogAlertAfter time.Duration
	// SilenceAlertAfter: a dispatched order with no carrier event for this long is emailed to
	// logistics (WAYBILL_SILENCE_ALERT_AFTER, default 24h).
	SilenceAlertAfter time.Duration
	// CheckInterval: how often the leader runs the check (default 1m).
	CheckInterval time.Duration
	// RemindAfter: a Slack alarm still firing is sent again, with its news, at most this often
	// (default 4h).
	RemindAfter time.Duration
	// DeadLetterQuietAfter: the dead-letter alarm resolves once no new dead letter has arrived
	// for this long (default 15m).
	DeadLetterQuietAfter time.Duration
	// BadSignatureThreshold webhook requests with a bad signature within BadSignatureWindow
	// fire the alarm for that carrier (defaults 5 in 10m); it resolves once a whole window is
	// clean.
	BadSignatureThreshold int64
	BadSignatureWindow    time.Duration
	// BatchStuckAfter: a dispatch batch unsettled for this long fires the stuck-batch alarm
	// for its carrier (WAYBILL_BATCH_STUCK_AFTER, default 5m).
	BatchStuckAfter time.Duration
	// WebhookGapThreshold status changes learnt by reconciliation (not announced by any webhook)
	// within WebhookGapWindow fire "webhooks not arriving" for that carrier
	// (WAYBILL_WEBHOOK_GAP_THRESHOLD, WAYBILL_WEBHOOK_GAP_WINDOW; defaults 10 in 15m).
	WebhookGapThreshold int64
	WebhookGapWindow    time.Duration

	Logger  *slog.Logger
	Metrics *metrics.Metrics // may be nil
	Now     func() time.Time // the clock, for tests; default time.Now
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.BacklogAlertAfter, 5*time.Minute)
	def(&c.SilenceAlertAfter, 24*time.Hour)
	def(&c.CheckInterval, time.Minute)
	def(&c.RemindAfter, 4*time.Hour)
	def(&c.DeadLetterQuietAfter, 15*time.Minute)
	def(&c.BadSignatureWindow, 10*time.Minute)
	def(&c.BatchStuckAfter, 5*time.Minute)
	def(&c.WebhookGapWindow, defaultWebhookGapWindow)
	if c.WebhookGapThreshold <= 0 {
		c.WebhookGapThreshold = defaultWebhookGapThreshold
	}
	if c.BadSignatureThreshold <= 0 {
		c.BadSignatureThreshold = 5
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Checker evaluates every alarm. It is safe to run on several instances at once (each alarm is
// checked under a transaction-scoped advisory lock and its state is in Postgres), but the
// periodic job runs it on the leader only.
type Checker struct {
	cfg  Config
	pool *pgxpool.Pool
	q    *dbsqlc.Queries
}

func NewChecker(pool *pgxpool.Pool, cfg Config) *Checker {
	return &Checker{cfg: cfg.withDefaults(), pool: pool, q: dbsqlc.New()}
}

// Check evaluates each alarm once, in its own transaction, inserting notification jobs through
// client. One alarm failing does not stop the others; the errors are joined.
func (c *Checker) Check(ctx context.Context, client *river.Client[pgx.Tx]) error {
	checks := []struct {
		name string
		fn   func(context.Context, *alarmTx) error
	}{
		{NameDeadLetters, c.checkDeadLetters},
		{NameBacklog, c.checkBacklog},
		{NameCarrierAuth, c.checkCarrierAuth},
		{NameWebhookSignatures, c.checkWebhookSignatures},
		{NameSilence, c.checkSilence},
		{NameStuckBatches, c.checkStuckBatches},
		{NameWebhooksNotArriving, c.checkWebhooksNotArriving},
		{NameCarrierWebhooks, c.checkCarrierWebhooks},
	}
	var errs []error
	for _, ch := range checks {
		if err := c.inTx(ctx, client, ch.name, ch.fn); err != nil {
			c.cfg.Logger.ErrorContext(ctx, "alarm check failed", "alarm", ch.name, "error", err)
			errs = append(errs, fmt.Errorf("alarm %s: %w", ch.name, err))
		}
	}
	return errors.Join(errs...)
}

// alarmTx is one alarm's check: its transaction, and the messages it enqueued.
type alarmTx struct {
	tx     pgx.Tx
	client *river.Client[pgx.Tx]
	now    time.Time
	sent   []sentMessage
}

type sentMessage struct{ name, key, state string }

func (c *Checker) inTx(ctx context.Context, client *river.Client[pgx.Tx], name string, fn func(context.Context, *alarmTx) error) error {
	tx, err := c.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	if err := c.q.AlarmLock(ctx, tx, name); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	// The clock is read after the lock: a check that waited for another sees its state as of
	// now, not as of before it waited.
	atx := &alarmTx{tx: tx, client: client, now: c.cfg.Now()}
	if err := fn(ctx, atx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	// Counted and logged only once committed: a rolled-back message was never sent.
	for _, s := range atx.sent {
		c.cfg.Metrics.AlarmSent(s.name, s.state)
		c.cfg.Logger.InfoContext(ctx, "alarm message enqueued", "alarm", s.name, "key", s.key, "state", s.state)
	}
	return nil
}

// observation is what one check found about one alarm subject.
type observation struct {
	name, key string
	// holds: the condition is true now (the alarm should be firing).
	holds bool
	// news: new occurrences this check found (dead letters). Alarms that count occurrences
	// (counted) remind only when there is news; the others remind while they hold.
	news    int64
	counted bool
	// details replaces the row's details when not nil.
	details any
	// message renders the Slack message for a transition; row is the alarm after it.
	message func(kind messageKind, row dbsqlc.AlarmSaveParams) notify.SlackArgs
}

type messageKind int

const (
	messageFiring messageKind = iota
	messageReminder
	messageResolved
)

// getAlarm returns the alarm's row, nil when it has none.
func (c *Checker) getAlarm(ctx context.Context, atx *alarmTx, name, key string) (*dbsqlc.WaybillAlarm, error) {
	row, err := c.q.AlarmGet(ctx, atx.tx, dbsqlc.AlarmGetParams{Name: name, Key: key})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &row, nil
}

// apply moves an alarm from prev (nil: no row) to what o observed, saves it, and enqueues the
// Slack message the transition calls for: firing, a reminder, or resolved.
func (c *Checker) apply(ctx context.Context, atx *alarmTx, prev *dbsqlc.WaybillAlarm, o observation) error {
	now := atx.now
	row := dbsqlc.AlarmSaveParams{Name: o.name, Key: o.key, State: stateResolved, Details: []byte("{}"), UpdatedAt: now}
	if prev != nil {
		row = dbsqlc.AlarmSaveParams{
			Name: o.name, Key: o.key, State: prev.State,
			FirstFiredAt: prev.FirstFiredAt, LastSeenAt: prev.LastSeenAt, LastNotifiedAt: prev.LastNotifiedAt,
			ResolvedAt: prev.ResolvedAt, Count: prev.Count, NotifiedCount: prev.NotifiedCount,
			Details: prev.Details, UpdatedAt: now,
		}
	}
	if o.details != nil {
		b, err := json.Marshal(o.details)
		if err != nil {
			return fmt.Errorf("encode details: %w", err)
		}
		row.Details = b
	}
	if o.holds && (o.news > 0 || !o.counted) {
		row.LastSeenAt = &now
	}

	kind, send := messageFiring, false
	switch firing := row.State == stateFiring; {
	case o.holds && !firing:
		kind, send = messageFiring, true
		row.State, row.FirstFiredAt, row.ResolvedAt = stateFiring, &now, nil
		row.Count = max(o.news, 1)
	case o.holds && firing:
		row.Count += o.news
		hasNews := !o.counted || row.Count > row.NotifiedCount
		if hasNews && row.LastNotifiedAt != nil && now.Sub(*row.LastNotifiedAt) >= c.cfg.RemindAfter {
			kind, send = messageReminder, true
		}
	case !o.holds && firing:
		kind, send = messageResolved, true
		row.State, row.ResolvedAt = stateResolved, &now
	default:
		if prev == nil && o.details == nil {
			return nil // nothing to remember
		}
	}
	if send && kind != messageResolved {
		row.LastNotifiedAt, row.NotifiedCount = &now, row.Count
	}
	if err := c.q.AlarmSave(ctx, atx.tx, row); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	if !send {
		return nil
	}
	msg := o.message(kind, row)
	if kind == messageResolved {
		msg.Severity = stateResolved
	} else {
		msg.Severity = "alarm"
	}
	if _, err := atx.client.InsertTx(ctx, atx.tx, msg, tagged(o.name)); err != nil {
		return fmt.Errorf("enqueue slack message: %w", err)
	}
	state := stateFiring
	if kind == messageResolved {
		state = stateResolved
	}
	atx.sent = append(atx.sent, sentMessage{name: o.name, key: o.key, state: state})
	return nil
}

// applyKeyed applies observations for an alarm with one row per subject (a carrier): subjects
// observed now, and firing subjects no longer observed, which resolve.
func (c *Checker) applyKeyed(ctx context.Context, atx *alarmTx, name string, obs []observation, cleared func(key string) observation) error {
	firing, err := c.q.AlarmListFiring(ctx, atx.tx, name)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, o := range obs {
		seen[o.key] = true
		prev, err := c.getAlarm(ctx, atx, name, o.key)
		if err != nil {
			return err
		}
		if err := c.apply(ctx, atx, prev, o); err != nil {
			return fmt.Errorf("%s: %w", o.key, err)
		}
	}
	for i := range firing {
		if !seen[firing[i].Key] {
			if err := c.apply(ctx, atx, &firing[i], cleared(firing[i].Key)); err != nil {
				return fmt.Errorf("%s: %w", firing[i].Key, err)
			}
		}
	}
	return nil
}

// tagged marks an alarm's message jobs, for River UI and `waybill dead list`.
func tagged(name string) *river.InsertOpts {
	return &river.InsertOpts{Tags: []string{"alarm", name}}
}

// clock formats a time for a message: UTC, to the minute.
func clock(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// ago formats a duration for a message, rounded to what a person reads: 45s, 7m, 1h10m.
func ago(d time.Duration) string {
	switch {
	case d < time.Minute:
		d = d.Round(time.Second)
	case d < time.Hour:
		d = d.Round(time.Minute)
	default:
		d = d.Round(10 * time.Minute)
	}
	s := d.String() // e.g. 1h0m0s
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
