package sandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func (b *testBundle) listPage(t *testing.T, query url.Values) (taskPage, map[string]json.RawMessage) {
	t.Helper()
	status, _, raw := b.do(t, http.MethodGet, "/api/v2/tasks/all?"+query.Encode(), apiKey, "")
	require.Equal(t, http.StatusOK, status, string(raw))
	var page taskPage
	require.NoError(t, json.Unmarshal(raw, &page))
	var fields map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(raw, &fields))
	return page, fields
}

// listAll pages through GET /tasks/all and returns every task id, in order, and the page sizes.
func (b *testBundle) listAll(t *testing.T, q url.Values) ([]string, []int) {
	t.Helper()
	query := url.Values{}
	for k, v := range q {
		query[k] = v
	}
	var ids []string
	var sizes []int
	for {
		page, fields := b.listPage(t, query)
		sizes = append(sizes, len(page.Tasks))
		for _, task := range page.Tasks {
			ids = append(ids, task.ID)
		}
		if page.LastID == "" {
			require.NotContains(t, fields, "lastId", "no lastId on the last page")
			return ids, sizes
		}
		require.Equal(t, page.Tasks[len(page.Tasks)-1].ID, page.LastID)
		query.Set("lastId", page.LastID)
	}
}

func TestListAllTasks(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{}, 0)
	start := time.Now().Add(-time.Second).UnixMilli()

	// 150 tasks, some of them in one batch: all count, in creation order.
	var created []string
	for i := range 100 {
		task, err := b.client.CreateTask(t.Context(), order(fmt.Sprintf("SO-%d", i)))
		require.NoError(t, err)
		created = append(created, task.ID)
	}
	r, _ := b.waitJob(t, b.submitBatch(t, batchOf(50, "SO-batch")))
	require.Equal(t, 50, r.TasksCreated)

	all := url.Values{"from": {strconv.FormatInt(start, 10)}, "state": {"0,1,2,3"}}
	ids, sizes := b.listAll(t, all)
	require.Equal(t, []int{64, 64, 22}, sizes)
	require.Len(t, ids, 150)
	require.Equal(t, created, ids[:100], "sorted by creation time")
	seen := map[string]bool{}
	for _, id := range ids {
		require.False(t, seen[id], "each task once")
		seen[id] = true
	}

	// State and time filters. Move three tasks on, as their lifecycle would.
	now := time.Now().UnixMilli()
	longAgo := start - time.Hour.Milliseconds()
	for i, id := range created[:3] {
		_, ok := b.sandbox.store.update(id, func(t *Task) {
			t.State = []int{StateAssigned, StateActive, StateCompleted}[i]
			if t.State == StateCompleted {
				t.CompletionDetails.Success = true
				t.CompletionDetails.Time = &longAgo // completed "an hour ago": out of the range
			}
			t.TimeLastModified = now
		})
		require.True(t, ok)
	}
	ids, _ = b.listAll(t, url.Values{"from": {strconv.FormatInt(start, 10)}, "state": {"1,2"}})
	require.Equal(t, created[:2], ids)
	ids, _ = b.listAll(t, url.Values{"from": {strconv.FormatInt(start, 10)}, "state": {"3"}})
	require.Empty(t, ids, "a completed task is in the range by its completion time")
	ids, _ = b.listAll(t, url.Values{"from": {strconv.FormatInt(longAgo-1, 10)}, "to": {strconv.FormatInt(longAgo+1, 10)}, "state": {"3"}})
	require.Equal(t, created[2:3], ids)
	page, _ := b.listPage(t, url.Values{"from": {strconv.FormatInt(now+60_000, 10)}})
	require.NotNil(t, page.Tasks)
	require.Empty(t, page.Tasks)

	// GET /tasks/{id} shows the true state.
	var got Task
	status, _, raw := b.do(t, http.MethodGet, "/api/v2/tasks/"+url.PathEscape(created[2]), apiKey, "")
	require.Equal(t, http.StatusOK, status)
	require.NoError(t, json.Unmarshal(raw, &got))
	require.Equal(t, StateCompleted, got.State)
	require.True(t, got.CompletionDetails.Success)
	require.Equal(t, now, got.TimeLastModified)

	// Paging holds when a task on the page boundary changes state between pages.
	first, _ := b.listPage(t, all)
	_, ok := b.sandbox.store.update(first.LastID, func(t *Task) { t.State = StateActive })
	require.True(t, ok)
	next := url.Values{"from": all["from"], "state": {"0"}, "lastId": {first.LastID}}
	page, _ = b.listPage(t, next)
	require.NotEmpty(t, page.Tasks)
	everything, _ := b.listAll(t, all)
	require.Equal(t, everything[64], page.Tasks[0].ID, "the next page starts right after lastId")

	for name, q := range map[string]string{
		"no from":     "state=0",
		"bad from":    "from=yesterday",
		"bad state":   "from=0&state=0,4",
		"bad lastId":  "from=0&lastId=nope",
		"state words": "from=0&state=unassigned",
	} {
		status, _, raw := b.do(t, http.MethodGet, "/tasks/all?"+q, apiKey, "")
		require.Equal(t, http.StatusBadRequest, status, name)
		require.Equal(t, "InvalidContent", decodeError(t, raw).Code, name)
	}
	require.Positive(t, b.stats(t).Requests.ListTasks)
}
