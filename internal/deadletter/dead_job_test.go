package deadletter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"
	"riverqueue.com/riverui"

	"github.com/waybill/waybill/internal/dbsqlc"
	"github.com/waybill/waybill/internal/dbtest"
)

// Worker behaviours, switched by tests between runs of the same job.
const (
	modeFail   int32 = iota // an ordinary error: retried, discarded after the last attempt
	modeCancel              // river.JobCancel: a permanent failure
	modeOK
)

// flakyArgs look like Waybill's jobs: order_id, external_id and carrier in args.
type flakyArgs struct {
	OrderID    int64  `json:"order_id,omitempty"`
	ExternalID string `json:"external_id"`
	Carrier    string `json:"carrier,omitempty"`
}

func (flakyArgs) Kind() string { return "test_flaky" }

func (flakyArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{MaxAttempts: 1} }

type flakyWorker struct {
	river.WorkerDefaults[flakyArgs]
	mode *atomic.Int32
}

func (w *flakyWorker) Work(ctx context.Context, job *river.Job[flakyArgs]) error {
	switch w.mode.Load() {
	case modeFail:
		return fmt.Errorf("carrier %s: 503 service unavailable\n(attempt %d)", job.Args.Carrier, job.Attempt)
	case modeCancel:
		return river.JobCancel(errors.New("carrier refused the order: invalid phone"))
	}
	return nil
}

// dispatchArgs stand in for internal/dispatch's job, which the outbox trigger enqueues; the
// worker does what dispatch does with a carrier that refuses, then accepts, the order.
type dispatchArgs struct {
	OrderID    int64  `json:"order_id"`
	ExternalID string `json:"external_id"`
	Carrier    string `json:"carrier"`
}

func (dispatchArgs) Kind() string { return "dispatch_order" }

type dispatchWorker struct {
	river.WorkerDefaults[dispatchArgs]
	mode *atomic.Int32
	pool *pgxpool.Pool
}

func (w *dispatchWorker) Work(ctx context.Context, job *river.Job[dispatchArgs]) error {
	q := dbsqlc.New()
	switch w.mode.Load() {
	case modeCancel:
		reason := "invalid address"
		if _, err := q.OrderMarkRejected(ctx, w.pool, dbsqlc.OrderMarkRejectedParams{ID: job.Args.OrderID, Reason: &reason}); err != nil {
			return err
		}
		return river.JobCancel(errors.New("carrier onfleet: 400 " + reason))
	case modeFail:
		return errors.New("carrier onfleet: timeout")
	}
	_, err := q.OrderMarkDispatchedMany(ctx, w.pool, dbsqlc.OrderMarkDispatchedManyParams{
		Ids: []int64{job.Args.OrderID}, CarrierRefs: []string{"task-1"}, TrackingUrls: []string{""},
	})
	return err
}

type testBundle struct {
	pool   *pgxpool.Pool
	url    string
	client *river.Client[pgx.Tx]
	events <-chan *river.Event
	mode   *atomic.Int32 // both workers'
}

// setup runs a real River client in schema waybill on a fresh database.
func setup(t *testing.T) *testBundle {
	t.Helper()
	pool, url := dbtest.NewPool(t)
	mode := &atomic.Int32{}
	workers := river.NewWorkers()
	river.AddWorker(workers, &flakyWorker{mode: mode})
	river.AddWorker(workers, &dispatchWorker{mode: mode, pool: pool})
	client, events := dbtest.StartRiver(t, pool, &river.Config{
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 2}, "dispatch": {MaxWorkers: 2}},
		Workers:           workers,
		FetchCooldown:     10 * time.Millisecond,
		FetchPollInterval: 50 * time.Millisecond,
		TestOnly:          true,
	}, river.EventKindJobCompleted, river.EventKindJobFailed, river.EventKindJobCancelled)
	return &testBundle{pool: pool, url: url, client: client, events: events, mode: mode}
}

// await returns the next final event of job id: completed, discarded or cancelled.
func (b *testBundle) await(t *testing.T, id int64) *river.Event {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case ev := <-b.events:
			if ev.Job.ID == id && ev.Job.FinalizedAt != nil {
				return ev
			}
		case <-timeout:
			t.Fatalf("job %d never finished", id)
		}
	}
}

// kill inserts a flaky job and waits until it is dead (or done, in modeOK).
func (b *testBundle) kill(t *testing.T, mode int32, args flakyArgs) int64 {
	t.Helper()
	b.mode.Store(mode)
	res, err := b.client.Insert(context.Background(), args, nil)
	require.NoError(t, err)
	b.await(t, res.Job.ID)
	return res.Job.ID
}

func (b *testBundle) deaths(t *testing.T, jobID int64) []dbsqlc.WaybillDeadJob {
	t.Helper()
	rows, err := dbsqlc.New().DeadJobListByJobID(context.Background(), b.pool, jobID)
	require.NoError(t, err)
	return rows
}

func (b *testBundle) job(t *testing.T, id int64) *rivertype.JobRow {
	t.Helper()
	j, err := b.client.JobGet(context.Background(), id)
	require.NoError(t, err)
	return j
}

func (b *testBundle) insertOrder(t *testing.T, externalID string) (orderID, jobID int64) {
	t.Helper()
	ctx := context.Background()
	o, err := dbsqlc.New().OrderInsert(ctx, b.pool, dbsqlc.OrderInsertParams{
		ExternalID: externalID, Carrier: "onfleet", Kind: "delivery",
		Payload: []byte(`{"recipient":{"name":"Ada","phone":"+4930123"},"address":{"line1":"Hauptstr. 1","city":"Berlin","country":"DE"}}`),
	})
	require.NoError(t, err)
	jobs, err := b.client.JobList(ctx, river.NewJobListParams().Kinds("dispatch_order"))
	require.NoError(t, err)
	for _, j := range jobs.Jobs {
		var a dispatchArgs
		require.NoError(t, json.Unmarshal(j.EncodedArgs, &a))
		if a.OrderID == o.ID {
			return o.ID, j.ID
		}
	}
	t.Fatalf("no dispatch job for order %d", o.ID)
	return 0, 0
}

func TestDiscardedJobIsRecorded(t *testing.T) {
	t.Parallel()
	b := setup(t)

	id := b.kill(t, modeFail, flakyArgs{OrderID: 42, ExternalID: "SO-42", Carrier: "onfleet"})
	require.Equal(t, rivertype.JobStateDiscarded, b.job(t, id).State)

	deaths := b.deaths(t, id)
	require.Len(t, deaths, 1)
	d := deaths[0]
	require.Equal(t, "test_flaky", d.Kind)
	require.Equal(t, river.QueueDefault, d.Queue)
	require.Equal(t, "discarded", d.State)
	require.EqualValues(t, 1, d.Attempts)
	require.Equal(t, int64(42), d.OrderID.Int64)
	require.Equal(t, "SO-42", *d.ExternalID)
	require.Equal(t, "onfleet", *d.Carrier)
	require.Equal(t, "carrier onfleet: 503 service unavailable (attempt 1)", d.Reason, "one line")
	require.JSONEq(t, `{"order_id":42,"external_id":"SO-42","carrier":"onfleet"}`, string(d.Args))
	var errs []rivertype.AttemptError
	require.NoError(t, json.Unmarshal(d.Errors, &errs))
	require.Len(t, errs, 1)
	require.Equal(t, 1, errs[0].Attempt)
	require.Contains(t, errs[0].Error, "503 service unavailable")
	require.Nil(t, d.RedrivenAt)

	// A job that succeeds leaves nothing behind.
	ok := b.kill(t, modeOK, flakyArgs{ExternalID: "SO-43"})
	require.Empty(t, b.deaths(t, ok))

	jobs, err := List(context.Background(), b.pool, ListParams{})
	require.NoError(t, err)
	require.Len(t, jobs, 1)
	require.Equal(t, id, jobs[0].JobID)
	require.Len(t, jobs[0].Errors, 1)
}

func TestCancelledJobIsRecorded(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	id := b.kill(t, modeCancel, flakyArgs{ExternalID: "SO-7", Carrier: "onfleet"})
	require.Equal(t, rivertype.JobStateCancelled, b.job(t, id).State)
	deaths := b.deaths(t, id)
	require.Len(t, deaths, 1)
	require.Equal(t, "cancelled", deaths[0].State)
	require.Equal(t, "cancelled: carrier refused the order: invalid phone", deaths[0].Reason)
	require.False(t, deaths[0].OrderID.Valid, "args without order_id")

	// River UI's cancel button (Client.JobCancel) on a job waiting for its turn kills it too.
	res, err := b.client.Insert(ctx, flakyArgs{ExternalID: "SO-8"}, &river.InsertOpts{ScheduledAt: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	_, err = b.client.JobCancel(ctx, res.Job.ID)
	require.NoError(t, err)
	deaths = b.deaths(t, res.Job.ID)
	require.Len(t, deaths, 1)
	require.Equal(t, "cancelled by an operator (River UI or Client.JobCancel)", deaths[0].Reason)
	require.EqualValues(t, 0, deaths[0].Attempts)

	var byKind struct {
		Open    int64
		Samples []string
	}
	require.NoError(t, b.pool.QueryRow(ctx,
		`SELECT open, sample_external_ids FROM waybill.dead_letters_by_kind WHERE kind = 'test_flaky'`).
		Scan(&byKind.Open, &byKind.Samples))
	require.Equal(t, int64(2), byKind.Open)
	require.Equal(t, []string{"SO-8", "SO-7"}, byKind.Samples, "newest first")
	var carriers int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM waybill.dead_letters_by_carrier`).Scan(&carriers))
	require.Equal(t, 2, carriers, "onfleet, and the job without a carrier")
}

// A dispatch job whose order the carrier refused is cancelled and its order rejected; redriving
// it through the SQL function puts both back, so the carrier's acceptance lands.
func TestRedriveSQLFunctionReopensRejectedOrder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	b.mode.Store(modeCancel)
	orderID, jobID := b.insertOrder(t, "SO-1001")
	b.await(t, jobID)
	order, err := dbsqlc.New().OrderGetByID(ctx, b.pool, orderID)
	require.NoError(t, err)
	require.Equal(t, "rejected", order.Status)
	deaths := b.deaths(t, jobID)
	require.Len(t, deaths, 1)
	require.Equal(t, "cancelled: carrier onfleet: 400 invalid address", deaths[0].Reason)
	require.Equal(t, orderID, deaths[0].OrderID.Int64)

	var openByCarrier int64
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT open FROM waybill.dead_letters_by_carrier WHERE carrier = 'onfleet'`).Scan(&openByCarrier))
	require.Equal(t, int64(1), openByCarrier)

	b.mode.Store(modeOK)
	// What an ops person types in psql.
	rows, err := dbsqlc.New().DeadJobRedrive(ctx, b.pool, dbsqlc.DeadJobRedriveParams{JobIds: []int64{jobID}, RedrivenBy: "alice"})
	require.NoError(t, err)
	require.Equal(t, []dbsqlc.DeadJobRedriveRow{{JobID: jobID, Kind: "dispatch_order", OrderID: orderID, ExternalID: "SO-1001", Outcome: "redriven"}}, rows)

	ev := b.await(t, jobID)
	require.Equal(t, rivertype.JobStateCompleted, ev.Job.State)
	require.Equal(t, 2, ev.Job.Attempt, "the attempt count is kept, as River's JobRetry keeps it")
	order, err = dbsqlc.New().OrderGetByID(ctx, b.pool, orderID)
	require.NoError(t, err)
	require.Equal(t, "dispatched", order.Status)
	require.Nil(t, order.StatusReason)

	deaths = b.deaths(t, jobID)
	require.Len(t, deaths, 1, "it did not die again")
	require.NotNil(t, deaths[0].RedrivenAt)
	require.Equal(t, "alice", *deaths[0].RedrivenBy)
	require.Equal(t, "sql", *deaths[0].RedrivenVia)
	var open int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM waybill.dead_letters_open`).Scan(&open))
	require.Zero(t, open)

	// Redriving a job that is no longer dead changes nothing.
	again, err := b.pool.Query(ctx, `SELECT outcome, detail FROM waybill.redrive(ARRAY[$1::bigint])`, jobID)
	require.NoError(t, err)
	outcomes, err := pgx.CollectRows(again, pgx.RowToStructByPos[struct{ Outcome, Detail string }])
	require.NoError(t, err)
	require.Equal(t, []struct{ Outcome, Detail string }{{"not_dead", "completed"}}, outcomes)
}

func TestRedriveCLIAndDyingAgainMakesANewRow(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	id := b.kill(t, modeFail, flakyArgs{OrderID: 5, ExternalID: "SO-5", Carrier: "onfleet"})

	var out, errOut bytes.Buffer
	require.NoError(t, RunCLI(ctx, []string{"redrive", strconv.FormatInt(id, 10), "--dry-run"}, b.pool, &out, &errOut))
	require.Contains(t, out.String(), "redriven")
	require.Contains(t, out.String(), "Dry run")
	require.Equal(t, rivertype.JobStateDiscarded, b.job(t, id).State, "a dry run changes nothing")
	require.Nil(t, b.deaths(t, id)[0].RedrivenAt)

	out.Reset()
	require.NoError(t, RunCLI(ctx, []string{"redrive", "--by", "bob", strconv.FormatInt(id, 10)}, b.pool, &out, &errOut))
	require.Contains(t, out.String(), "SO-5")
	ev := b.await(t, id)
	require.Equal(t, rivertype.JobStateDiscarded, ev.Job.State, "still failing: dead again")
	require.Equal(t, 2, ev.Job.Attempt)

	deaths := b.deaths(t, id)
	require.Len(t, deaths, 2, "a new row for the second death")
	require.Equal(t, "cli", *deaths[0].RedrivenVia)
	require.Equal(t, "bob", *deaths[0].RedrivenBy)
	require.Nil(t, deaths[1].RedrivenAt)
	require.EqualValues(t, 2, deaths[1].Attempts)
	var errs []rivertype.AttemptError
	require.NoError(t, json.Unmarshal(deaths[1].Errors, &errs))
	require.Len(t, errs, 2, "every attempt's error")
	require.Equal(t, "carrier onfleet: 503 service unavailable (attempt 2)", deaths[1].Reason)
}

// River UI's retry button posts to /api/jobs/retry, which calls Client.JobRetryTx.
func TestRiverUIRetryMarksRedriven(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	handler, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(b.client, nil),
		Logger:    slog.New(slog.DiscardHandler),
		Prefix:    "/riverui",
	})
	require.NoError(t, err)
	uiCtx, stopUI := context.WithCancel(ctx)
	t.Cleanup(stopUI)
	require.NoError(t, handler.Start(uiCtx))
	post := func(path string, ids ...int64) {
		t.Helper()
		body, err := json.Marshal(map[string][]string{"ids": toStrings(ids)})
		require.NoError(t, err)
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/riverui/api/jobs/"+path, bytes.NewReader(body)))
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	}

	discarded := b.kill(t, modeFail, flakyArgs{ExternalID: "SO-1"})
	cancelled := b.kill(t, modeCancel, flakyArgs{ExternalID: "SO-2"})
	b.mode.Store(modeOK)
	post("retry", discarded, cancelled)
	require.Equal(t, rivertype.JobStateCompleted, b.await(t, discarded).Job.State)
	require.Equal(t, rivertype.JobStateCompleted, b.await(t, cancelled).Job.State)
	for _, id := range []int64{discarded, cancelled} {
		deaths := b.deaths(t, id)
		require.Len(t, deaths, 1)
		require.NotNil(t, deaths[0].RedrivenAt)
		require.Equal(t, "river_ui", *deaths[0].RedrivenVia)
		require.NotEmpty(t, *deaths[0].RedrivenBy)
	}

	// The client's JobRetry, which any code may call, counts the same way.
	again := b.kill(t, modeFail, flakyArgs{ExternalID: "SO-3"})
	b.mode.Store(modeOK)
	_, err = b.client.JobRetry(ctx, again)
	require.NoError(t, err)
	require.Equal(t, rivertype.JobStateCompleted, b.await(t, again).Job.State)
	require.Equal(t, "river_ui", *b.deaths(t, again)[0].RedrivenVia)

	// And River UI's cancel button kills a waiting job.
	res, err := b.client.Insert(ctx, flakyArgs{ExternalID: "SO-4"}, &river.InsertOpts{ScheduledAt: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	post("cancel", res.Job.ID)
	deaths := b.deaths(t, res.Job.ID)
	require.Len(t, deaths, 1)
	require.Contains(t, deaths[0].Reason, "cancelled by an operator")
}

// River's cleaner deletes dead jobs after its retention period; the dead row still redrives.
func TestRedriveReinsertsJobRiverDeleted(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	id := b.kill(t, modeFail, flakyArgs{OrderID: 9, ExternalID: "SO-9", Carrier: "onfleet"})
	_, err := b.client.JobDelete(ctx, id)
	require.NoError(t, err)

	b.mode.Store(modeOK)
	results, err := Redrive(ctx, b.pool, []int64{id, id, 999999}, RedriveOpts{By: "carol"})
	require.NoError(t, err)
	require.Equal(t, []RedriveResult{
		{JobID: id, Kind: "test_flaky", OrderID: 9, ExternalID: "SO-9", Outcome: OutcomeReenqueued},
		{JobID: 999999, Outcome: OutcomeUnknown},
	}, results)

	ev := b.await(t, id)
	require.Equal(t, rivertype.JobStateCompleted, ev.Job.State)
	require.Equal(t, 2, ev.Job.Attempt, "the same job, its attempts kept")
	require.Len(t, ev.Job.Errors, 1, "its history kept")
	require.Equal(t, "cli", *b.deaths(t, id)[0].RedrivenVia)
}

func toStrings(ids []int64) []string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatInt(id, 10)
	}
	return s
}

func TestRunCLIList(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	failed := b.kill(t, modeFail, flakyArgs{OrderID: 1, ExternalID: "SO-LIST-1", Carrier: "onfleet"})
	cancelled := b.kill(t, modeCancel, flakyArgs{ExternalID: "SO-LIST-2"})

	var out, errOut bytes.Buffer
	require.NoError(t, RunCLI(ctx, []string{"list"}, b.pool, &out, &errOut))
	text := out.String()
	require.Contains(t, text, "JOB")
	require.Contains(t, text, "SO-LIST-1")
	require.Contains(t, text, "SO-LIST-2")
	require.Contains(t, text, "2 open dead letter(s)")
	require.Less(t, strings.Index(text, "SO-LIST-2"), strings.Index(text, "SO-LIST-1"), "newest first")

	out.Reset()
	require.NoError(t, RunCLI(ctx, []string{"list", "--json", "--since", "1h", "--kind", "test_flaky"}, b.pool, &out, &errOut))
	var jobs []DeadJob
	require.NoError(t, json.Unmarshal(out.Bytes(), &jobs))
	require.Len(t, jobs, 2)
	require.Equal(t, cancelled, jobs[0].JobID)
	require.Equal(t, failed, jobs[1].JobID)
	require.Equal(t, "onfleet", jobs[1].Carrier)
	require.Len(t, jobs[1].Errors, 1)

	out.Reset()
	require.NoError(t, RunCLI(ctx, []string{"list", "--json", "--since", "2999-01-01"}, b.pool, &out, &errOut))
	require.JSONEq(t, `[]`, out.String())

	out.Reset()
	require.NoError(t, RunCLI(ctx, []string{"list", "--kind", "dispatch_order"}, b.pool, &out, &errOut))
	require.Equal(t, "No open dead letters.\n", out.String())

	out.Reset()
	require.NoError(t, RunCLI(ctx, []string{"list", "--limit", "1"}, b.pool, &out, &errOut))
	require.Contains(t, out.String(), "Showing the newest 1")
	require.NotContains(t, out.String(), "SO-LIST-1")
}

func TestRunCLIRedriveAllAndUnknownIDs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	first := b.kill(t, modeFail, flakyArgs{ExternalID: "SO-A"})
	second := b.kill(t, modeCancel, flakyArgs{ExternalID: "SO-B"})
	b.mode.Store(modeOK)

	var out, errOut bytes.Buffer
	err := RunCLI(ctx, []string{"redrive", strconv.FormatInt(first, 10), "424242"}, b.pool, &out, &errOut)
	require.EqualError(t, err, "dead redrive: 1 of 2 job(s) not redriven")
	require.Contains(t, errOut.String(), "job 424242 not redriven: no such job and no open dead letter")
	require.Equal(t, rivertype.JobStateCompleted, b.await(t, first).Job.State, "the known id was redriven")

	out.Reset()
	require.NoError(t, RunCLI(ctx, []string{"redrive", "--all", "--kind", "no_such_kind"}, b.pool, &out, &errOut))
	require.Equal(t, "No open dead letters to redrive.\n", out.String())

	out.Reset()
	require.NoError(t, RunCLI(ctx, []string{"redrive", "--all", "--kind", "test_flaky"}, b.pool, &out, &errOut))
	require.Contains(t, out.String(), "SO-B")
	require.NotContains(t, out.String(), "SO-A", "already redriven")
	require.Equal(t, rivertype.JobStateCompleted, b.await(t, second).Job.State)

	ids, err := OpenJobIDs(ctx, b.pool, "")
	require.NoError(t, err)
	require.Empty(t, ids)
}

func TestRunCLIRejectsBadArguments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		err  string
	}{
		{nil, "dead: say list or redrive"},
		{[]string{"bury"}, `dead: unknown command "bury"`},
		{[]string{"redrive"}, "dead redrive: give job ids or --all"},
		{[]string{"redrive", "12", "abc"}, `dead redrive: job id "abc" is not a positive integer`},
		{[]string{"redrive", "-3"}, "flag provided but not defined: -3"},
		{[]string{"redrive", "0"}, `dead redrive: job id "0" is not a positive integer`},
		{[]string{"redrive", "--all", "12"}, "dead redrive: give job ids or --all, not both"},
		{[]string{"redrive", "12", "--all"}, "dead redrive: give job ids or --all, not both"},
		{[]string{"redrive", "12", "--kind", "x"}, "dead redrive: --kind only goes with --all"},
		{[]string{"redrive", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"list", "--since", "yesterday"}, `dead list: --since: "yesterday" is neither a duration (24h, 7d) nor a date (2006-01-02)`},
		{[]string{"list", "extra"}, `dead list: unexpected argument "extra"`},
		{[]string{"list", "--limit", "0"}, "dead list: --limit must be at least 1"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			var out, errOut bytes.Buffer
			// No database: arguments are checked before it is used.
			err := RunCLI(context.Background(), tt.args, nil, &out, &errOut)
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.err)
		})
	}
}

func TestParseSince(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 6, 10, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
	}{
		{"24h", now.Add(-24 * time.Hour)},
		{"90m", now.Add(-90 * time.Minute)},
		{"7d", now.AddDate(0, 0, -7)},
		{"0d", now},
		{"2025-06-01", time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)},
		{"2025-06-01T08:00:00+02:00", time.Date(2025, 6, 1, 6, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		got, err := parseSince(tt.in, now)
		require.NoError(t, err, tt.in)
		require.True(t, tt.want.Equal(got), "%s: got %s, want %s", tt.in, got, tt.want)
	}
	for _, bad := range []string{"", "-5h", "d", "7 days", "2025-13-01"} {
		_, err := parseSince(bad, now)
		require.Error(t, err, bad)
	}
}
