// Package carrier is the seam between Waybill and a delivery carrier: the adapter interface and
// the error classes that decide how dispatch retries.
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
