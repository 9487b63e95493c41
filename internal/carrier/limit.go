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

// WithToken says the caller took this request's token at granted (dispatch takes it before it
// gathers a batch, so that the batch grows while it waits).
func WithToken(ctx context.Context, granted time.Time) context.Context {
	return context.WithValue(ctx, tokenTakenKey, granted)
}

// MaxTokenAge is how long after its token a request may still go out. The budget spaces tokens
// evenly (1/18 s apart by default) and the carrier counts requests in any one-second window: a
// request held up after its token (a slow commit, rendering 500 tasks on a busy machine) would
// go out bunched with later ones and be refused. Past this age it waits for a fresh token, so
// requests never leave closer together than the budget allows, less this slack.
const MaxTokenAge = 25 * time.Millisecond

// AwaitToken waits for this request's token from limiter (nil: no limit), at ctx's priority,
// unless ctx carries one taken less than MaxTokenAge ago. Call it right before sending, after
// the body is built.
func AwaitToken(ctx context.Context, limiter Limiter) error {
	if limiter == nil {
		return nil
	}
	if granted, ok := ctx.Value(tokenTakenKey).(time.Time); ok && time.Since(granted) <= MaxTokenAge {
		return nil
	}
	return limiter.Wait(ctx, PriorityOf(ctx))
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
