package alarm

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/dbtest"
	"github.com/waybill/waybill/internal/notify"
)

// The wiring the service uses: the periodic check on a started River client (leader-elected),
// its Slack message worked by the real notifier and posted to a Slack stand-in.
func TestCheckWorkerEndToEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := dbtest.NewPool(t)
	_, job := dbtest.InsertOrder(t, pool, dbtest.Order{ExternalID: "SO-1"})
	killJob(t, pool, job, "onfleet: rejected (HTTP 400): address could not be geocoded")

	var (
		mu     sync.Mutex
		posted []string
	)
	slack := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		posted = append(posted, string(body))
		mu.Unlock()
	}))
	t.Cleanup(slack.Close)
	notifier, err := notify.New(pool, notify.Config{SlackWebhookURL: slack.URL})
	require.NoError(t, err)

	cfg := Config{CheckInterval: time.Hour}
	workers := river.NewWorkers()
	AddWorkers(workers, pool, cfg)
	notify.AddWorkers(workers, notifier)
	client, events := dbtest.StartRiver(t, pool, &river.Config{
		Queues:       map[string]river.QueueConfig{QueueAlarm: {MaxWorkers: 1}, notify.QueueNotify: {MaxWorkers: 1}},
		Workers:      workers,
		PeriodicJobs: PeriodicJobs(cfg),
	}, river.EventKindJobCompleted, river.EventKindJobFailed)

	// RunOnStart: the new leader checks at once; the check's Slack job follows.
	waitFor := func(kind string) {
		t.Helper()
		timeout := time.After(60 * time.Second)
		for {
			select {
			case ev := <-events:
				require.Equal(t, river.EventKindJobCompleted, ev.Kind, "job %s failed: %v", ev.Job.Kind, ev.Job.Errors)
				if ev.Job.Kind == kind {
					return
				}
			case <-timeout:
				// Say where the jobs are: a stall and a missing job look alike from here.
				var jobs string
				_ = pool.QueryRow(ctx, `SELECT coalesce(string_agg(kind || ':' || state || ':attempt ' || attempt || ':at ' || scheduled_at::text, ', '), 'none')
					FROM waybill.river_job WHERE kind <> 'dispatch_order'`).Scan(&jobs)
				t.Fatalf("no %s job completed; jobs: %s", kind, jobs)
			}
		}
	}
	waitFor(CheckArgs{}.Kind())
	waitFor(notify.SlackArgs{}.Kind())
	mu.Lock()
	require.Len(t, posted, 1)
	require.Contains(t, posted[0], "1 new dead letter")
	require.Contains(t, posted[0], "address could not be geocoded")
	mu.Unlock()

	// A second check (another period, or another instance's) finds the alarm already firing.
	_, err = client.Insert(ctx, CheckArgs{}, nil)
	require.NoError(t, err)
	waitFor(CheckArgs{}.Kind())
	mu.Lock()
	require.Len(t, posted, 1)
	mu.Unlock()
}

// Two checks at once (a former leader's still running, the new leader's starting): the second
// waits for the first and then finds the alarm already firing, so one message.
func TestConcurrentChecksSendOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	_, job := dbtest.InsertOrder(t, b.pool, dbtest.Order{ExternalID: "SO-1"})
	killJob(t, b.pool, job, "boom")

	first := NewChecker(b.pool, b.cfg)
	tx, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	require.NoError(t, first.q.AlarmLock(ctx, tx, NameDeadLetters))
	require.NoError(t, first.checkDeadLetters(ctx, &alarmTx{tx: tx, client: b.client, now: b.clock.Now()}))

	second := make(chan error, 1)
	go func() { second <- NewChecker(b.pool, b.cfg).Check(ctx, b.client) }()
	require.Eventually(t, func() bool {
		var waiting int
		err := b.pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`).Scan(&waiting)
		return err == nil && waiting == 1
	}, 10*time.Second, 10*time.Millisecond, "the second check waits for the first")
	require.NoError(t, tx.Commit(ctx))
	require.NoError(t, <-second)
	require.Len(t, b.slackJobs(t, NameDeadLetters), 1)
}

// A failing alarm does not stop the others, and the job fails so River retries it.
func TestCheckReportsEachFailure(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, job := dbtest.InsertOrder(t, b.pool, dbtest.Order{ExternalID: "SO-1"})
	killJob(t, b.pool, job, "boom")
	_, err := b.pool.Exec(context.Background(), `ALTER TABLE waybill.carrier_health RENAME TO carrier_health_gone`)
	require.NoError(t, err)

	err = NewChecker(b.pool, b.cfg).Check(context.Background(), b.client)
	require.ErrorContains(t, err, "alarm carrier_auth:")
	require.Len(t, b.slackJobs(t, NameDeadLetters), 1)
}

var _ river.Worker[CheckArgs] = (*CheckWorker)(nil)
