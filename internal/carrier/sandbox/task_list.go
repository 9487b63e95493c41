package sandbox

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// listPageSize is how many tasks GET /tasks/all answers at most, as Onfleet.
const listPageSize = 64

// taskPage is GET /tasks/all's answer; LastID is there while more tasks remain.
type taskPage struct {
	Tasks  []*Task `json:"tasks"`
	LastID string  `json:"lastId,omitempty"`
}

// listAllTasks is GET /tasks/all?from=<ms>&to=<ms>&lastId=<id>&state=0,1,2,3: the tasks in the
// time range, sorted by creation time, 64 a page. A completed task is in the range by its
// completion time, any other by its creation time. The next page starts after lastId's task,
// found by its creation time and id, so a task that changed state meanwhile does not matter.
func (s *Server) listAllTasks(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	from, err := msParam(q.Get("from"), "from", -1)
	if err != nil {
		s.writeError(w, invalid(err.Error()))
		return
	}
	to, err := msParam(q.Get("to"), "to", time.Now().UnixMilli())
	if err != nil {
		s.writeError(w, invalid(err.Error()))
		return
	}
	states, err := stateParam(q.Get("state"))
	if err != nil {
		s.writeError(w, invalid(err.Error()))
		return
	}

	var tasks []*Task
	for _, t := range s.store.all() {
		if !states[t.State] {
			continue
		}
		at := t.TimeCreated
		if t.State == StateCompleted && t.CompletionDetails.Time != nil {
			at = *t.CompletionDetails.Time
		}
		if at >= from && at <= to {
			tasks = append(tasks, t)
		}
	}
	byCreation := func(a, b *Task) int {
		return cmp.Or(cmp.Compare(a.TimeCreated, b.TimeCreated), cmp.Compare(a.seq, b.seq))
	}
	slices.SortFunc(tasks, byCreation)
	if lastID := q.Get("lastId"); lastID != "" {
		last, ok := s.store.get(lastID)
		if !ok {
			s.writeError(w, invalid(fmt.Sprintf("lastId %q is not a task", lastID)))
			return
		}
		start, _ := slices.BinarySearchFunc(tasks, last, byCreation)
		if start < len(tasks) && tasks[start].ID == last.ID {
			start++
		}
		tasks = tasks[start:]
	}
	page := taskPage{Tasks: tasks}
	if len(tasks) > listPageSize {
		page.Tasks = tasks[:listPageSize]
		page.LastID = page.Tasks[listPageSize-1].ID
	}
	if page.Tasks == nil {
		page.Tasks = []*Task{}
	}
	s.counts.listTasks.Add(1)
	writeJSON(w, http.StatusOK, page)
}

// msParam reads a time in unix milliseconds; required when def is negative.
func msParam(v, name string, def int64) (int64, error) {
	if v == "" {
		if def < 0 {
			return 0, fmt.Errorf("%s is required (unix milliseconds)", name)
		}
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s must be unix milliseconds, not %q", name, v)
	}
	return n, nil
}

// stateParam reads a comma-separated list of task states; empty means all of them.
func stateParam(v string) (map[int]bool, error) {
	states := map[int]bool{}
	if v == "" {
		for st := StateUnassigned; st <= StateCompleted; st++ {
			states[st] = true
		}
		return states, nil
	}
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < StateUnassigned || n > StateCompleted {
			return nil, fmt.Errorf("state must be task states 0-3 separated by commas, not %q", v)
		}
		states[n] = true
	}
	return states, nil
}
