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
	Webhooks              WebhookStats `json:"webhooks"`
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
	NotFound          int64 `json:"not_found"`           // GET /tasks/{id} for an unknown id
	AuthTest          int64 `json:"auth_test"`           // GET /auth/test answered 200
}

// WebhookStats counts webhook deliveries; all zero without a webhook URL.
type WebhookStats struct {
	Sent           int64 `json:"sent"`            // deliveries answered 200, duplicates included
	FailedAttempts int64 `json:"failed_attempts"` // attempts answered otherwise or not at all
	Dropped        int64 `json:"dropped"`         // deliveries given up after every retry
	Duplicated     int64 `json:"duplicated"`      // events scheduled for a second delivery
	Reordered      int64 `json:"reordered"`       // events held back behind the next one
	Failures       int64 `json:"failures"`        // tasks ended failed
	InFlight       int64 `json:"in_flight"`       // task lifecycles not finished yet
}

type requestCounts struct {
	created, createdLate, injectedError, injectedRateLimit, rejected, unauthorized,
	metadataQuery, getTask, notFound, authTest atomic.Int64
}

type webhookCounts struct {
	sent, failedAttempts, dropped, duplicated, reordered, failures, inFlight atomic.Int64
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
			AuthTest: c.authTest.Load(),
		},
	}
	if h := s.hooks; h != nil {
		w := &h.counts
		st.Webhooks = WebhookStats{
			Sent: w.sent.Load(), FailedAttempts: w.failedAttempts.Load(), Dropped: w.dropped.Load(),
			Duplicated: w.duplicated.Load(), Reordered: w.reordered.Load(), Failures: w.failures.Load(),
			InFlight: w.inFlight.Load(),
		}
	}
	return st
}

func (s *Server) serveStats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Stats())
}
