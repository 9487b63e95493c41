package sandbox

import (
	"sort"
	"sync"
	"time"
)

// rateWindow is the span Onfleet's organisation-wide limit is counted over.
const rateWindow = time.Second

// rateLimiter enforces Onfleet's limit per organisation (the sandbox has one): at most limit
// requests in any one-second window, counted as a sliding log of the requests it let through,
// so no burst at a window's edge gets past it. Refused requests do not count.
type rateLimiter struct {
	now func() time.Time

	mu    sync.Mutex
	limit int
	times []time.Time // the last len(times) accepted requests, oldest first, at most limit
}

func newRateLimiter(now func() time.Time) *rateLimiter {
	if now == nil {
		now = time.Now
	}
	return &rateLimiter{now: now}
}

// take reports whether one more request fits under limit (0: no limit) and how many more
// would fit in the current window after it.
func (l *rateLimiter) take(limit int) (ok bool, remaining int) {
	if limit <= 0 {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.setLimit(limit)
	l.expire(now)
	if len(l.times) >= l.limit {
		return false, 0
	}
	l.times = append(l.times, now)
	return true, l.limit - len(l.times)
}

// peek reports how many requests would fit now, without taking one.
func (l *rateLimiter) peek(limit int) int {
	if limit <= 0 {
		return 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.setLimit(limit)
	l.expire(now)
	return l.limit - len(l.times)
}

// setLimit follows a runtime change of the limit, keeping the most recent requests.
func (l *rateLimiter) setLimit(limit int) {
	if limit == l.limit {
		return
	}
	l.limit = limit
	if len(l.times) > limit {
		l.times = append(l.times[:0], l.times[len(l.times)-limit:]...)
	}
}

// expire forgets requests that are out of the window (now-1s, now].
func (l *rateLimiter) expire(now time.Time) {
	cutoff := now.Add(-rateWindow)
	n := sort.Search(len(l.times), func(i int) bool { return l.times[i].After(cutoff) })
	if n > 0 {
		l.times = append(l.times[:0], l.times[n:]...)
	}
}
