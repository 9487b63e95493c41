package alarm

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/dbtest"
)

func TestWebhooksNotArrivingAlarm(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	orderID, _ := dbtest.InsertOrder(t, b.pool, dbtest.Order{ExternalID: "SO-GAP"})
	seq := 0
	polled := func(n int) {
		for range n {
			seq++
			_, err := b.pool.Exec(ctx, `INSERT INTO waybill.order_events (order_id, status, carrier_status, occurred_at, applied, event_key, learnt_by, created_at)
				VALUES ($1, 'assigned', 'taskAssigned', $2, true, $3, 'poll', $2)`, orderID, b.clock.Now(), fmt.Sprintf("poll:%d", seq))
			require.NoError(t, err)
		}
	}

	// A few changes learnt by polling: reconciliation doing its job, not an alarm.
	polled(9)
	b.check(t)
	require.Empty(t, b.slackJobs(t, NameWebhooksNotArriving))

	polled(1) // the 10th within 15 minutes (the defaults)
	b.check(t)
	b.check(t)
	msgs := b.slackJobs(t, NameWebhooksNotArriving)
	require.Len(t, msgs, 1)
	require.Equal(t, "onfleet webhooks are not arriving", msgs[0].Title)
	for _, s := range []string{"10 order changes", "300 failed deliveries", "waybill carriers check", "ONFLEET_WEBHOOK_SECRET", "unreachable"} {
		require.Contains(t, msgs[0].Text, s)
	}
	require.Equal(t, "SO-GAP", msgs[0].Fields["Orders"])

	// Quiet for longer than the window, but no webhook has come: still firing, nothing sent.
	b.clock.Advance(20 * time.Minute)
	b.check(t)
	require.Len(t, b.slackJobs(t, NameWebhooksNotArriving), 1)
	require.Equal(t, stateFiring, b.alarm(t, NameWebhooksNotArriving, "onfleet").State)

	// A real webhook arrives after the last change polling learnt: resolved, once.
	_, err := b.pool.Exec(ctx, `INSERT INTO waybill.webhook_events (carrier, event_key, body, source_addr, received_at)
		VALUES ('onfleet', 'k1', '{}', '127.0.0.1', $1)`, b.clock.Now())
	require.NoError(t, err)
	b.check(t)
	b.check(t)
	msgs = b.slackJobs(t, NameWebhooksNotArriving)
	require.Len(t, msgs, 2)
	require.Equal(t, "onfleet webhooks are arriving again", msgs[1].Title)
}

func TestCarrierWebhooksAlarm(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	save := func(disabled []string, errText string) {
		_, err := b.pool.Exec(ctx, `INSERT INTO waybill.carrier_webhook_checks (carrier, checked_at, url, disabled, error)
			VALUES ('onfleet', $1, 'https://w.example.com/webhooks/onfleet', $2, $3)
			ON CONFLICT (carrier) DO UPDATE SET checked_at = excluded.checked_at, disabled = excluded.disabled, error = excluded.error`,
			b.clock.Now(), disabled, errText)
		require.NoError(t, err)
	}
	save([]string{}, "")
	b.check(t)
	require.Empty(t, b.slackJobs(t, NameCarrierWebhooks))

	save([]string{"taskCompleted"}, "")
	b.check(t)
	b.check(t)
	msgs := b.slackJobs(t, NameCarrierWebhooks)
	require.Len(t, msgs, 1)
	require.Equal(t, "onfleet webhooks for Waybill are missing or disabled", msgs[0].Title)
	require.Contains(t, msgs[0].Text, "`waybill carriers register --url https://w.example.com/webhooks/onfleet`")
	require.Equal(t, "taskCompleted", msgs[0].Fields["Disabled by the carrier"])

	// A check that could not be made changes nothing.
	save([]string{}, "onfleet: timeout")
	b.check(t)
	require.Len(t, b.slackJobs(t, NameCarrierWebhooks), 1)
	require.Equal(t, stateFiring, b.alarm(t, NameCarrierWebhooks, "onfleet").State)

	save([]string{}, "")
	b.check(t)
	msgs = b.slackJobs(t, NameCarrierWebhooks)
	require.Len(t, msgs, 2)
	require.Equal(t, "onfleet webhooks are registered again", msgs[1].Title)
}
