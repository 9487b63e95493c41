package batch

import (
	"context"
	"errors"
	"fmt"
)

// Batcher runs callers' requests in batches: callers wait while their request rides in the next
// batch. Batches form by themselves, so a quiet system runs each call at once and a busy one in
// large batches. Two flushers overlap one batch's round trips with the next one's build.
type Batcher[Req, Res any] struct {
	in       chan *batchItem[Req, Res]
	stopped  chan struct{} // closed once Loop has returned: nothing runs any more
	maxBatch int
	// run does one batch; results are index-aligned with reqs.
	run func(ctx context.Context, reqs []Req) ([]Res, error)
}

type batchItem[Req, Res any] struct {
	req  Req
	done chan batchResult[Res]
}

type batchResult[Res any] struct {
	res Res
	err error
}

// New returns a Batcher that runs at most maxBatch requests at once through run, whose results
// are index-aligned with its requests. Call Loop to serve batches.
func New[Req, Res any](maxBatch int, run func(context.Context, []Req) ([]Res, error)) *Batcher[Req, Res] {
	return &Batcher[Req, Res]{in: make(chan *batchItem[Req, Res], 4*maxBatch), stopped: make(chan struct{}), maxBatch: maxBatch, run: run}
}

// Do sends req in the next batch and waits for its result.
func (b *Batcher[Req, Res]) Do(ctx context.Context, req Req) (Res, error) {
	var zero Res
	item := &batchItem[Req, Res]{req: req, done: make(chan batchResult[Res], 1)}
	select {
	case b.in <- item:
	case <-b.stopped:
		return zero, ErrStopped
	case <-ctx.Done():
		return zero, ctx.Err()
	}
	select {
	case r := <-item.done:
		return r.res, r.err
	case <-b.stopped:
		select {
		case r := <-item.done: // its batch ran before Loop returned
			return r.res, r.err
		default:
			return zero, ErrStopped
		}
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// ErrStopped is the answer to a request that came, or was still queued, when Loop stopped:
// it never ran.
var ErrStopped = errors.New("batch: stopped")

// Loop runs batches until ctx ends. A started batch finishes even then: callers may have acted
// on the world (called a carrier) already. Requests still queued then fail with ErrStopped.
// Loop runs once per Batcher.
func (b *Batcher[Req, Res]) Loop(ctx context.Context) {
	const flushers = 2
	done := make(chan struct{})
	for range flushers {
		go func() {
			defer func() { done <- struct{}{} }()
			items := make([]*batchItem[Req, Res], 0, b.maxBatch)
			reqs := make([]Req, 0, b.maxBatch)
			for {
				if ctx.Err() != nil {
					return // before taking more: a select would pick at random
				}
				select {
				case <-ctx.Done():
					return
				case first := <-b.in:
					items = append(items[:0], first)
				}
			fill:
				for len(items) < b.maxBatch {
					select {
					case next := <-b.in:
						items = append(items, next)
					default:
						break fill
					}
				}
				reqs = reqs[:0]
				for _, it := range items {
					reqs = append(reqs, it.req)
				}
				res, err := b.run(context.WithoutCancel(ctx), reqs)
				if err == nil && len(res) != len(reqs) {
					err = fmt.Errorf("batch: run returned %d results for %d requests", len(res), len(reqs))
				}
				for i, it := range items {
					r := batchResult[Res]{err: err}
					if err == nil {
						r.res = res[i]
					}
					it.done <- r
				}
			}
		}()
	}
	for range flushers {
		<-done
	}
	// Queued requests never ran: tell their callers now, rather than at their deadlines.
	close(b.stopped)
	for {
		select {
		case it := <-b.in:
			it.done <- batchResult[Res]{err: ErrStopped}
		default:
			return
		}
	}
}
