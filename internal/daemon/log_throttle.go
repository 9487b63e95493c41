package daemon

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// DefaultLogThrottle is how often one failure is logged while it repeats.
const DefaultLogThrottle = 10 * time.Second

// logThrottle writes each failure once per interval: a warning or error that carries an error
// attribute ("error", or River's "err") is keyed by its level and message, and its repeats within
// the interval are counted instead of written; the next line of it that is written says how many
// were not ("repeated"). During a Postgres outage every River producer, pool and loop reports the
// same failure every few milliseconds: thousands of lines that say one thing. Lines without an
// error (an order's quarantined event, say) and info and debug lines pass untouched.
type logThrottle struct {
	next     slog.Handler
	interval time.Duration
	state    *throttleState // shared by the handlers WithAttrs and WithGroup derive
}

type throttleState struct {
	mu   sync.Mutex
	seen map[throttleKey]*throttleEntry
}

type throttleKey struct {
	level slog.Level
	msg   string
}

type throttleEntry struct {
	until    time.Time
	repeated int
}

// maxThrottleKeys bounds the state; expired entries are dropped when it is reached.
const maxThrottleKeys = 4096

func newLogThrottle(next slog.Handler, interval time.Duration) *logThrottle {
	return &logThrottle{next: next, interval: interval, state: &throttleState{seen: map[throttleKey]*throttleEntry{}}}
}

// throttledLogger wraps logger's handler in a logThrottle.
func throttledLogger(logger *slog.Logger, interval time.Duration) *slog.Logger {
	return slog.New(newLogThrottle(logger.Handler(), interval))
}

func (h *logThrottle) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h *logThrottle) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn || !hasErrorAttr(r) {
		return h.next.Handle(ctx, r)
	}
	now := r.Time
	if now.IsZero() {
		now = time.Now()
	}
	key := throttleKey{r.Level, r.Message}
	h.state.mu.Lock()
	e, ok := h.state.seen[key]
	if ok && now.Before(e.until) {
		e.repeated++
		h.state.mu.Unlock()
		return nil
	}
	repeated := 0
	if ok {
		repeated = e.repeated
	}
	if len(h.state.seen) >= maxThrottleKeys {
		for k, old := range h.state.seen {
			if !now.Before(old.until) {
				delete(h.state.seen, k)
			}
		}
	}
	h.state.seen[key] = &throttleEntry{until: now.Add(h.interval)}
	h.state.mu.Unlock()
	if repeated > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("repeated", repeated))
	}
	return h.next.Handle(ctx, r)
}

func (h *logThrottle) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &logThrottle{next: h.next.WithAttrs(attrs), interval: h.interval, state: h.state}
}

func (h *logThrottle) WithGroup(name string) slog.Handler {
	return &logThrottle{next: h.next.WithGroup(name), interval: h.interval, state: h.state}
}

func hasErrorAttr(r slog.Record) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		found = a.Key == "error" || a.Key == "err"
		return !found
	})
	return found
}
