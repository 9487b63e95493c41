package onfleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/waybill/waybill/internal/carrier"
)

// ListPageSize is the most tasks one page of GET /tasks/all holds.
const ListPageSize = 64

// ErrTaskNotFound: Onfleet has no such task (it answered 404 with its own error body: the task
// was deleted, or never existed).
var ErrTaskNotFound = errors.New("onfleet: task not found")

// GetTask reads one task as Onfleet has it now: GET /tasks/{id}. The answer is the task object,
// raw. Reconciliation calls it with carrier.WithPriority(ctx, ratelimit.Low).
func (c *Client) GetTask(ctx context.Context, id string) (json.RawMessage, error) {
	var task json.RawMessage
	err := c.do(ctx, http.MethodGet, "/tasks/"+url.PathEscape(id), nil, func(raw []byte) error {
		if !gjson.ValidBytes(raw) || !gjson.GetBytes(raw, "id").Exists() {
			return errors.New("not a task")
		}
		task = append(json.RawMessage(nil), raw...)
		return nil
	})
	var ce *carrier.Error
	if errors.As(err, &ce) && isResourceNotFound(ce) {
		return nil, fmt.Errorf("%w: %s", ErrTaskNotFound, id)
	}
	return task, err
}

// isResourceNotFound: a 404 in Onfleet's own words (error 1003 ResourceNotFound), not a wrong
// ONFLEET_BASE_URL.
func isResourceNotFound(e *carrier.Error) bool {
	return e.StatusCode == http.StatusNotFound && (strings.Contains(e.Message, "ResourceNotFound") || strings.Contains(e.Message, "error 1003"))
}

// TaskPage is one page of GET /tasks/all: raw task objects, and the id to continue after while
// more remain ("" on the last page).
type TaskPage struct {
	Tasks  []json.RawMessage
	LastID string
}

// ListTasks reads one page of the organisation's tasks: GET /tasks/all?from&to&lastId&state.
// Onfleet sorts them by creation time, 64 a page; a completed task is in [from, to] by its
// completion time, any other by its creation time. states nil means all four.
func (c *Client) ListTasks(ctx context.Context, from, to time.Time, lastID string, states []int) (TaskPage, error) {
	q := url.Values{}
	q.Set("from", strconv.FormatInt(from.UnixMilli(), 10))
	q.Set("to", strconv.FormatInt(to.UnixMilli(), 10))
	if lastID != "" {
		q.Set("lastId", lastID)
	}
	if len(states) > 0 {
		s := make([]string, len(states))
		for i, st := range states {
			s[i] = strconv.Itoa(st)
		}
		q.Set("state", strings.Join(s, ","))
	}
	var page TaskPage
	err := c.do(ctx, http.MethodGet, "/tasks/all?"+q.Encode(), nil, func(raw []byte) error {
		root := gjson.ParseBytes(raw)
		if !root.IsObject() || !root.Get("tasks").IsArray() {
			return errors.New("not a page of tasks")
		}
		root.Get("tasks").ForEach(func(_, t gjson.Result) bool {
			page.Tasks = append(page.Tasks, json.RawMessage(t.Raw))
			return true
		})
		page.LastID = stringValue(root.Get("lastId"))
		return nil
	})
	return page, err
}
