package bench

import (
	"sync/atomic"
	"time"
)

// Pacer schedules an open-loop load: operation i is due at Start + i/Rate by the wall clock,
// however long earlier operations took. A generator that cannot keep up sends late rather
// than less often, and the lateness (lag) is recorded and reported, so a slow generator shows
// up in the figures instead of silently lowering the offered rate.
type Pacer struct {
	start time.Time
	rate  float64
	total int
	next  atomic.Int64
}

// NewPacer plans rate operations a second for d, starting at start.
func NewPacer(start time.Time, rate float64, d time.Duration) *Pacer {
	return &Pacer{start: start, rate: rate, total: int(rate * d.Seconds())}
}

// Total is the number of operations planned.
func (p *Pacer) Total() int { return p.total }

// Start is when operation 0 is due.
func (p *Pacer) Start() time.Time { return p.start }

// Due is when operation i should be sent.
func (p *Pacer) Due(i int) time.Time {
	return p.start.Add(time.Duration(float64(i) / p.rate * float64(time.Second)))
}

// Next claims the next unclaimed operation for the calling sender. ok is false once all are
// claimed. Senders wait until due themselves, so a busy sender delays only its own claim.
func (p *Pacer) Next() (i int, due time.Time, ok bool) {
	n := int(p.next.Add(1) - 1)
	if n >= p.total {
		return 0, time.Time{}, false
	}
	return n, p.Due(n), true
}

// DueBy is how many operations are due at t (those with Due(i) <= t).
func (p *Pacer) DueBy(t time.Time) int {
	if t.Before(p.start) {
		return 0
	}
	n := int(t.Sub(p.start).Seconds()*p.rate) + 1
	return min(n, p.total)
}
