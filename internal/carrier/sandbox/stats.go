package sandbox

import (
	"net/http"
	"sync/atomic"
)

// Stats is what GET /sandbox/stats answers. End-to-end tests use it to count tasks per order:
// every counter is updated before the answer it counts is written.
type Stats struct {
	// TasksCreated counts tasks stored, including those whose answer came late.
	TasksCreated int64 `json:"tasks_created"`
	// ExternalIDs counts distinct waybill_external_id values among the tasks.
	ExternalIDs int64 `json:"external_ids"`
	// DuplicatedExternalIDs lists, sorted, the external ids with more than one task. Waybill
	// promises it stays empty.
	DuplicatedExternalIDs []string     `json:"duplicated_external_ids"`
	Requests              RequestStats `json:"requests"`
	// RequestsByRoute counts every request to an Onfleet route once its key was accepted,
	// whatever its answer (429s included), by route pattern such as "POST /tasks/batch-async";
	// "unmatched" is a path or method the API does not have.
	RequestsByRoute map[string]int64 `json:"requests_by_route"`
	Batch           BatchStats       `json:"batch"`
	Webhooks        WebhookStats     `json:"webhooks"`
}

// RequestStats counts answers by outcome.
type RequestStats struct {
	Created           int64 `json:"created"`             // POST /tasks answered 200 on time
	CreatedLate       int64 `json:"created_late"`        // POST /tasks created, answer held back by late-delay
	InjectedError     int64 `json:"injected_error"`      // 503 from error-rate, nothing created
	InjectedRateLimit int64 `json:"injected_rate_limit"` // 429 from rate-limit-rate, nothing created
	Rejected          int64 `json:"rejected"`            // 400: invalid body, address, phone…
	Unauthorized      int64 `json:"unauthorized"`        // 401
	MetadataQuery     int64 `json:"metadata_query"`      // POST /tasks/metadata answered 200
	GetTask           int64 `json:"get_task"`            // GET /tasks/{id} answered 200
	NotFound          int64 `json:"not_found"`           // GET /tasks/{id} or /tasks/batch/{jobId} for an unknown id
	AuthTest          int64 `json:"auth_test"`           // GET /auth/test answered 200
	RateLimited       int64 `json:"rate_limited"`        // 429 from the rate limit (-rate-limit), on any route
	ListTasks         int64 `json:"list_tasks"`          // GET /tasks/all answered 200 (one per page)
}

// BatchStats counts async batch jobs (POST /tasks/batch-async). Tasks they create are in
// TasksCreated too.
type BatchStats struct {
	Jobs              int64 `json:"jobs"`                // jobs created
	JobsFinished      int64 `json:"jobs_finished"`       // jobs that reached succeeded or completedWithErrors
	JobsStuck         int64 `json:"jobs_stuck"`          // jobs that created their tasks and will never finish
	JobsLate          int64 `json:"jobs_late"`           // jobs whose answer was held back by late-delay
	JobsFailedAnswer  int64 `json:"jobs_failed_answer"`  // jobs created, then answered 503
	StatusQueries     int64 `json:"status_queries"`      // GET /tasks/batch/{jobId} answered 200
	TasksReceived     int64 `json:"tasks_received"`      // tasks sent in batches
	TasksCreated      int64 `json:"tasks_created"`       // tasks created by batches, with warnings or not
	TasksWithWarnings int64 `json:"tasks_with_warnings"` // of which created with warnings
	TasksRefused      int64 `json:"tasks_refused"`       // tasks a batch refused (errors)
}

// WebhookStats counts webhook deliveries; all zero without a webhook URL.
type WebhookStats struct {
	Sent           int64 `json:"sent"`            // deliveries answered 200, duplicates included
	FailedAttempts int64 `json:"failed_attempts"` // attempts answered otherwise or not at all
	Dropped        int64 `json:"dropped"`         // deliveries given up after every retry
	Duplicated     int64 `json:"duplicated"`      // events scheduled for a second delivery
	Reordered      int64 `json:"reordered"`       // events held back behind the next one
	Failures       int64 `json:"failures"`        // tasks ended failed
	InFlight       int64 `json:"in_flight"`       // task lifecycles (and lone events) not finished yet
	Suppressed     int64 `json:"suppressed"`      // events not sent because webhooks were off
	BadSignature   int64 `json:"bad_signature"`   // events signed with a wrong key on purpose
	BatchCompleted int64 `json:"batch_completed"` // taskBatchCreateJobCompleted events sent out
}

type requestCounts struct {
	created, createdLate, injectedError, injectedRateLimit, rejected, unauthorized,
	metadataQuery, getTask, notFound, authTest, rateLimited, listTasks atomic.Int64
}

type batchCounts struct {
	jobs, jobsFinished, jobsStuck, jobsLate, jobsFailedAnswer, statusQueries,
	tasksReceived, tasksCreated, tasksWithWarnings, tasksRefused atomic.Int64
}

type webhookCounts struct {
	sent, failedAttempts, dropped, duplicated, reordered, failures, inFlight,
	suppressed, badSignature, batchCompleted atomic.Int64
}

// Stats returns the counts so far.
func (s *Server) Stats() Stats {
	c := &s.counts
	st := Stats{
		TasksCreated:          s.store.stored.Load(),
		ExternalIDs:           s.store.extIDs.Load(),
		DuplicatedExternalIDs: s.store.duplicated(),
		Requests: RequestStats{
			Created: c.created.Load(), CreatedLate: c.createdLate.Load(),
			InjectedError: c.injectedError.Load(), InjectedRateLimit: c.injectedRateLimit.Load(),
			Rejected: c.rejected.Load(), Unauthorized: c.unauthorized.Load(),
			MetadataQuery: c.metadataQuery.Load(), GetTask: c.getTask.Load(), NotFound: c.notFound.Load(),
			AuthTest: c.authTest.Load(), RateLimited: c.rateLimited.Load(), ListTasks: c.listTasks.Load(),
		},
		RequestsByRoute: make(map[string]int64, len(s.routeCounts)),
		Batch: BatchStats{
			Jobs: s.batch.jobs.Load(), JobsFinished: s.batch.jobsFinished.Load(), JobsStuck: s.batch.jobsStuck.Load(),
			JobsLate: s.batch.jobsLate.Load(), JobsFailedAnswer: s.batch.jobsFailedAnswer.Load(),
			StatusQueries: s.batch.statusQueries.Load(), TasksReceived: s.batch.tasksReceived.Load(),
			TasksCreated: s.batch.tasksCreated.Load(), TasksWithWarnings: s.batch.tasksWithWarnings.Load(),
			TasksRefused: s.batch.tasksRefused.Load(),
		},
	}
	for route, n := range s.routeCounts {
		if v := n.Load(); v > 0 {
			st.RequestsByRoute[route] = v
		}
	}
	if h := s.hooks.Load(); h != nil {
		w := &h.counts
		st.Webhooks = WebhookStats{
			Sent: w.sent.Load(), FailedAttempts: w.failedAttempts.Load(), Dropped: w.dropped.Load(),
			Duplicated: w.duplicated.Load(), Reordered: w.reordered.Load(), Failures: w.failures.Load(),
			InFlight: w.inFlight.Load(), Suppressed: w.suppressed.Load(), BadSignature: w.badSignature.Load(),
			BatchCompleted: w.batchCompleted.Load(),
		}
	}
	return st
}

func (s *Server) serveStats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Stats())
}
