package onfleet

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/waybill/waybill/internal/carrier"
	"github.com/waybill/waybill/internal/truncate"
)

// MaxBatch is the most tasks POST /tasks/batch-async takes in one request.
const MaxBatch = 500

var _ carrier.BatchCarrier = (*Client)(nil)

// MaxBatch implements carrier.BatchCarrier.
func (c *Client) MaxBatch() int { return MaxBatch }

type batchRequest struct {
	Tasks []createTaskRequest `json:"tasks"`
}

// CreateBatch implements carrier.BatchCarrier: POST /tasks/batch-async. Onfleet answers at once
// with the job's id and creates the tasks afterwards.
func (c *Client) CreateBatch(ctx context.Context, batchID int64, reqs []carrier.Request) (string, error) {
	body := batchRequest{Tasks: make([]createTaskRequest, len(reqs))}
	for i, r := range reqs {
		r.BatchID = batchID
		body.Tasks[i] = taskBody(r)
	}
	var jobID string
	if err := c.do(ctx, http.MethodPost, "/tasks/batch-async", body, func(raw []byte) error {
		jobID = stringValue(gjson.GetBytes(raw, "jobId"))
		return nil
	}); err != nil {
		return "", err
	}
	if jobID == "" {
		// The job may have started; only a lookup can tell.
		return "", &carrier.Error{Carrier: Name, Class: carrier.Transient, StatusCode: http.StatusOK,
			Ambiguous: true, Message: "batch answer without a jobId"}
	}
	return jobID, nil
}

// finishedBatch are the job statuses Onfleet documents as final. Any other value, including
// ones it may add, means the job is still running.
var finishedBatch = map[string]bool{"succeeded": true, "completedWithErrors": true, "failed": true}

// BatchStatus implements carrier.BatchCarrier: GET /tasks/batch/{jobId}.
func (c *Client) BatchStatus(ctx context.Context, jobID string) (carrier.BatchResult, bool, error) {
	var (
		result carrier.BatchResult
		done   bool
	)
	err := c.do(ctx, http.MethodGet, "/tasks/batch/"+url.PathEscape(jobID), nil, func(raw []byte) error {
		// Not gjson.ValidBytes: validating a finished job's answer (500 whole tasks) cost as
		// much as reading it. A cut answer must never pass for a finished job with fewer tasks
		// (its orders would be sent again): it must be one whole object, under the read cap.
		trimmed := bytes.TrimSpace(raw)
		if len(raw) >= maxResponseBody || !bytes.HasPrefix(trimmed, []byte("{")) || !bytes.HasSuffix(trimmed, []byte("}")) {
			return errors.New("not one whole JSON object")
		}
		done = finishedBatch[gjson.GetBytes(raw, "status").String()]
		if done {
			result = ParseBatchResult(raw)
		}
		return nil
	})
	return result, done, err
}

// ParseBatchResult reads a finished job's outcome, from GET /tasks/batch/{jobId} or from the
// taskBatchCreateJobCompleted webhook (same fields). Results carry no index: each is matched to
// its order by the external id in its metadata, never by position; one without it is ignored
// (its order is settled by a lookup instead).
func ParseBatchResult(raw []byte) carrier.BatchResult {
	res := carrier.BatchResult{Created: map[string]carrier.CreatedTask{}, Refused: map[string]string{}}
	root := gjson.ParseBytes(raw)
	root.Get("newTasks").ForEach(func(_, t gjson.Result) bool {
		if ext := metaValue(t.Get("metadata"), MetaExternalID); ext != "" {
			res.Created[ext] = carrier.CreatedTask{Task: taskOf(t)}
		}
		return true
	})
	// Created, with a warning (e.g. a doubtful address). An entry is the task itself or
	// {"task": …, "warnings": …}; both are read.
	root.Get("newTasksWithWarnings").ForEach(func(_, w gjson.Result) bool {
		t := w
		if inner := w.Get("task"); inner.IsObject() {
			t = inner
		}
		if ext := metaValue(t.Get("metadata"), MetaExternalID); ext != "" {
			res.Created[ext] = carrier.CreatedTask{Task: taskOf(t), Warning: warningText(w)}
		}
		return true
	})
	root.Get("errors").ForEach(func(_, e gjson.Result) bool {
		ext := metaValue(e.Get("taskData.metadata"), MetaExternalID)
		if ext == "" {
			return true
		}
		if _, created := res.Created[ext]; !created {
			res.Refused[ext] = batchErrorMessage(e)
		}
		return true
	})
	return res
}

func taskOf(t gjson.Result) carrier.Task {
	return carrier.Task{ID: stringValue(t.Get("id")), TrackingURL: stringValue(t.Get("trackingURL"))}
}

// metaValue is the value of the named entry of a task's metadata array, as text.
func metaValue(meta gjson.Result, name string) string {
	var v string
	meta.ForEach(func(_, m gjson.Result) bool {
		if m.Get("name").String() == name {
			v = m.Get("value").String()
			return false
		}
		return true
	})
	return v
}

func warningText(w gjson.Result) string {
	for _, key := range []string{"warnings", "warning", "message"} {
		v := w.Get(key)
		switch {
		case v.IsArray():
			var parts []string
			v.ForEach(func(_, x gjson.Result) bool {
				if m := x.Get("message"); m.Exists() {
					parts = append(parts, m.String())
				} else {
					parts = append(parts, x.String())
				}
				return true
			})
			if len(parts) > 0 {
				return truncate.Runes(strings.Join(parts, "; "), 1000)
			}
		case v.Exists() && v.String() != "":
			return truncate.Runes(v.String(), 1000)
		}
	}
	return "created with a warning"
}

// batchErrorMessage is the carrier's words for one refused task, as answerMessage writes them
// for a single request: "message (error 1011): cause".
func batchErrorMessage(e gjson.Result) string {
	msg := e.Get("message").String()
	code := e.Get("errorCode").Int()
	if code == 0 {
		code = e.Get("error").Int()
	}
	if code != 0 {
		msg += " (error " + strconv.FormatInt(code, 10) + ")"
	}
	if cause := e.Get("cause"); cause.Exists() && cause.Type != gjson.Null && cause.String() != "" {
		msg += ": " + strings.TrimSpace(cause.String())
	}
	if strings.TrimSpace(msg) == "" {
		msg = "refused by the carrier"
	}
	return truncate.Runes(msg, 1000)
}

// FindBatch implements carrier.BatchCarrier: one POST /tasks/metadata for the batch id says
// which of its tasks exist. Two tasks for one order should never happen; if they do, the
// earliest wins, as in FindTask.
func (c *Client) FindBatch(ctx context.Context, batchID int64) (map[string]carrier.Task, error) {
	query := []metadataQuery{{Name: MetaBatchID, Type: "string", Value: strconv.FormatInt(batchID, 10)}}
	found := map[string]carrier.Task{}
	created := map[string]int64{}
	err := c.do(ctx, http.MethodPost, "/tasks/metadata", query, func(raw []byte) error {
		if !gjson.ValidBytes(raw) || !gjson.ParseBytes(raw).IsArray() {
			return errors.New("not a JSON array")
		}
		gjson.ParseBytes(raw).ForEach(func(_, t gjson.Result) bool {
			ext := metaValue(t.Get("metadata"), MetaExternalID)
			if ext == "" {
				return true
			}
			at := t.Get("timeCreated").Int()
			if prev, ok := created[ext]; !ok || at < prev {
				found[ext], created[ext] = taskOf(t), at
			}
			return true
		})
		return nil
	})
	return found, err
}
