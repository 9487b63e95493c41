package carrier

import (
	"context"
	"time"

	"golang.org/x/time/rate"

	"github.com/waybill/waybill/internal/ratelimit"
)

// Limiter is a carrier organisation's request budget: ratelimit.Shared across the cluster, or
// LocalLimiter within one process.
type Limiter interface {
	// Wait blocks until one request may go out.
	Wait(ctx context.Context, p ratelimit.Priority) error
	// Block holds every request back for d (the carrier answered 429).
	Block(ctx context.Context, d time.Duration)
}

type ctxKey int

const (
	priorityKey ctxKey = iota
	tokenTakenKey
)

// WithPriority marks the requests made with ctx (default ratelimit.High).
func WithPriority(ctx context.Context, p ratelimit.Priority) context.Context {
	return context.WithValue(ctx, priorityKey, p)
}

// PriorityOf is the priority WithPriority set, ratelimit.High if none.
func PriorityOf(ctx context.Context) ratelimit.Priority {
	p, _ := ctx.Value(priorityKey).(ratelimit.Priority)
	return p
}

// WithTokenTaken says the caller already waited for this request's token (dispatch takes it
// before it gathers a batch, so that the batch grows while it waits).
func WithTokenTaken(ctx context.Context) context.Context {
	return context.WithValue(ctx, tokenTakenKey, true)
}

// TokenTaken reports WithTokenTaken.
func TokenTaken(ctx context.Context) bool {
	v, _ := ctx.Value(tokenTakenKey).(bool)
	return v
}

// LocalLimiter is a process-local budget: for tests and tools that run without the database.
type LocalLimiter struct{ l *rate.Limiter }

// NewLocalLimiter spaces requests evenly at r per second (burst of one).
func NewLocalLimiter(r float64) *LocalLimiter {
	return &LocalLimiter{l: rate.NewLimiter(rate.Limit(r), 1)}
}

func (l *LocalLimiter) Wait(ctx context.Context, _ ratelimit.Priority) error { return l.l.Wait(ctx) }

func (l *LocalLimiter) Block(context.Context, time.Duration) {}

// Limit is the rate in requests per second.
func (l *LocalLimiter) Limit() float64 { return float64(l.l.Limit()) }
