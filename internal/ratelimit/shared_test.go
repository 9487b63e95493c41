package ratelimit_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/dbtest"
	"github.com/waybill/waybill/internal/ratelimit"
)

// Two instances (two limiters on one database) share one budget: in no one-second window do
// they take more than the rate (plus the burst of one).
func TestSharedBudgetAcrossInstances(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.NewPool(t)
	const rate = 20
	a := ratelimit.NewShared(pool, "onfleet", rate, nil)
	b := ratelimit.NewShared(pool, "onfleet", rate, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	var (
		mu    sync.Mutex
		times []time.Time
		wg    sync.WaitGroup
	)
	for _, l := range []*ratelimit.Shared{a, a, b, b} {
		wg.Go(func() {
			for l.Wait(ctx, ratelimit.High) == nil {
				mu.Lock()
				times = append(times, time.Now())
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.Greater(t, len(times), rate, "the budget is used")
	for i := range times {
		in := 0
		for _, u := range times {
			if !u.Before(times[i]) && u.Sub(times[i]) < time.Second {
				in++
			}
		}
		require.LessOrEqual(t, in, rate+1, "requests in the second after %s", times[i])
	}
}

// A 429 seen by one instance holds every instance back.
func TestSharedBlockHoldsEveryone(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.NewPool(t)
	ctx := context.Background()
	a := ratelimit.NewShared(pool, "onfleet", 1000, nil)
	b := ratelimit.NewShared(pool, "onfleet", 1000, nil)
	require.NoError(t, a.Wait(ctx, ratelimit.High))
	blocked := time.Now()
	a.Block(ctx, 400*time.Millisecond)
	require.NoError(t, b.Wait(ctx, ratelimit.High))
	require.GreaterOrEqual(t, time.Since(blocked), 350*time.Millisecond, "b waited out a's block")
}

// While dispatch (high) waits for a token, polls and lookups (low) stand back.
func TestSharedLowWaitsForHigh(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.NewPool(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	l := ratelimit.NewShared(pool, "onfleet", 5, nil)

	var (
		mu    sync.Mutex
		order []ratelimit.Priority
		wg    sync.WaitGroup
	)
	take := func(p ratelimit.Priority) {
		if l.Wait(ctx, p) == nil {
			mu.Lock()
			order = append(order, p)
			mu.Unlock()
		}
	}
	require.NoError(t, l.Wait(ctx, ratelimit.High)) // the bucket is empty now
	wg.Go(func() { take(ratelimit.High); take(ratelimit.High); take(ratelimit.High) })
	require.Eventually(t, func() bool { // the high waiter has asked, and marked itself waiting
		var waiting bool
		return pool.QueryRow(ctx, `SELECT high_waiting_until > clock_timestamp() FROM waybill.carrier_rate_limits`).Scan(&waiting) == nil && waiting
	}, time.Second, time.Millisecond)
	wg.Go(func() { take(ratelimit.Low) })
	wg.Wait()
	require.Equal(t, []ratelimit.Priority{ratelimit.High, ratelimit.High, ratelimit.High, ratelimit.Low}, order)
}
