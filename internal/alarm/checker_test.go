package alarm

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/dbsqlc"
	"github.com/waybill/waybill/internal/dbtest"
	"github.com/waybill/waybill/internal/metrics"
	"github.com/waybill/waybill/internal/notify"
)

// testClock is the checker's clock, moved by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// NowOrNil makes it River's clock too (river.TestConfig.Time), so the alarms' own notify jobs
// are inserted at the checker's time, not in its past.
func (c *testClock) NowOrNil() *time.Time {
	t := c.Now()
	return &t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type testBundle struct {
	pool   *pgxpool.Pool
	client *river.Client[pgx.Tx] // insert-only: the notify jobs stay for the test to read
	clock  *testClock
	reg    *prometheus.Registry
	cfg    Config
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	pool, _ := dbtest.NewPool(t)
	clock := &testClock{t: time.Now()}
	client := dbtest.NewRiver(t, pool, &river.Config{Test: river.TestConfig{Time: clock}})
	reg := prometheus.NewRegistry()
	return &testBundle{
		pool: pool, client: client, clock: clock, reg: reg,
		cfg: Config{
			Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
			Metrics: metrics.New(reg, pool, slog.New(slog.DiscardHandler)),
			Now:     clock.Now,
		},
	}
}

// check runs one alarm check with a fresh Checker, as a new leader or a restarted process would.
func (b *testBundle) check(t *testing.T) {
	t.Helper()
	require.NoError(t, NewChecker(b.pool, b.cfg).Check(context.Background(), b.client))
}

// slackJobs returns the Slack messages alarm enqueued, oldest first.
func (b *testBundle) slackJobs(t *testing.T, alarm string) []notify.SlackArgs {
	t.Helper()
	return jobArgs[notify.SlackArgs](t, b.client, alarm)
}

func (b *testBundle) emailJobs(t *testing.T) []notify.EmailArgs {
	t.Helper()
	return jobArgs[notify.EmailArgs](t, b.client, NameSilence)
}

func jobArgs[T river.JobArgs](t *testing.T, client *river.Client[pgx.Tx], alarm string) []T {
	t.Helper()
	var zero T
	res, err := client.JobList(context.Background(), river.NewJobListParams().Kinds(zero.Kind()).First(1000))
	require.NoError(t, err)
	var out []T
	for _, j := range res.Jobs {
		require.Equal(t, notify.QueueNotify, j.Queue)
		require.Equal(t, "alarm", j.Tags[0])
		if j.Tags[1] != alarm {
			continue
		}
		var a T
		require.NoError(t, json.Unmarshal(j.EncodedArgs, &a))
		out = append(out, a)
	}
	return out
}

func (b *testBundle) alarm(t *testing.T, name, key string) dbsqlc.WaybillAlarm {
	t.Helper()
	row, err := dbsqlc.New().AlarmGet(context.Background(), b.pool, dbsqlc.AlarmGetParams{Name: name, Key: key})
	require.NoError(t, err)
	return row
}

// alarmsSent reads waybill_alarms_sent_total{alarm, state}.
func (b *testBundle) alarmsSent(t *testing.T, alarm, state string) float64 {
	t.Helper()
	families, err := b.reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != "waybill_alarms_sent_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["alarm"] == alarm && labels["state"] == state {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// finishJob completes a job as if a worker had, taking it out of any backlog.
func finishJob(t *testing.T, pool *pgxpool.Pool, jobID int64) {
	t.Helper()
	_, err := pool.Exec(context.Background(),
		`UPDATE waybill.river_job SET state = 'completed', attempt = 1, finalized_at = now() WHERE id = $1`, jobID)
	require.NoError(t, err)
}

// killJob discards a job as River does when its attempts run out; the dead-letter trigger
// records it.
func killJob(t *testing.T, pool *pgxpool.Pool, jobID int64, reason string) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `
		UPDATE waybill.river_job
		SET state = 'discarded', attempt = max_attempts, finalized_at = now(),
		    errors = ARRAY[jsonb_build_object('at', now(), 'attempt', max_attempts, 'error', $2::text)]
		WHERE id = $1`, jobID, reason)
	require.NoError(t, err)
}

func TestAgo(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		42 * time.Second:                   "42s",
		5 * time.Minute:                    "5m",
		7*time.Minute + 20*time.Second:     "7m",
		time.Hour:                          "1h",
		24 * time.Hour:                     "24h",
		time.Hour + 12*time.Minute:         "1h10m",
		26*time.Hour + 3*time.Minute + 1e9: "26h",
	} {
		require.Equal(t, want, ago(d), d.String())
	}
}
