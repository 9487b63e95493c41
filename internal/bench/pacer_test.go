package bench

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPacerSchedule(t *testing.T) {
	t.Parallel()

	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	p := NewPacer(start, 4, 2*time.Second)
	require.Equal(t, 8, p.Total())
	require.Equal(t, start, p.Due(0))
	require.Equal(t, start.Add(250*time.Millisecond), p.Due(1))
	require.Equal(t, start.Add(1750*time.Millisecond), p.Due(7))

	require.Equal(t, 0, p.DueBy(start.Add(-time.Millisecond)))
	require.Equal(t, 1, p.DueBy(start))
	require.Equal(t, 2, p.DueBy(start.Add(250*time.Millisecond)))
	require.Equal(t, 4, p.DueBy(start.Add(999*time.Millisecond)))
	require.Equal(t, 8, p.DueBy(start.Add(time.Hour)), "never more than planned")

	// Fractional rates keep their spacing.
	q := NewPacer(start, 3000, time.Minute)
	require.Equal(t, 180000, q.Total())
	require.Equal(t, start.Add(time.Second), q.Due(3000))
	require.Equal(t, start.Add(333333*time.Nanosecond), q.Due(1))
}

func TestPacerNextClaimsEachOperationOnce(t *testing.T) {
	t.Parallel()

	start := time.Unix(0, 0)
	p := NewPacer(start, 1000, time.Second)
	var (
		mu   sync.Mutex
		seen = make(map[int]time.Time)
		dups []int
		wg   sync.WaitGroup
	)
	for range 8 {
		wg.Go(func() {
			for {
				i, due, ok := p.Next()
				if !ok {
					return
				}
				mu.Lock()
				if _, dup := seen[i]; dup {
					dups = append(dups, i)
				}
				seen[i] = due
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.Empty(t, dups, "operations claimed twice")
	require.Len(t, seen, 1000)
	for i, due := range seen {
		require.Equal(t, p.Due(i), due)
	}
	_, _, ok := p.Next()
	require.False(t, ok)
}
