package alarm

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestWebhookSignaturesAlarm(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	rec := NewRecorder(b.pool, b.cfg.Logger, b.clock.Now)

	// Below the threshold (5 in 10m): a stray forged request is no alarm.
	for range 4 {
		rec.WebhookBadSignature("onfleet")
	}
	require.NoError(t, rec.Flush(ctx))
	b.check(t)
	require.Empty(t, b.slackJobs(t, NameWebhookSignatures))

	b.clock.Advance(time.Minute)
	rec.WebhookReceived("onfleet", "accepted") // not counted
	rec.WebhookReceived("onfleet", "bad_signature")
	rec.WebhookBadSignature("onfleet")
	require.NoError(t, rec.Flush(ctx))
	b.check(t)
	msgs := b.slackJobs(t, NameWebhookSignatures)
	require.Len(t, msgs, 1)
	require.Equal(t, "onfleet webhooks: 6 with a bad signature in 10m", msgs[0].Title)
	require.Contains(t, msgs[0].Text, "ONFLEET_WEBHOOK_SECRET")

	// A trickle keeps it firing without repeating; so does a restart.
	b.clock.Advance(5 * time.Minute)
	rec.WebhookBadSignature("onfleet")
	require.NoError(t, rec.Flush(ctx))
	b.check(t)
	b.check(t)
	require.Len(t, b.slackJobs(t, NameWebhookSignatures), 1)
	require.Equal(t, "firing", b.alarm(t, NameWebhookSignatures, "onfleet").State)

	// A whole clean window: resolved.
	b.clock.Advance(11 * time.Minute)
	b.check(t)
	b.check(t)
	msgs = b.slackJobs(t, NameWebhookSignatures)
	require.Len(t, msgs, 2)
	require.Equal(t, "resolved", msgs[1].Severity)
	require.Equal(t, "onfleet webhooks: no bad signatures for 10m", msgs[1].Title)

	// Counts older than a day are pruned.
	b.clock.Advance(25 * time.Hour)
	b.check(t)
	var rows int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM waybill.webhook_signature_failures`).Scan(&rows))
	require.Zero(t, rows)
}
