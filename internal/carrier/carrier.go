package carrier

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/waybill/waybill/internal/orders"
)

// Task is the carrier's record of an order.
type Task struct {
	ID          string
	TrackingURL string
}

// Request is what a carrier needs to create a task for an order.
type Request struct {
	OrderID    int64
	ExternalID string
	Kind       orders.Kind
	Payload    orders.Payload
	// BatchID is the waybill.dispatch_batches row the request belongs to; carriers that can
	// store it on the task do, so one lookup finds every task of a batch.
	BatchID int64
}

// Carrier creates tasks at one carrier. Implementations are safe for concurrent use.
type Carrier interface {
	// Name is the carrier's name in waybill.orders.carrier.
	Name() string
	// CreateTask creates the carrier's task for the order. Errors are *Error.
	CreateTask(ctx context.Context, req Request) (Task, error)
	// FindTask looks up a task created earlier for externalID (the reference we stored with it),
	// so a retry after an ambiguous failure never creates a second task. ok is false when there
	// is none.
	FindTask(ctx context.Context, externalID string) (task Task, ok bool, err error)
}

// BatchCarrier is a carrier that creates many tasks in one request, asynchronously: the request
// answers with a job id, and the job's results come later (by polling or by webhook).
type BatchCarrier interface {
	Carrier
	// MaxBatch is the most tasks one request may carry.
	MaxBatch() int
	// CreateBatch starts creating the tasks of reqs (all of batchID) and returns the carrier's
	// job id. Errors are *Error; an ambiguous one may have started the job.
	CreateBatch(ctx context.Context, batchID int64, reqs []Request) (jobID string, err error)
	// BatchStatus reads the job's progress; done is false while it runs (or its status is
	// unknown to us).
	BatchStatus(ctx context.Context, jobID string) (result BatchResult, done bool, err error)
	// FindBatch looks up, in one request, the tasks that exist for batchID, by external id.
	FindBatch(ctx context.Context, batchID int64) (map[string]Task, error)
}

// SyncBatchCarrier is a carrier whose batch endpoint answers with every task's outcome at once
// (a configured carrier's create_batch). Dispatch records the batch before the request, as for
// an async one; an ambiguous failure is settled by FindTask for each of its orders.
type SyncBatchCarrier interface {
	Carrier
	// MaxBatch is the most tasks one request may carry.
	MaxBatch() int
	// CreateBatchSync creates the tasks of reqs (all of batchID) in one request. Errors are
	// *Error and concern the whole request; one task's refusal is in the result.
	CreateBatchSync(ctx context.Context, batchID int64, reqs []Request) (BatchResult, error)
}

// BatchResult is what became of each task of a batch, by external id. An external id in
// neither map was not created.
type BatchResult struct {
	Created map[string]CreatedTask
	// Refused holds the carrier's words for each task it would not create.
	Refused map[string]string
}

// CreatedTask is a task a batch created, with the carrier's warning if it had one (e.g. a
// doubtful address).
type CreatedTask struct {
	Task
	Warning string
}

// ErrorClass says what dispatch should do about a failed carrier call.
type ErrorClass int

const (
	// Transient: network error, timeout, 5xx. Retry with backoff.
	Transient ErrorClass = iota
	// RateLimited: HTTP 429. Wait and retry without using up an attempt.
	RateLimited
	// Unauthorized: 401/403 (or an endpoint that does not exist): the integration is broken.
	// Keep retrying slowly; ops are alarmed.
	Unauthorized
	// Rejected: any other 4xx. The carrier will never accept this order as it is.
	Rejected
)

func (c ErrorClass) String() string {
	switch c {
	case Transient:
		return "transient"
	case RateLimited:
		return "rate_limited"
	case Unauthorized:
		return "unauthorized"
	case Rejected:
		return "rejected"
	}
	return fmt.Sprintf("ErrorClass(%d)", int(c))
}

// Error is a failed carrier call.
type Error struct {
	Carrier string
	Class   ErrorClass
	// StatusCode is the HTTP status, 0 when no answer came.
	StatusCode int
	// Message is the carrier's own explanation, fit for status_reason.
	Message string
	// Ambiguous means the carrier may have created the task although the call failed (timeout,
	// cut connection, 5xx): the next attempt must look it up before creating.
	Ambiguous bool
	// RetryAfter is the carrier's requested wait for RateLimited, 0 when it gave none.
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%s: %s", e.Carrier, e.Class)
	if e.StatusCode != 0 {
		msg += fmt.Sprintf(" (HTTP %d)", e.StatusCode)
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// ClassOf returns the class of err, Transient for anything that is not an *Error.
func ClassOf(err error) ErrorClass {
	var ce *Error
	if errors.As(err, &ce) {
		return ce.Class
	}
	return Transient
}
