package bench

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRunOpenLoopSendsEveryOperationOnce(t *testing.T) {
	t.Parallel()

	// Everything is already due: the loop sends as fast as it can, which is all this test
	// needs (no timing is asserted).
	p := NewPacer(time.Now().Add(-time.Hour), 1000, 500*time.Millisecond)
	var calls atomic.Int64
	seen := make([]atomic.Int32, p.Total())
	run := runOpenLoop(context.Background(), p, 4, time.Now().Add(time.Hour), func(_ context.Context, sender, i int) error {
		require.Less(t, sender, 4)
		calls.Add(1)
		seen[i].Add(1)
		if i%10 == 0 {
			return errors.New("refused")
		}
		return nil
	})
	require.EqualValues(t, p.Total(), calls.Load())
	for i := range seen {
		require.EqualValues(t, 1, seen[i].Load(), "operation %d", i)
	}
	require.EqualValues(t, 50, run.errors.Load())
	require.Equal(t, "refused", run.firstError())
	require.Equal(t, 450, run.ok())

	g := run.generatorStats(p)
	require.Equal(t, 500, g.Planned)
	require.Equal(t, 500, g.Sent)
	require.Zero(t, g.Unsent)
	// Sent an hour late: the generator is reported behind, with every send late.
	require.True(t, g.FellBehind)
	require.Equal(t, 500, g.Late)
	require.Greater(t, g.LagMs.P50, float64(59*time.Minute/time.Millisecond))
}

func TestRunOpenLoopSendsNothingPastHardStop(t *testing.T) {
	t.Parallel()

	// A generator so far behind that the hard stop has passed sends nothing more, and says so.
	start := time.Now().Add(-time.Minute)
	p := NewPacer(start, 10, time.Second)
	run := runOpenLoop(context.Background(), p, 2, start.Add(30*time.Second), func(context.Context, int, int) error {
		t.Error("sent past the hard stop")
		return nil
	})
	g := run.generatorStats(p)
	require.Zero(t, g.Sent)
	require.Equal(t, p.Total(), g.Unsent)
	require.True(t, g.FellBehind, "unsent operations mean the offered rate was not offered")
	for i := range p.Total() {
		require.True(t, math.IsNaN(run.sendAt[i]))
	}
}

func TestGeneratorStatsOnSchedule(t *testing.T) {
	t.Parallel()

	p := NewPacer(time.Unix(0, 0), 100, 10*time.Second)
	r := &openLoopRun{sendAt: make([]float64, p.Total()), doneAt: make([]float64, p.Total()), lagMs: make([]float64, p.Total())}
	for i := range r.lagMs {
		r.sendAt[i] = float64(i) / 100
		r.lagMs[i] = 0.5
	}
	r.lagMs[7] = 150 // one late send in a thousand is tolerated
	g := r.generatorStats(p)
	require.Equal(t, 1, g.Late)
	require.False(t, g.FellBehind)
	require.InDelta(t, 9.99, g.LastSendSecs, 1e-9)

	r.lagMs[8] = 150
	require.True(t, r.generatorStats(p).FellBehind)
}

func TestPerSecond(t *testing.T) {
	t.Parallel()

	got := perSecond([]float64{0, 0.5, 0.99, 1, 2.5, math.NaN(), -1, 3, 99}, 3)
	require.Equal(t, []int{3, 1, 1}, got)
}

func TestTimeline(t *testing.T) {
	t.Parallel()

	samples := []sample{
		{T: 0, B: 0, CPU: cpuSnapshot{Serve: 10, Postgres: 5, MachineBusy: 100}},
		{T: 1, B: 300, CPU: cpuSnapshot{Serve: 10.5, Postgres: 5.8, MachineBusy: 101.5}},
		{T: 2, failed: true},
		{T: 3, B: 900, CPU: cpuSnapshot{Serve: 11, Postgres: 6, MachineBusy: 102}},
	}
	tl := timeline(3, samples, func(p *SecondPoint) { p.Offered = 7 })
	require.Len(t, tl, 3)
	require.Equal(t, 7, tl[2].Offered)
	require.InDelta(t, 300, float64(tl[0].Processed), 1e-9)
	require.InDelta(t, 0.5, tl[0].ServeCores, 1e-9)
	require.InDelta(t, 0.8, tl[0].PGCores, 1e-9)
	require.InDelta(t, 1.5, tl[0].BusyCores, 1e-9)
	require.True(t, math.IsNaN(float64(tl[1].Processed)), "no figure next to a failed sample")
	require.True(t, math.IsNaN(float64(tl[2].Processed)))
}

func TestJSONCount(t *testing.T) {
	t.Parallel()

	require.EqualValues(t, 3, jsonCount([]byte(`3`)))
	require.EqualValues(t, 2, jsonCount([]byte(`["SO-1","SO-2"]`)))
	require.EqualValues(t, 1, jsonCount([]byte(`{"SO-1":2}`)))
	require.EqualValues(t, 0, jsonCount([]byte(`null`)))
	require.EqualValues(t, 0, jsonCount(nil))
}

func TestCPUUsage(t *testing.T) {
	t.Parallel()

	u := cpuUsage(cpuSnapshot{Serve: 1, Postgres: 2, Bench: 3, MachineBusy: 10},
		cpuSnapshot{Serve: 31, Postgres: 52, Bench: 13, MachineBusy: 110}, time.Minute, 2)
	require.InDelta(t, 30, u.Serve, 1e-9)
	require.InDelta(t, 50, u.Postgres, 1e-9)
	require.InDelta(t, 10, u.Bench, 1e-9)
	require.InDelta(t, 10, u.Other, 1e-9)
	require.InDelta(t, 60, u.WindowSeconds, 1e-9)
}

func TestJSONFloatWritesNaNAsNull(t *testing.T) {
	t.Parallel()

	b, err := json.Marshal([]jsonFloat{1.5, jsonFloat(math.NaN()), jsonFloat(math.Inf(1))})
	require.NoError(t, err)
	require.JSONEq(t, `[1.5, null, null]`, string(b))
}

func TestCPUUsageSplitsPostgresByDatabase(t *testing.T) {
	t.Parallel()

	a := cpuSnapshot{Postgres: 100, MachineBusy: 200, Backends: map[int]float64{10: 5, 11: 7}}
	b := cpuSnapshot{Postgres: 130, MachineBusy: 240, Backends: map[int]float64{10: 9, 11: 8, 12: 3}}
	u := cpuUsage(a, b, 20*time.Second, 2)
	// Ours: pid 10 +4, pid 11 +1, pid 12 started in the window +3.
	require.InDelta(t, 8, u.Postgres, 1e-9)
	require.InDelta(t, 22, u.PostgresOther, 1e-9)
	require.InDelta(t, 32, u.Other, 1e-9, "other databases' work is noise")
}
