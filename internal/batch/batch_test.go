package batch

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBatcherAnswersEachCallerAndBatchesConcurrentOnes(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var runs, largest, held atomic.Int64
	release := make(chan struct{})
	b := New(64, func(_ context.Context, reqs []int) ([]int, error) {
		runs.Add(1)
		held.Add(int64(len(reqs)))
		<-release // both flushers hold their first batch while the rest queue up
		largest.Store(max(largest.Load(), int64(len(reqs))))
		out := make([]int, len(reqs))
		for i, r := range reqs {
			out[i] = r * 10
		}
		return out, nil
	})
	go b.Loop(ctx)

	const callers = 200
	var wg sync.WaitGroup
	got := make([]int, callers)
	for i := range callers {
		wg.Go(func() {
			res, err := b.Do(ctx, i)
			if err != nil {
				t.Error(err)
			}
			got[i] = res
		})
	}
	require.Eventually(t, func() bool { return int(held.Load())+len(b.in) == callers }, 5*time.Second, time.Millisecond)
	close(release)
	wg.Wait()
	for i, g := range got {
		require.Equal(t, i*10, g, "caller %d got another caller's result", i)
	}
	require.LessOrEqual(t, runs.Load(), int64(2+4), "queued calls should go in batches of 64")
	require.LessOrEqual(t, largest.Load(), int64(64), "a batch exceeded maxBatch")
}

func TestBatcherGivesEveryCallerTheBatchError(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	boom := errors.New("boom")
	b := New(8, func(context.Context, []string) ([]string, error) { return nil, boom })
	go b.Loop(ctx)
	_, err := b.Do(ctx, "a")
	require.ErrorIs(t, err, boom)

	short := New(8, func(context.Context, []string) ([]string, error) { return nil, nil })
	go short.Loop(ctx)
	_, err = short.Do(ctx, "a")
	require.ErrorContains(t, err, "0 results for 1 requests")
}

func TestBatcherDoReturnsWhenCallerGivesUp(t *testing.T) {
	t.Parallel()
	b := New(8, func(context.Context, []int) ([]int, error) { return []int{1}, nil })
	// No Loop: nothing serves the batch.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := b.Do(ctx, 1)
	require.ErrorIs(t, err, context.Canceled)
}

// Requests queued when Loop stops fail at once with ErrStopped, not at their callers' deadlines.
func TestLoopStopFailsQueuedRequests(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var started atomic.Int64
	b := New(1, func(_ context.Context, reqs []int) ([]int, error) {
		started.Add(1)
		<-release
		return reqs, nil
	})
	ctx, stop := context.WithCancel(context.Background())
	loopDone := make(chan struct{})
	go func() { defer close(loopDone); b.Loop(ctx) }()

	const callers = 6
	errs := make(chan error, callers)
	for i := range callers {
		go func() {
			_, err := b.Do(context.Background(), i) // no deadline: only Loop can answer
			errs <- err
		}()
	}
	require.Eventually(t, func() bool { return started.Load() == 2 && len(b.in) == callers-2 }, 5*time.Second, time.Millisecond, "two batches running, the rest queued")
	stop()
	close(release)
	<-loopDone
	var ran, stopped int
	for range callers {
		switch err := <-errs; {
		case err == nil:
			ran++
		case errors.Is(err, ErrStopped):
			stopped++
		default:
			t.Fatalf("unexpected error: %v", err)
		}
	}
	require.Equal(t, 2, ran, "the batches that had started finished")
	require.Equal(t, callers-2, stopped)
	_, err := b.Do(context.Background(), 99)
	require.ErrorIs(t, err, ErrStopped, "after Loop, Do fails at once")
}
