package alarm

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/dbtest"
)

func TestDeadLettersAlarm(t *testing.T) {
	t.Parallel()
	b := setup(t)

	b.check(t)
	require.Empty(t, b.slackJobs(t, NameDeadLetters), "no dead letters, no message")

	_, job1 := dbtest.InsertOrder(t, b.pool, dbtest.Order{ExternalID: "SO-1"})
	_, job2 := dbtest.InsertOrder(t, b.pool, dbtest.Order{ExternalID: "SO-2"})
	killJob(t, b.pool, job1, "onfleet: rejected (HTTP 400): address could not be geocoded")
	killJob(t, b.pool, job2, "onfleet: rejected (HTTP 400): bad phone")

	b.clock.Advance(time.Minute)
	b.check(t)
	msgs := b.slackJobs(t, NameDeadLetters)
	require.Len(t, msgs, 1, "a burst is one message")
	require.Equal(t, "2 new dead letters", msgs[0].Title)
	require.Equal(t, "alarm", msgs[0].Severity)
	require.Equal(t, "dispatch_order ×2", msgs[0].Fields["Kinds"])
	require.Equal(t, "SO-2, SO-1", msgs[0].Fields["Orders"])
	require.Equal(t, "2", msgs[0].Fields["Open dead letters"])
	require.Contains(t, msgs[0].Text, "bad phone")
	require.Contains(t, msgs[0].Text, "waybill dead list")
	require.Contains(t, msgs[0].Text, "/riverui/")
	require.Equal(t, 1.0, b.alarmsSent(t, NameDeadLetters, "firing"))

	// Still firing, nothing new: no repeat, even from a restarted checker (b.check builds a new
	// one each time).
	b.clock.Advance(time.Minute)
	b.check(t)
	require.Len(t, b.slackJobs(t, NameDeadLetters), 1)

	// One more within the episode is counted, not sent (the reminder waits for RemindAfter).
	_, job3 := dbtest.InsertOrder(t, b.pool, dbtest.Order{ExternalID: "SO-3"})
	killJob(t, b.pool, job3, "boom")
	b.clock.Advance(time.Minute)
	b.check(t)
	require.Len(t, b.slackJobs(t, NameDeadLetters), 1)
	row := b.alarm(t, NameDeadLetters, "")
	require.Equal(t, "firing", row.State)
	require.EqualValues(t, 3, row.Count)
	require.EqualValues(t, 2, row.NotifiedCount)

	// Quiet for DeadLetterQuietAfter: resolved, once.
	b.clock.Advance(15 * time.Minute)
	b.check(t)
	msgs = b.slackJobs(t, NameDeadLetters)
	require.Len(t, msgs, 2)
	require.Equal(t, "resolved", msgs[1].Severity)
	require.Equal(t, "Dead letters: none new for 15m", msgs[1].Title)
	require.Contains(t, msgs[1].Text, "3 dead letters arrived")
	require.Contains(t, msgs[1].Text, "3 still open")
	b.check(t)
	require.Len(t, b.slackJobs(t, NameDeadLetters), 2)
	require.Equal(t, 1.0, b.alarmsSent(t, NameDeadLetters, "resolved"))

	// The next dead letter starts a new episode that counts only itself.
	_, job4 := dbtest.InsertOrder(t, b.pool, dbtest.Order{ExternalID: "SO-4"})
	killJob(t, b.pool, job4, "boom")
	b.clock.Advance(time.Minute)
	b.check(t)
	msgs = b.slackJobs(t, NameDeadLetters)
	require.Len(t, msgs, 3)
	require.Equal(t, "1 new dead letter", msgs[2].Title)
	require.Equal(t, "SO-4", msgs[2].Fields["Orders"])
}

func TestDeadLettersReminder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.cfg.RemindAfter = time.Hour
	b.cfg.DeadLetterQuietAfter = 2 * time.Hour

	_, job1 := dbtest.InsertOrder(t, b.pool, dbtest.Order{ExternalID: "SO-1"})
	killJob(t, b.pool, job1, "boom")
	b.check(t)
	require.Len(t, b.slackJobs(t, NameDeadLetters), 1)

	// An hour on, still firing but nothing new: no reminder.
	b.clock.Advance(61 * time.Minute)
	b.check(t)
	require.Len(t, b.slackJobs(t, NameDeadLetters), 1)

	// New ones arrive: the reminder carries how many since the last message.
	for _, id := range []string{"SO-2", "SO-3"} {
		_, job := dbtest.InsertOrder(t, b.pool, dbtest.Order{ExternalID: id})
		killJob(t, b.pool, job, "boom")
	}
	b.clock.Advance(time.Minute)
	b.check(t)
	msgs := b.slackJobs(t, NameDeadLetters)
	require.Len(t, msgs, 2)
	require.Contains(t, msgs[1].Title, "Dead letters: 2 more (3 since ")
}

// Dead letters redriven before the check saw them are not announced; the cursor moves past them.
func TestDeadLettersRedrivenBeforeCheck(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	_, job := dbtest.InsertOrder(t, b.pool, dbtest.Order{ExternalID: "SO-1"})
	killJob(t, b.pool, job, "boom")
	_, err := b.pool.Exec(ctx, `SELECT * FROM waybill.redrive(ARRAY[$1::bigint], 'test')`, job)
	require.NoError(t, err)

	b.check(t)
	require.Empty(t, b.slackJobs(t, NameDeadLetters))
	require.JSONEq(t, `{"last_dead_job_id": 1}`, string(b.alarm(t, NameDeadLetters, "").Details))
}
