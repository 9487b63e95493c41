package alarm

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/dbsqlc"
	"github.com/waybill/waybill/internal/dbtest"
)

func TestSilenceAlarm(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	q := dbsqlc.New()

	id1, job1 := dbtest.InsertOrder(t, b.pool, dbtest.Order{ExternalID: "SO-1"})
	id2, job2 := dbtest.InsertOrder(t, b.pool, dbtest.Order{ExternalID: "SO-2"})
	_, job3 := dbtest.InsertOrder(t, b.pool, dbtest.Order{ExternalID: "SO-3"}) // never dispatched: the backlog alarm's, not silence's
	_, err := q.OrderMarkDispatchedMany(ctx, b.pool, dbsqlc.OrderMarkDispatchedManyParams{
		Ids: []int64{id1, id2}, CarrierRefs: []string{"t1", "t2"}, TrackingUrls: []string{"https://track/1", "https://track/2"}})
	require.NoError(t, err)
	for _, j := range []int64{job1, job2, job3} {
		finishJob(t, b.pool, j)
	}
	event := func(orderID int64, key string) {
		t.Helper()
		_, err := b.pool.Exec(ctx, `
			INSERT INTO waybill.order_events (order_id, status, carrier_status, occurred_at, applied, event_key, created_at)
			VALUES ($1, 'in_transit', 'taskStarted', $2, true, $3, $2)`, orderID, b.clock.Now(), key)
		require.NoError(t, err)
	}

	b.clock.Advance(23 * time.Hour)
	b.check(t)
	require.Empty(t, b.emailJobs(t))

	// Past SilenceAlertAfter (24h): one email for both orders.
	b.clock.Advance(2 * time.Hour)
	b.check(t)
	mails := b.emailJobs(t)
	require.Len(t, mails, 1)
	require.Equal(t, "[Waybill] 2 orders with no carrier news for 24h", mails[0].Subject)
	require.Contains(t, mails[0].Body, "SO-1 (onfleet, dispatched, accepted ")
	require.Contains(t, mails[0].Body, "Tracking: https://track/1")
	require.Contains(t, mails[0].Body, "SO-2 (onfleet, dispatched")
	require.NotContains(t, mails[0].Body, "SO-3")
	require.Empty(t, b.slackJobs(t, NameSilence))
	require.Equal(t, 1.0, b.alarmsSent(t, NameSilence, "firing"))

	// Never twice for the same silence, restart or not.
	b.clock.Advance(time.Hour)
	b.check(t)
	b.check(t)
	require.Len(t, b.emailJobs(t), 1)

	// SO-1 is heard from: its silence ends without a message. SO-2 stays silent, not repeated.
	event(id1, "e1")
	b.check(t)
	require.Equal(t, "resolved", b.alarm(t, NameSilence, itoa(id1)).State)
	require.Equal(t, "firing", b.alarm(t, NameSilence, itoa(id2)).State)
	require.Len(t, b.emailJobs(t), 1)

	// SO-1 goes quiet again for a whole period: a new silence, a new email about it alone.
	b.clock.Advance(25 * time.Hour)
	b.check(t)
	mails = b.emailJobs(t)
	require.Len(t, mails, 2)
	require.Equal(t, "[Waybill] No carrier news for order SO-1 in 24h", mails[1].Subject)
	require.Equal(t, id1, mails[1].OrderID)
	require.Equal(t, "SO-1", mails[1].ExternalID)
	require.Equal(t, "https://track/1", mails[1].TrackingURL)
	require.EqualValues(t, 2, b.alarm(t, NameSilence, itoa(id1)).Count)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
