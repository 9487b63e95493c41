package dispatch

import (
	"context"
	"fmt"
)

// batcher turns many concurrent single calls into few batched ones: callers wait while their
// request rides in the next batch. Batches form by themselves: while one is in flight, arrivals
// queue up and go together in the next, so a quiet system runs each call at once and a busy one
// in large batches. Two flushers overlap one batch's round trips with the next one's build.
type batcher[Req, Res any] struct {
	in       chan *batchItem[Req, Res]
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

func newBatcher[Req, Res any](maxBatch int, run func(context.Context, []Req) ([]Res, error)) *batcher[Req, Res] {
	return &batcher[Req, Res]{in: make(chan *batchItem[Req, Res], 4*maxBatch), maxBatch: maxBatch, run: run}
}

// do sends req in the next batch and waits for its result.
func (b *batcher[Req, Res]) do(ctx context.Context, req Req) (Res, error) {
	var zero Res
	item := &batchItem[Req, Res]{req: req, done: make(chan batchResult[Res], 1)}
	select {
	case b.in <- item:
	case <-ctx.Done():
		return zero, ctx.Err()
	}
	select {
	case r := <-item.done:
		return r.res, r.err
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// loop runs batches until ctx ends. A started batch finishes even then: callers may have acted
// on the world (called a carrier) already.
func (b *batcher[Req, Res]) loop(ctx context.Context) {
	const flushers = 2
	done := make(chan struct{})
	for range flushers {
		go func() {
			defer func() { done <- struct{}{} }()
			items := make([]*batchItem[Req, Res], 0, b.maxBatch)
			reqs := make([]Req, 0, b.maxBatch)
			for {
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
					err = fmt.Errorf("dispatch: batch returned %d results for %d requests", len(res), len(reqs))
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
}
