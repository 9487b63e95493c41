package bench

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPercentile(t *testing.T) {
	t.Parallel()

	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[i] = float64(i + 1) // 1..100
	}
	tests := []struct {
		name   string
		sorted []float64
		p      float64
		want   float64
	}{
		{"p50 of 1..100", hundred, 50, 50},
		{"p95 of 1..100", hundred, 95, 95},
		{"p99 of 1..100", hundred, 99, 99},
		{"p100 is the max", hundred, 100, 100},
		{"tiny p is the min", hundred, 0.001, 1},
		{"single sample", []float64{7}, 99, 7},
		{"rank rounds up", []float64{1, 2, 3}, 50, 2},
		{"p99 of 10 is the largest", []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 99, 10},
		{"p90 of 10", []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 90, 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.InDelta(t, tt.want, Percentile(tt.sorted, tt.p), 0)
		})
	}
	require.True(t, math.IsNaN(Percentile(nil, 50)))
}

func TestSummarize(t *testing.T) {
	t.Parallel()

	samples := []float64{5, 1, 4, 2, 3}
	s := Summarize(samples)
	require.Equal(t, Summary{Count: 5, Mean: 3, P50: 3, P95: 5, P99: 5, Max: 5}, s)
	require.Equal(t, []float64{5, 1, 4, 2, 3}, samples, "the caller's slice is not reordered")
	require.Equal(t, Summary{}, Summarize(nil))
}
