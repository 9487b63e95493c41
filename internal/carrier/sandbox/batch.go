package sandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// maxBatchTasks is Onfleet's limit of tasks in one POST /tasks/batch-async.
const maxBatchTasks = 500

// maxBatchBody caps a batch request: 500 tasks with long notes need more than maxBody.
const maxBatchBody = 16 << 20

// Batch job statuses. Onfleet documents only the two final ones; the in-progress values are the
// sandbox's, and clients treat any status but the final ones as still running.
const (
	BatchPending             = "pending"
	BatchProcessing          = "processing"
	BatchSucceeded           = "succeeded"
	BatchCompletedWithErrors = "completedWithErrors"
)

// Markers a test puts in a task's destination address (unparsed) or notes (the task's or the
// destination's) to decide its fate: RejectMarker refuses it (error 1011, on POST /tasks too),
// WarningMarker creates it with a warning when it comes in a batch.
const (
	RejectMarker  = "SANDBOX_REJECT"
	WarningMarker = "SANDBOX_WARN"
)

// BatchError is one refused task in a batch job's report.
type BatchError struct {
	StatusCode int             `json:"statusCode"`
	ErrorCode  int             `json:"errorCode"`
	Message    string          `json:"message"`
	Cause      string          `json:"cause"`
	TaskData   json.RawMessage `json:"taskData"` // the task as sent
}

// BatchJobReport is GET /tasks/batch/{jobId}'s answer, and the body of the
// taskBatchCreateJobCompleted webhook beside its jobId. Results carry no index: match them to
// what was sent by metadata.
type BatchJobReport struct {
	Status               string            `json:"status"`
	Submitted            string            `json:"submitted"` // a human phrase
	TasksReceived        int               `json:"tasksReceived"`
	TasksCreated         int               `json:"tasksCreated"`
	TasksErrored         int               `json:"tasksErrored"`
	Errors               []BatchError      `json:"errors"`
	FailedTasks          []json.RawMessage `json:"failedTasks"`          // the bodies of the refused tasks
	NewTasks             []*Task           `json:"newTasks"`             // created without warnings
	NewTasksWithWarnings []*Task           `json:"newTasksWithWarnings"` // created, with warnings
}

// BatchJobWebhook is the body of trigger 19, taskBatchCreateJobCompleted.
type BatchJobWebhook struct {
	TaskID        *string        `json:"taskId"` // always null
	Time          int64          `json:"time"`
	TriggerID     int            `json:"triggerId"`
	TriggerName   string         `json:"triggerName"`
	WorkerID      *string        `json:"workerId"`
	AdminID       *string        `json:"adminId"`
	ActionContext *ActionContext `json:"actionContext"`
	JobID         string         `json:"jobId"`
	BatchJobReport
}

// batchJob is one POST /tasks/batch-async: accepted at once, its tasks created after the
// batch delay by a goroutine of its own.
type batchJob struct {
	id      string
	created time.Time
	base    string // the address the client reached the sandbox at, for tracking URLs
	tasks   []json.RawMessage
	stuck   bool // never finishes

	mu     sync.Mutex
	report BatchJobReport // Status and, once finished, the results
}

func (j *batchJob) snapshot(now time.Time) BatchJobReport {
	j.mu.Lock()
	r := j.report
	j.mu.Unlock()
	r.Submitted = submittedPhrase(now.Sub(j.created))
	r.TasksReceived = len(j.tasks)
	return r
}

func (j *batchJob) setStatus(status string) {
	j.mu.Lock()
	j.report.Status = status
	j.mu.Unlock()
}

// emptyReport is a report with status and no results: lists are [], never null.
func emptyReport(status string) BatchJobReport {
	return BatchJobReport{Status: status, Errors: []BatchError{}, FailedTasks: []json.RawMessage{}, NewTasks: []*Task{}, NewTasksWithWarnings: []*Task{}}
}

// submittedPhrase says how long ago a job was submitted, as Onfleet does.
func submittedPhrase(ago time.Duration) string {
	switch m := int(ago / time.Minute); {
	case m < 1:
		return "Less than a minute ago."
	case m == 1:
		return "1 minute ago."
	default:
		return fmt.Sprintf("%d minutes ago.", m)
	}
}

// batchJobs holds every job by id.
type batchJobs struct {
	mu   sync.RWMutex
	jobs map[string]*batchJob
}

func (b *batchJobs) add(j *batchJob) {
	b.mu.Lock()
	b.jobs[j.id] = j
	b.mu.Unlock()
}

func (b *batchJobs) get(id string) (*batchJob, bool) {
	b.mu.RLock()
	j, ok := b.jobs[id]
	b.mu.RUnlock()
	return j, ok
}

// createBatch is POST /tasks/batch-async {"tasks":[…]}: 200 {"jobId","status":"pending"} at
// once, the tasks created after the batch delay.
func (s *Server) createBatch(w http.ResponseWriter, r *http.Request) {
	f := s.faults.Load()
	var body struct {
		Tasks []json.RawMessage `json:"tasks"`
	}
	if err := decodeBodyLimit(r, &body, maxBatchBody); err != nil {
		s.counts.rejected.Add(1)
		s.writeError(w, invalid(err.Error()))
		return
	}
	if len(body.Tasks) == 0 || len(body.Tasks) > maxBatchTasks {
		s.counts.rejected.Add(1)
		s.writeError(w, invalid(fmt.Sprintf("tasks must be an array of 1 to %d tasks, not %d", maxBatchTasks, len(body.Tasks))))
		return
	}
	j := &batchJob{
		id: s.dice.id(), created: time.Now(), base: baseURL(r), tasks: body.Tasks,
		stuck:  s.dice.hit(f.BatchStuckRate),
		report: emptyReport(BatchPending),
	}
	s.lifeMu.Lock()
	if s.closed {
		s.lifeMu.Unlock()
		s.writeError(w, &apiError{503, "ServiceUnavailable", 2500, "The service is temporarily unavailable.", "the sandbox is shutting down"})
		return
	}
	s.jobsWG.Add(1)
	s.lifeMu.Unlock()
	s.jobs.add(j)
	s.batch.jobs.Add(1)
	s.batch.tasksReceived.Add(int64(len(j.tasks)))
	go s.runBatchJob(j, time.Duration(f.BatchDelay))

	if s.dice.hit(f.BatchErrorRate) {
		s.batch.jobsFailedAnswer.Add(1)
		s.writeError(w, &apiError{503, "ServiceUnavailable", 2500, "The service is temporarily unavailable.",
			"injected by the sandbox after the job was created"})
		return
	}
	if s.dice.hit(f.BatchLateRate) {
		s.batch.jobsLate.Add(1)
		// The job exists and runs; the answer comes too late for a client with a shorter timeout.
		if !s.sleep(r, time.Duration(f.LateDelay)) {
			return
		}
	}
	// The answer acknowledges the job: "pending", even if a short delay has let it run already.
	writeJSON(w, http.StatusOK, map[string]string{"jobId": j.id, "status": BatchPending})
}

// getBatch is GET /tasks/batch/{jobId}.
func (s *Server) getBatch(w http.ResponseWriter, r *http.Request) {
	j, ok := s.jobs.get(r.PathValue("jobId"))
	if !ok {
		s.counts.notFound.Add(1)
		s.writeError(w, &apiError{404, "ResourceNotFound", 1003, "The requested resource does not exist.", "batch job " + r.PathValue("jobId")})
		return
	}
	s.batch.statusQueries.Add(1)
	writeJSON(w, http.StatusOK, j.snapshot(time.Now()))
}

// runBatchJob waits the batch delay, creates the job's tasks and, unless the job is stuck,
// finishes it and fires taskBatchCreateJobCompleted.
func (s *Server) runBatchJob(j *batchJob, delay time.Duration) {
	defer s.jobsWG.Done()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-s.done:
			t.Stop()
			return
		}
	}
	j.setStatus(BatchProcessing)
	f := s.faults.Load()
	res := emptyReport("")
	hooks := s.hooks.Load()
	for _, raw := range j.tasks {
		t, warned, e := s.batchTask(j.base, raw, f)
		if e != nil {
			res.Errors = append(res.Errors, BatchError{StatusCode: e.status, ErrorCode: e.number, Message: e.message, Cause: e.cause, TaskData: raw})
			res.FailedTasks = append(res.FailedTasks, raw)
			continue
		}
		s.store.add(t)
		s.batch.tasksCreated.Add(1)
		if warned {
			s.batch.tasksWithWarnings.Add(1)
			res.NewTasksWithWarnings = append(res.NewTasksWithWarnings, t)
		} else {
			res.NewTasks = append(res.NewTasks, t)
		}
		if hooks != nil {
			hooks.startAt(t.ID, stepAssigned) // batch-created tasks fire no taskCreated
		}
	}
	s.batch.tasksRefused.Add(int64(len(res.Errors)))
	if j.stuck {
		s.batch.jobsStuck.Add(1)
		return
	}
	res.TasksCreated = len(res.NewTasks) + len(res.NewTasksWithWarnings)
	res.TasksErrored = len(res.Errors)
	res.Status = BatchSucceeded
	if res.TasksErrored > 0 {
		res.Status = BatchCompletedWithErrors
	}
	j.mu.Lock()
	j.report = res
	j.mu.Unlock()
	s.batch.jobsFinished.Add(1)

	if hooks := s.hooks.Load(); hooks != nil {
		report := j.snapshot(time.Now())
		hooks.send(event{trigger: TriggerTaskBatchCreateJobCompleted, body: mustJSON(BatchJobWebhook{
			Time: time.Now().UnixMilli(), TriggerID: TriggerTaskBatchCreateJobCompleted,
			TriggerName: triggerNames[TriggerTaskBatchCreateJobCompleted], AdminID: &s.admin,
			ActionContext: &ActionContext{ID: s.admin, Type: "ADMIN"}, JobID: j.id, BatchJobReport: report,
		})})
	}
}

// batchTask builds one task of a batch, or says why it is refused.
func (s *Server) batchTask(base string, raw json.RawMessage, f *Faults) (*Task, bool, *apiError) {
	var body createTaskBody
	if err := json.Unmarshal(raw, &body); err != nil {
		return nil, false, invalid(fmt.Sprintf("malformed task: %v", err))
	}
	if e := body.validate(); e != nil {
		return nil, false, e
	}
	if s.dice.hit(f.BatchRejectRate) {
		return nil, false, geocodingError(body.Destination.Address, "injected by the sandbox")
	}
	t := s.newTask(base, &body)
	warned := body.hasMarker(WarningMarker) || s.dice.hit(f.BatchWarningRate)
	if warned {
		t.Destination.Warnings = []any{"The address was geocoded with low confidence; check the destination's location."}
	}
	return t, warned, nil
}

// hasMarker reports whether the destination's unparsed address or a notes field carries marker.
func (b *createTaskBody) hasMarker(marker string) bool {
	texts := []string{b.Notes}
	if d := b.Destination; d != nil {
		texts = append(texts, d.Notes)
		if d.Address != nil {
			texts = append(texts, d.Address.Unparsed)
		}
	}
	for _, t := range texts {
		if strings.Contains(t, marker) {
			return true
		}
	}
	return false
}
