package alarm

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/dbsqlc"
	"github.com/waybill/waybill/internal/dbtest"
)

func TestBacklogAlarm(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.cfg.RemindAfter = time.Hour
	orderID, jobID := dbtest.InsertOrder(t, b.pool, dbtest.Order{ExternalID: "SO-1"})

	// Younger than BacklogAlertAfter (default 5m): fine.
	b.clock.Advance(4 * time.Minute)
	b.check(t)
	require.Empty(t, b.slackJobs(t, NameBacklog))

	b.clock.Advance(3 * time.Minute)
	b.check(t)
	msgs := b.slackJobs(t, NameBacklog)
	require.Len(t, msgs, 1)
	require.Equal(t, "Backlog: work waiting longer than 5m", msgs[0].Title)
	require.Contains(t, msgs[0].Text, "1 order pending for more than 5m, the oldest for 7m")
	require.Contains(t, msgs[0].Text, "Queue dispatch: 1 job available for more than 5m")
	require.Equal(t, "SO-1", msgs[0].Fields["Oldest pending orders"])

	// Still backed up: no repeat on the next checks, nor after a restart.
	for range 3 {
		b.clock.Advance(time.Minute)
		b.check(t)
	}
	require.Len(t, b.slackJobs(t, NameBacklog), 1)

	// Past RemindAfter: one reminder.
	b.clock.Advance(time.Hour)
	b.check(t)
	b.check(t)
	msgs = b.slackJobs(t, NameBacklog)
	require.Len(t, msgs, 2)
	require.Contains(t, msgs[1].Title, "(since ")
	require.Contains(t, msgs[1].Text, "the oldest for 1h10m")

	// The order is dispatched and every job done (the alarm's own Slack jobs wait in the notify
	// queue too: nothing works them in this test): resolved, once.
	_, err := dbsqlc.New().OrderMarkDispatchedMany(context.Background(), b.pool, dbsqlc.OrderMarkDispatchedManyParams{
		Ids: []int64{orderID}, CarrierRefs: []string{"t1"}, TrackingUrls: []string{""}})
	require.NoError(t, err)
	finishJob(t, b.pool, jobID)
	_, err = b.pool.Exec(context.Background(), `UPDATE waybill.river_job SET state = 'completed', finalized_at = now() WHERE state = 'available'`)
	require.NoError(t, err)
	b.check(t)
	b.check(t)
	msgs = b.slackJobs(t, NameBacklog)
	require.Len(t, msgs, 3)
	require.Equal(t, "resolved", msgs[2].Severity)
	require.Equal(t, "Backlog cleared", msgs[2].Title)
	require.Equal(t, 2.0, b.alarmsSent(t, NameBacklog, "firing"))
	require.Equal(t, 1.0, b.alarmsSent(t, NameBacklog, "resolved"))
}

// A job waiting in any queue is a backlog, even with no order pending.
func TestBacklogAlarmOnJobsAlone(t *testing.T) {
	t.Parallel()
	b := setup(t)
	orderID, _ := dbtest.InsertOrder(t, b.pool, dbtest.Order{ExternalID: "SO-1"})
	_, err := dbsqlc.New().OrderMarkDispatchedMany(context.Background(), b.pool, dbsqlc.OrderMarkDispatchedManyParams{
		Ids: []int64{orderID}, CarrierRefs: []string{"t1"}, TrackingUrls: []string{""}})
	require.NoError(t, err)

	b.clock.Advance(6 * time.Minute)
	b.check(t)
	msgs := b.slackJobs(t, NameBacklog)
	require.Len(t, msgs, 1)
	require.NotContains(t, msgs[0].Text, "pending")
	require.Contains(t, msgs[0].Text, "Queue dispatch: 1 job available")
}
