package bench

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// openLoopRun is what happened to each operation of an open-loop run. Times are seconds since
// the pacer's start; NaN where it did not happen.
type openLoopRun struct {
	sendAt   []float64
	doneAt   []float64 // NaN when the operation failed
	lagMs    []float64 // how late it was sent
	errors   atomic.Int64
	firstErr atomic.Value
}

// lateThreshold: an operation sent later than this after it was due counts as late.
const lateThreshold = 100 * time.Millisecond

// runOpenLoop sends every operation the pacer plans from senders goroutines, each waiting until
// its operation is due. Past hardStop no new operation is sent (they stay unsent and are
// reported). send is given the sender's number, for per-sender state such as a connection.
func runOpenLoop(ctx context.Context, p *Pacer, senders int, hardStop time.Time, send func(ctx context.Context, sender, i int) error) *openLoopRun {
	n := p.Total()
	r := &openLoopRun{sendAt: make([]float64, n), doneAt: make([]float64, n), lagMs: make([]float64, n)}
	for i := range n {
		r.sendAt[i], r.doneAt[i], r.lagMs[i] = math.NaN(), math.NaN(), math.NaN()
	}
	start := p.Start()
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			for ctx.Err() == nil {
				i, due, ok := p.Next()
				if !ok || due.After(hardStop) {
					return
				}
				if d := time.Until(due); d > 0 {
					if sleepCtx(ctx, d) != nil {
						return
					}
				}
				sent := time.Now()
				if sent.After(hardStop) {
					return
				}
				r.sendAt[i] = sent.Sub(start).Seconds()
				r.lagMs[i] = ms(sent.Sub(due))
				if err := send(ctx, s, i); err != nil {
					if ctx.Err() != nil {
						return
					}
					r.errors.Add(1)
					r.firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				r.doneAt[i] = time.Since(start).Seconds()
			}
		})
	}
	wg.Wait()
	return r
}

// GeneratorStats says whether the load generator kept to its schedule. If it did not, the
// offered rate was not really offered, and the run's other figures say less than they seem.
type GeneratorStats struct {
	Planned int `json:"planned"`
	Sent    int `json:"sent"`
	// Unsent were never sent: the run hit its hard stop while the generator was behind.
	Unsent int `json:"unsent"`
	// LagMs is how late operations were sent after they were due.
	LagMs        Summary `json:"lag_ms"`
	Late         int     `json:"late_over_100ms"`
	SentPerSec   float64 `json:"sent_per_second"`
	LastSendSecs float64 `json:"last_send_seconds"`
	FellBehind   bool    `json:"fell_behind"`
}

func (r *openLoopRun) generatorStats(p *Pacer) GeneratorStats {
	g := GeneratorStats{Planned: p.Total()}
	lags := make([]float64, 0, len(r.lagMs))
	for i, l := range r.lagMs {
		if math.IsNaN(l) {
			continue
		}
		lags = append(lags, l)
		g.Sent++
		if l > ms(lateThreshold) {
			g.Late++
		}
		g.LastSendSecs = max(g.LastSendSecs, r.sendAt[i])
	}
	g.Unsent = g.Planned - g.Sent
	g.LagMs = Summarize(lags)
	if g.LastSendSecs > 0 {
		g.SentPerSec = float64(g.Sent) / g.LastSendSecs
	}
	// Behind: anything unsent, or more than 0.1% of sends later than the threshold.
	g.FellBehind = g.Unsent > 0 || float64(g.Late) > 0.001*float64(max(g.Sent, 1))
	return g
}

func (r *openLoopRun) ok() int {
	n := 0
	for _, d := range r.doneAt {
		if !math.IsNaN(d) {
			n++
		}
	}
	return n
}

func (r *openLoopRun) firstError() string {
	s, _ := r.firstErr.Load().(string)
	return s
}

// perSecond counts times (seconds since start) into one-second buckets 0..n-1.
func perSecond(times []float64, n int) []int {
	out := make([]int, n)
	for _, t := range times {
		if math.IsNaN(t) || t < 0 {
			continue
		}
		if b := int(t); b < n {
			out[b]++
		}
	}
	return out
}
