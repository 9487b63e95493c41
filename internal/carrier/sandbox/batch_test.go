package sandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// batchTask is a create-task body for a batch, referenced by its waybill_external_id; extra is
// put in the task's notes (a marker, say).
func batchTask(ref, extra string) map[string]any {
	return map[string]any{
		"destination": map[string]any{"address": map[string]any{"unparsed": "2695 E Katella Ave, Anaheim, CA 92806, US"}},
		"recipients":  []any{map[string]any{"name": "Ada Lovelace", "phone": "+14155550100"}},
		"notes":       strings.TrimSpace("order " + ref + " " + extra),
		"metadata":    []any{map[string]any{"name": metaExternalID, "type": "string", "value": ref}},
	}
}

func batchBody(tasks ...map[string]any) string {
	return string(mustJSON(map[string]any{"tasks": tasks}))
}

func batchOf(n int, prefix string) string {
	tasks := make([]map[string]any, n)
	for i := range tasks {
		tasks[i] = batchTask(fmt.Sprintf("%s-%d", prefix, i), "")
	}
	return batchBody(tasks...)
}

// submitBatch posts a batch and returns its job id.
func (b *testBundle) submitBatch(t *testing.T, body string) string {
	t.Helper()
	status, _, raw := b.do(t, http.MethodPost, "/api/v2/tasks/batch-async", apiKey, body)
	require.Equal(t, http.StatusOK, status, string(raw))
	var answer map[string]string
	require.NoError(t, json.Unmarshal(raw, &answer))
	require.Len(t, answer, 2, string(raw))
	require.Equal(t, BatchPending, answer["status"])
	require.Len(t, answer["jobId"], 24)
	return answer["jobId"]
}

func (b *testBundle) jobReport(t *testing.T, jobID string) (BatchJobReport, map[string]json.RawMessage) {
	t.Helper()
	status, _, raw := b.do(t, http.MethodGet, "/api/v2/tasks/batch/"+jobID, apiKey, "")
	require.Equal(t, http.StatusOK, status, string(raw))
	var r BatchJobReport
	require.NoError(t, json.Unmarshal(raw, &r))
	var fields map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(raw, &fields))
	return r, fields
}

// waitJob polls the job until it has a final status.
func (b *testBundle) waitJob(t *testing.T, jobID string) (BatchJobReport, map[string]json.RawMessage) {
	t.Helper()
	var r BatchJobReport
	var fields map[string]json.RawMessage
	require.Eventually(t, func() bool {
		r, fields = b.jobReport(t, jobID)
		return r.Status == BatchSucceeded || r.Status == BatchCompletedWithErrors
	}, 10*time.Second, 10*time.Millisecond)
	return r, fields
}

func refsOf(tasks []*Task) []string {
	var out []string
	for _, t := range tasks {
		ext, _ := externalID(t)
		out = append(out, ext)
	}
	slices.Sort(out)
	return out
}

var reportFields = []string{"status", "submitted", "tasksReceived", "tasksCreated", "tasksErrored", "errors",
	"failedTasks", "newTasks", "newTasksWithWarnings"}

func keysOf(m map[string]json.RawMessage) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestBatchAsync(t *testing.T) {
	t.Parallel()
	rc, hookURL := newReceiver(t, false)
	opts := hookOptions(hookURL)
	opts.BatchDelay = 300 * time.Millisecond
	b := setup(t, opts, 0)

	sent := []map[string]any{
		batchTask("SO-B0", ""),
		batchTask("SO-B1", WarningMarker),
		batchTask("SO-B2", ""),
		batchTask("SO-B3", ""),
	}
	sent[2]["destination"] = map[string]any{"address": map[string]any{"unparsed": "1 Nowhere Rd, Atlantis, " + RejectMarker}}
	jobID := b.submitBatch(t, batchBody(sent...))

	pending, fields := b.jobReport(t, jobID)
	require.Equal(t, BatchPending, pending.Status)
	require.Equal(t, "Less than a minute ago.", pending.Submitted)
	require.Equal(t, 4, pending.TasksReceived)
	require.Zero(t, pending.TasksCreated)
	require.Subset(t, keysOf(fields), []string{"status", "submitted", "tasksReceived"})

	r, fields := b.waitJob(t, jobID)
	want := slices.Clone(reportFields)
	slices.Sort(want)
	require.Equal(t, want, keysOf(fields), "Onfleet's fields, no more, no less")
	require.Equal(t, BatchCompletedWithErrors, r.Status)
	require.Equal(t, 4, r.TasksReceived)
	require.Equal(t, 3, r.TasksCreated)
	require.Equal(t, 1, r.TasksErrored)

	require.Len(t, r.Errors, 1)
	e := r.Errors[0]
	require.Equal(t, 400, e.StatusCode)
	require.Equal(t, 1011, e.ErrorCode)
	require.Equal(t, "The address could not be geocoded", e.Message)
	require.Contains(t, e.Cause, RejectMarker)
	require.JSONEq(t, string(mustJSON(sent[2])), string(e.TaskData), "taskData is the task as sent, metadata included")
	require.Len(t, r.FailedTasks, 1)
	require.JSONEq(t, string(mustJSON(sent[2])), string(r.FailedTasks[0]))

	require.Equal(t, []string{"SO-B0", "SO-B3"}, refsOf(r.NewTasks))
	require.Equal(t, []string{"SO-B1"}, refsOf(r.NewTasksWithWarnings))
	require.NotEmpty(t, r.NewTasksWithWarnings[0].Destination.Warnings)
	for _, task := range append(slices.Clone(r.NewTasks), r.NewTasksWithWarnings...) {
		require.Len(t, task.ID, 24)
		require.True(t, strings.HasPrefix(task.TrackingURL, b.url+"/track/"), task.TrackingURL)
		require.Equal(t, StateUnassigned, task.State, "as created")
		found, ok := b.sandbox.store.get(task.ID)
		require.True(t, ok)
		require.Equal(t, task.ShortID, found.ShortID)
	}

	// The job's completion webhook, and each created task's lifecycle without taskCreated.
	require.Eventually(t, func() bool { return len(rc.rawEvents("")) == 1 }, 10*time.Second, 10*time.Millisecond)
	var hook map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(rc.rawEvents("")[0], &hook))
	require.JSONEq(t, `null`, string(hook["taskId"]))
	require.JSONEq(t, `19`, string(hook["triggerId"]))
	require.JSONEq(t, `"taskBatchCreateJobCompleted"`, string(hook["triggerName"]))
	require.JSONEq(t, `"`+jobID+`"`, string(hook["jobId"]))
	require.Contains(t, hook, "time")
	for _, f := range reportFields {
		require.Contains(t, hook, f)
		if f != "submitted" {
			require.JSONEq(t, string(fields[f]), string(hook[f]), f)
		}
	}
	ids := []string{}
	for _, task := range append(slices.Clone(r.NewTasks), r.NewTasksWithWarnings...) {
		ids = append(ids, task.ID)
	}
	waitFor(t, b, rc, ids, 3)
	for _, id := range ids {
		require.Equal(t, []int{TriggerTaskAssigned, TriggerTaskStarted, TriggerTaskCompleted}, rc.triggers(id))
	}

	st := b.stats(t)
	require.EqualValues(t, 3, st.TasksCreated)
	require.EqualValues(t, 3, st.ExternalIDs)
	require.Equal(t, BatchStats{Jobs: 1, JobsFinished: 1, StatusQueries: st.Batch.StatusQueries, TasksReceived: 4,
		TasksCreated: 3, TasksWithWarnings: 1, TasksRefused: 1}, st.Batch)
	require.EqualValues(t, 1, st.Webhooks.BatchCompleted)
	require.EqualValues(t, 1, st.RequestsByRoute["POST /tasks/batch-async"])
	require.EqualValues(t, st.Batch.StatusQueries, st.RequestsByRoute["GET /tasks/batch/{jobId}"])
	require.Zero(t, st.Requests.Created, "POST /tasks was not used")
}

func TestBatchRefusesBadRequests(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{}, 0)
	for name, body := range map[string]string{
		"501 tasks": batchOf(501, "SO"),
		"no tasks":  `{"tasks":[]}`,
		"not tasks": `{"task":[{}]}`,
		"malformed": `{"tasks":[`,
	} {
		status, _, raw := b.do(t, http.MethodPost, "/tasks/batch-async", apiKey, body)
		require.Equal(t, http.StatusBadRequest, status, name)
		e := decodeError(t, raw)
		require.Equal(t, "InvalidContent", e.Code, name)
		require.Equal(t, 1000, e.Message.Error, name)
	}
	// 500 is fine.
	b.submitBatch(t, batchOf(500, "SO"))

	status, _, raw := b.do(t, http.MethodGet, "/tasks/batch/AAAAAAAAAAAAAAAAAAAAAAAA", apiKey, "")
	require.Equal(t, http.StatusNotFound, status)
	require.Equal(t, "ResourceNotFound", decodeError(t, raw).Code)

	// A task that is not a valid task is refused within the job, not the request.
	jobID := b.submitBatch(t, `{"tasks":[{"destination":{"address":{"street":"Main St"}}}, 7]}`)
	r, _ := b.waitJob(t, jobID)
	require.Equal(t, BatchCompletedWithErrors, r.Status)
	require.Equal(t, 2, r.TasksErrored)
	require.Equal(t, []int{1000, 1000}, []int{r.Errors[0].ErrorCode, r.Errors[1].ErrorCode})
	require.JSONEq(t, `7`, string(r.Errors[1].TaskData))
	require.Empty(t, r.NewTasks)
	require.NotNil(t, r.NewTasks, "empty lists are [], not null")
}

func TestBatchFaults(t *testing.T) {
	t.Parallel()

	t.Run("reject rate refuses every task with 1011", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Options{BatchRejectRate: 1, BatchDelay: time.Millisecond}, 0)
		r, _ := b.waitJob(t, b.submitBatch(t, batchOf(5, "SO")))
		require.Equal(t, BatchCompletedWithErrors, r.Status)
		require.Equal(t, 5, r.TasksErrored)
		require.Zero(t, r.TasksCreated)
		for _, e := range r.Errors {
			require.Equal(t, 1011, e.ErrorCode)
		}
		require.Zero(t, b.stats(t).TasksCreated)
	})

	t.Run("warning rate creates every task with warnings", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Options{BatchWarningRate: 1, BatchDelay: time.Millisecond}, 0)
		r, _ := b.waitJob(t, b.submitBatch(t, batchOf(5, "SO")))
		require.Equal(t, BatchSucceeded, r.Status)
		require.Equal(t, 5, r.TasksCreated)
		require.Empty(t, r.NewTasks)
		require.Len(t, r.NewTasksWithWarnings, 5)
		require.EqualValues(t, 5, b.stats(t).Batch.TasksWithWarnings)
	})

	t.Run("a stuck job creates its tasks and never finishes", func(t *testing.T) {
		t.Parallel()
		rc, hookURL := newReceiver(t, false)
		opts := hookOptions(hookURL)
		opts.BatchStuckRate, opts.BatchDelay = 1, time.Millisecond
		b := setup(t, opts, 0)
		jobID := b.submitBatch(t, batchOf(3, "SO-stuck"))
		require.Eventually(t, func() bool { return b.stats(t).Batch.JobsStuck == 1 }, 10*time.Second, 5*time.Millisecond)

		task, ok, err := b.client.FindTask(t.Context(), "SO-stuck-1")
		require.NoError(t, err)
		require.True(t, ok, "the tasks exist: look them up by metadata")
		require.Len(t, task.ID, 24)
		time.Sleep(100 * time.Millisecond)
		r, _ := b.jobReport(t, jobID)
		require.Equal(t, BatchProcessing, r.Status)
		require.Zero(t, r.TasksCreated)
		require.Empty(t, rc.rawEvents(""), "no taskBatchCreateJobCompleted")
		st := b.stats(t)
		require.EqualValues(t, 3, st.TasksCreated)
		require.Zero(t, st.Batch.JobsFinished)
	})

	t.Run("a late answer: the client gives up, the job exists and finishes", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Options{BatchLateRate: 1, LateDelay: 10 * time.Second, BatchDelay: time.Millisecond}, 0)
		req, err := http.NewRequest(http.MethodPost, b.url+"/tasks/batch-async", strings.NewReader(batchOf(2, "SO-late")))
		require.NoError(t, err)
		req.SetBasicAuth(apiKey, "")
		_, err = (&http.Client{Timeout: 200 * time.Millisecond}).Do(req)
		require.Error(t, err, "the answer comes after the client's timeout")

		require.Eventually(t, func() bool { return b.stats(t).Batch.JobsFinished == 1 }, 10*time.Second, 5*time.Millisecond)
		_, ok, err := b.client.FindTask(t.Context(), "SO-late-0")
		require.NoError(t, err)
		require.True(t, ok)
		st := b.stats(t)
		require.EqualValues(t, 1, st.Batch.JobsLate)
		require.EqualValues(t, 2, st.TasksCreated)
	})

	t.Run("5xx after the job was created", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Options{BatchErrorRate: 1, BatchDelay: time.Millisecond}, 0)
		status, _, raw := b.do(t, http.MethodPost, "/tasks/batch-async", apiKey, batchOf(2, "SO-5xx"))
		require.Equal(t, http.StatusServiceUnavailable, status)
		e := decodeError(t, raw)
		require.Equal(t, 2500, e.Message.Error)

		require.Eventually(t, func() bool { return b.stats(t).Batch.JobsFinished == 1 }, 10*time.Second, 5*time.Millisecond)
		_, ok, err := b.client.FindTask(t.Context(), "SO-5xx-1")
		require.NoError(t, err)
		require.True(t, ok)
		require.EqualValues(t, 1, b.stats(t).Batch.JobsFailedAnswer)
	})

	t.Run("batch faults change at runtime", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Options{}, 0)
		b.setFaults(t, `{"batch-delay":"0s","batch-reject-rate":1}`)
		r, _ := b.waitJob(t, b.submitBatch(t, batchOf(2, "SO")))
		require.Equal(t, 2, r.TasksErrored)
		b.setFaults(t, `{"batch-reject-rate":0}`)
		r, _ = b.waitJob(t, b.submitBatch(t, batchOf(2, "SO")))
		require.Equal(t, BatchSucceeded, r.Status)
	})
}

// TestRejectMarkerOnSingleCreate: the marker refuses a task sent alone too.
func TestRejectMarkerOnSingleCreate(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{}, 0)
	status, _, raw := b.do(t, http.MethodPost, "/tasks", apiKey, string(mustJSON(batchTask("SO-r", RejectMarker))))
	require.Equal(t, http.StatusBadRequest, status)
	e := decodeError(t, raw)
	require.Equal(t, 1011, e.Message.Error)
	require.Contains(t, e.Message.Cause, RejectMarker)
}
