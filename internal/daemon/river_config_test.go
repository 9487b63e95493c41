package daemon

// Issue 10, item 1: no database login can pause, resume or cancel River's work. Waybill's own
// River configuration (riverConfig) on a real client, a second login with no grants at all, and
// the features the listener used to serve: leader election, River UI's cancel and pause, and
// insert wake-ups.

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/config"
	"github.com/waybill/waybill/internal/dbtest"
)

const testQueue = "hardening"

type blockArgs struct{}

func (blockArgs) Kind() string { return "hardening_block" }
func (blockArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: testQueue, MaxAttempts: 1}
}

// blockWorker runs until released or its context ends, and reports which.
type blockWorker struct {
	river.WorkerDefaults[blockArgs]
	started chan int64
	release chan struct{}
}

func (w *blockWorker) Work(ctx context.Context, job *river.Job[blockArgs]) error {
	w.started <- job.ID
	select {
	case <-w.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type quickArgs struct{}

func (quickArgs) Kind() string                 { return "hardening_quick" }
func (quickArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: testQueue} }

type quickWorker struct {
	river.WorkerDefaults[quickArgs]
	started chan time.Time
}

func (w *quickWorker) Work(context.Context, *river.Job[quickArgs]) error {
	w.started <- time.Now()
	return nil
}

func testConfig() *config.Config {
	return &config.Config{
		DispatchPoll:       50 * time.Millisecond,
		JobTimeout:         25 * time.Second,
		RescueAfter:        45 * time.Second,
		CompletedRetention: time.Hour,
	}
}

type riverBundle struct {
	pool   *pgxpool.Pool
	client *river.Client[pgx.Tx]
	other  *river.Client[pgx.Tx] // another instance's client, inserting and controlling only
	block  *blockWorker
	quick  *quickWorker
}

func setupRiver(t *testing.T) (*riverBundle, string) {
	t.Helper()
	pool, dbURL := dbtest.NewPool(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	b := &riverBundle{
		pool:  pool,
		block: &blockWorker{started: make(chan int64, 10), release: make(chan struct{})},
		quick: &quickWorker{started: make(chan time.Time, 10)},
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, b.block)
	river.AddWorker(workers, b.quick)
	rc := riverConfig(testConfig(), true, workers, map[string]river.QueueConfig{testQueue: {MaxWorkers: 5}}, nil, logger)
	require.True(t, rc.PollOnly)
	b.client, _ = dbtest.StartRiver(t, pool, rc)
	b.other = dbtest.NewRiver(t, pool, nil)
	return b, dbURL
}

func jobState(t *testing.T, c *river.Client[pgx.Tx], id int64) rivertype.JobState {
	t.Helper()
	j, err := c.JobGet(context.Background(), id)
	require.NoError(t, err)
	return j.State
}

func TestRiverIgnoresControlNotificationsFromAnyLogin(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, dbURL := setupRiver(t)
	// A fresh login with no grants: what PUBLIC's default CONNECT lets anyone with a password to
	// the server do.
	_, strangerURL := dbtest.NewLogin(t, dbURL)
	stranger := dbtest.Connect(t, strangerURL)

	// Leader election works without the listener.
	require.Eventually(t, func() bool {
		var leader string
		return b.pool.QueryRow(ctx, `SELECT leader_id FROM waybill.river_leader`).Scan(&leader) == nil && leader == b.client.ID()
	}, 15*time.Second, 100*time.Millisecond, "the client is elected leader")

	// A running job, then the stranger's messages: cancel it, pause every queue.
	running, err := b.other.Insert(ctx, blockArgs{}, nil)
	require.NoError(t, err)
	select {
	case <-b.block.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the job did not start")
	}
	for _, payload := range []string{
		`{"action":"cancel","job_id":` + strconv.FormatInt(running.Job.ID, 10) + `,"queue":"` + testQueue + `"}`,
		`{"action":"pause","queue":"*"}`,
		`{"action":"pause","queue":"` + testQueue + `"}`,
	} {
		_, err := stranger.Exec(ctx, `SELECT pg_notify('waybill.river_control', $1)`, payload)
		require.NoError(t, err, "Postgres has no permission on NOTIFY: any login can send")
	}
	time.Sleep(time.Second)
	require.Equal(t, rivertype.JobStateRunning, jobState(t, b.client, running.Job.ID), "the stranger's cancel was ignored")

	// New work is still picked up, promptly: the stranger's pause was ignored too.
	inserted := time.Now()
	_, err = b.other.Insert(ctx, quickArgs{}, nil)
	require.NoError(t, err)
	select {
	case started := <-b.quick.started:
		require.Less(t, started.Sub(inserted), 2*time.Second)
	case <-time.After(5 * time.Second):
		t.Fatal("a job inserted after the stranger's pause did not run: the queue is paused")
	}
	b.block.release <- struct{}{}
	require.Eventually(t, func() bool { return jobState(t, b.client, running.Job.ID) == rivertype.JobStateCompleted }, 10*time.Second, 20*time.Millisecond)

	// River UI's cancel (Client.JobCancel, here from another instance) still reaches the job
	// running on this one, by polling.
	running, err = b.other.Insert(ctx, blockArgs{}, nil)
	require.NoError(t, err)
	<-b.block.started
	_, err = b.other.JobCancel(ctx, running.Job.ID)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return jobState(t, b.client, running.Job.ID) == rivertype.JobStateCancelled }, 10*time.Second, 50*time.Millisecond,
		"an operator's cancel cancels the running job")

	// River UI's pause and resume still work, by polling.
	require.NoError(t, b.other.QueuePause(ctx, testQueue, nil))
	time.Sleep(3 * time.Second) // producers poll queue settings every 2 s
	_, err = b.other.Insert(ctx, quickArgs{}, nil)
	require.NoError(t, err)
	select {
	case <-b.quick.started:
		t.Fatal("a paused queue ran a job")
	case <-time.After(time.Second):
	}
	require.NoError(t, b.other.QueueResume(ctx, testQueue, nil))
	select {
	case <-b.quick.started:
	case <-time.After(10 * time.Second):
		t.Fatal("a resumed queue did not run its job")
	}
}

// insertToStart measures, at low load (one job at a time, a pause between), how long a job
// waits between its insert's commit and its worker starting.
func insertToStart(b *testing.B, pollOnly, viaSQL bool) {
	ctx := context.Background()
	pool, _ := dbtest.NewPool(b)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	quick := &quickWorker{started: make(chan time.Time, 1)}
	workers := river.NewWorkers()
	river.AddWorker(workers, quick)
	rc := riverConfig(testConfig(), true, workers, map[string]river.QueueConfig{testQueue: {MaxWorkers: 5}}, nil, logger)
	rc.PollOnly = pollOnly
	client, _ := dbtest.StartRiver(b, pool, rc)
	// Stopped before the next round of b.N starts a client of its own, not only when b ends.
	defer func() { _ = client.Stop(ctx) }()
	time.Sleep(500 * time.Millisecond) // producers up, listener (if any) listening

	var mu sync.Mutex
	latencies := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		// Low load: nothing else in the queue, and inserts at random moments, so that they do
		// not fall into step with the producer's polls.
		time.Sleep(100*time.Millisecond + rand.N(150*time.Millisecond))
		b.StartTimer()
		var err error
		if viaSQL { // as Waybill's SQL triggers insert (no NOTIFY)
			_, err = pool.Exec(ctx, `INSERT INTO waybill.river_job (args, kind, max_attempts, queue, state) VALUES ('{}', 'hardening_quick', 1, $1, 'available')`, testQueue)
		} else { // River's insert, which sends an insert NOTIFY
			_, err = client.Insert(ctx, quickArgs{}, nil)
		}
		inserted := time.Now()
		if err != nil {
			b.Fatal(err)
		}
		started := <-quick.started
		mu.Lock()
		latencies = append(latencies, max(0, started.Sub(inserted)))
		mu.Unlock()
	}
	b.StopTimer()
	reportLatencies(b, latencies)
}

func reportLatencies(b *testing.B, l []time.Duration) {
	if len(l) == 0 {
		return
	}
	sorted := slices.Sorted(slices.Values(l))
	var sum time.Duration
	for _, d := range sorted {
		sum += d
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(sum/time.Duration(len(sorted))), "mean-ms")
	b.ReportMetric(ms(sorted[len(sorted)/2]), "p50-ms")
	b.ReportMetric(ms(sorted[len(sorted)*9/10]), "p90-ms")
	b.ReportMetric(ms(sorted[len(sorted)-1]), "max-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkInsertToStart is the latency PollOnly costs at low load (BENCHMARKS.md):
//
//	go test -run '^$' -bench InsertToStart -benchtime 40x ./internal/daemon/
func BenchmarkInsertToStart(b *testing.B) {
	for _, mode := range []struct {
		name     string
		pollOnly bool
	}{{"listener", false}, {"poll_only", true}} {
		b.Run(mode.name+"/river_insert", func(b *testing.B) { insertToStart(b, mode.pollOnly, false) })
		b.Run(mode.name+"/sql_insert", func(b *testing.B) { insertToStart(b, mode.pollOnly, true) })
	}
}
