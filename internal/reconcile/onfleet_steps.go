package reconcile

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/waybill/waybill/internal/carrier/onfleet"
	"github.com/waybill/waybill/internal/orders"
	"github.com/waybill/waybill/internal/webhook"
)

// Onfleet task states (GET /tasks/{id}: state).
const (
	onfleetUnassigned = 0
	onfleetAssigned   = 1
	onfleetActive     = 2
	onfleetCompleted  = 3
)

// Onfleet trigger ids of the changes reconciliation can read off a task.
const (
	triggerStarted    = 0
	triggerCompleted  = 3
	triggerFailed     = 4
	triggerAssigned   = 9
	triggerUnassigned = 10
)

// onfleetTask is the part of Onfleet's task object reconciliation reads.
type onfleetTask struct {
	ID                string  `json:"id"`
	State             *int    `json:"state"`
	Worker            *string `json:"worker"`
	TimeCreated       int64   `json:"timeCreated"`
	TimeLastModified  int64   `json:"timeLastModified"`
	CompletionDetails *struct {
		Success *bool  `json:"success"`
		Time    *int64 `json:"time"`
		Events  []struct {
			Name string `json:"name"`
			Time int64  `json:"time"`
		} `json:"events"`
	} `json:"completionDetails"`
}

// polledEvent is one change read off a task, as the synthetic Onfleet webhook the translate job
// reads (so the same Source and Vocabulary apply), with its event key.
type polledEvent struct {
	key     string
	trigger int
	body    []byte
}

// onfleetSteps returns the changes that take an order at status cur to where the Onfleet task
// raw is now, oldest first, and the task's state for the record. A task further along than
// the order yields every step the order missed, as webhooks would have told them: an order at
// dispatched whose task is completed gets taskAssigned, taskStarted and taskCompleted (or
// taskFailed). Times are the task's own where it has them (completionDetails.time, the "start"
// completion event, timeLastModified for the current state); an assignment seen only once the
// task had started is dated at the start, with an inferred key (webhook.InferredKeyPrefix).
func onfleetSteps(raw json.RawMessage, cur orders.Status) ([]polledEvent, string, error) {
	var t onfleetTask
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, "", fmt.Errorf("read onfleet task: %w", err)
	}
	if t.ID == "" || t.State == nil {
		return nil, "", fmt.Errorf("read onfleet task: no id or state")
	}
	state := strconv.Itoa(*t.State)
	var start, done int64
	success := true
	if cd := t.CompletionDetails; cd != nil {
		for _, e := range cd.Events {
			if e.Name == "start" && start == 0 {
				start = e.Time
			}
		}
		if cd.Time != nil {
			done = *cd.Time
		}
		if cd.Success != nil {
			success = *cd.Success
		}
	}
	modified := t.TimeLastModified
	if modified == 0 {
		modified = t.TimeCreated
	}

	type step struct {
		trigger  int
		at       int64
		inferred bool
	}
	var steps []step
	// assignedBefore dates an assignment the order missed when the task is past it.
	assignedBefore := func(at int64) {
		if cur == orders.StatusDispatched {
			steps = append(steps, step{triggerAssigned, at, true})
		}
	}
	switch *t.State {
	case onfleetUnassigned:
		if cur == orders.StatusAssigned || cur == orders.StatusInTransit {
			steps = append(steps, step{triggerUnassigned, modified, false})
		}
	case onfleetAssigned:
		if cur != orders.StatusAssigned {
			steps = append(steps, step{triggerAssigned, modified, false})
		}
	case onfleetActive:
		if start == 0 {
			start = modified
		}
		if cur != orders.StatusInTransit {
			assignedBefore(start)
			steps = append(steps, step{triggerStarted, start, false})
		}
	case onfleetCompleted:
		if done == 0 {
			done = modified
		}
		if start != 0 {
			assignedBefore(start)
			if cur != orders.StatusInTransit {
				steps = append(steps, step{triggerStarted, start, false})
			}
		} else {
			assignedBefore(done)
		}
		trigger := triggerCompleted
		if !success {
			// Onfleet: taskCompleted is a success, taskFailed a failure.
			trigger = triggerFailed
		}
		steps = append(steps, step{trigger, done, false})
	default:
		return nil, state, fmt.Errorf("onfleet task %s: unknown state %d", t.ID, *t.State)
	}

	out := make([]polledEvent, 0, len(steps))
	for _, s := range steps {
		body, err := onfleetBody(raw, t, s.trigger, s.at, *t.State)
		if err != nil {
			return nil, state, err
		}
		prefix := webhook.PolledKeyPrefix
		if s.inferred {
			prefix = webhook.InferredKeyPrefix
		}
		out = append(out, polledEvent{
			key:     prefix + t.ID + ":" + strconv.Itoa(s.trigger) + ":" + strconv.FormatInt(s.at, 10),
			trigger: s.trigger,
			body:    body,
		})
	}
	return out, state, nil
}

// onfleetBody is the webhook Onfleet would have sent for trigger at time at (ms): its payload
// with the task as it is now. For a step before the task's current one (an assignment or start
// read off a completed task), the task's completion is left out, so the step's history does not
// carry the completion's outcome.
func onfleetBody(raw json.RawMessage, t onfleetTask, trigger int, at int64, state int) ([]byte, error) {
	task := raw
	if stepState(trigger) != state {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("read onfleet task: %w", err)
		}
		delete(m, "completionDetails")
		m["state"] = json.RawMessage(strconv.Itoa(stepState(trigger)))
		b, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		task = b
	}
	name := onfleet.Triggers[trigger]
	return json.Marshal(map[string]any{
		"taskId":        t.ID,
		"time":          at,
		"triggerId":     trigger,
		"triggerName":   name,
		"workerId":      t.Worker,
		"adminId":       nil,
		"actionContext": nil,
		"data":          map[string]json.RawMessage{"task": task},
	})
}

// stepState is the task state a trigger leaves the task in.
func stepState(trigger int) int {
	switch trigger {
	case triggerAssigned:
		return onfleetAssigned
	case triggerStarted:
		return onfleetActive
	case triggerCompleted, triggerFailed:
		return onfleetCompleted
	}
	return onfleetUnassigned
}
