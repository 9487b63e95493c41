package alarm

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCarrierAuthAlarm(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	rec := NewRecorder(b.pool, b.cfg.Logger, b.clock.Now)

	rec.CarrierAuth(ctx, "onfleet", true)
	require.NoError(t, rec.Flush(ctx))
	b.check(t)
	require.Empty(t, b.slackJobs(t, NameCarrierAuth), "accepted credentials are no alarm")

	b.clock.Advance(time.Second)
	for range 50 { // many refusals between two flushes: one write, one message
		rec.CarrierAuth(ctx, "onfleet", false)
	}
	require.NoError(t, rec.Flush(ctx))
	b.check(t)
	msgs := b.slackJobs(t, NameCarrierAuth)
	require.Len(t, msgs, 1)
	require.Equal(t, "onfleet refuses Waybill's credentials", msgs[0].Title)
	require.Equal(t, "onfleet", msgs[0].Fields["Carrier"])
	require.Contains(t, msgs[0].Text, "ONFLEET_API_KEY")

	// Still refusing: no repeat on later checks or after a restart (b.check builds a new checker).
	b.clock.Advance(time.Minute)
	rec.CarrierAuth(ctx, "onfleet", false)
	require.NoError(t, rec.Flush(ctx))
	b.check(t)
	b.check(t)
	require.Len(t, b.slackJobs(t, NameCarrierAuth), 1)

	// A request succeeds: resolved.
	b.clock.Advance(time.Minute)
	rec.CarrierAuth(ctx, "onfleet", true)
	require.NoError(t, rec.Flush(ctx))
	b.check(t)
	b.check(t)
	msgs = b.slackJobs(t, NameCarrierAuth)
	require.Len(t, msgs, 2)
	require.Equal(t, "resolved", msgs[1].Severity)
	require.Equal(t, "onfleet accepts Waybill's credentials again", msgs[1].Title)
	require.Equal(t, 1.0, b.alarmsSent(t, NameCarrierAuth, "firing"))
	require.Equal(t, 1.0, b.alarmsSent(t, NameCarrierAuth, "resolved"))
}

// Two processes: one still succeeding (its flush lags), one refused later. The newest
// observation wins, whichever process flushes last.
func TestCarrierAuthNewestWins(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	a := NewRecorder(b.pool, b.cfg.Logger, b.clock.Now)
	c := NewRecorder(b.pool, b.cfg.Logger, b.clock.Now)

	a.CarrierAuth(ctx, "onfleet", false)
	b.clock.Advance(time.Second)
	c.CarrierAuth(ctx, "onfleet", true)
	require.NoError(t, c.Flush(ctx))
	require.NoError(t, a.Flush(ctx)) // an older refusal, flushed late
	b.check(t)
	require.Empty(t, b.slackJobs(t, NameCarrierAuth))
}
