package config_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/config"
)

// Numbers that parse but make no sense are refused, naming the variable, never wrapped.
func TestFromEnvRefusesNonFiniteAndOutOfRange(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, value string }{
		{"ONFLEET_RATE_LIMIT", "NaN"},
		{"ONFLEET_RATE_LIMIT", "nan"},
		{"ONFLEET_RATE_LIMIT", "Inf"},
		{"ONFLEET_RATE_LIMIT", "+Inf"},
		{"ONFLEET_RATE_LIMIT", "-Infinity"},
		{"ONFLEET_RATE_LIMIT", "1e400"},                  // overflows to +Inf
		{"WAYBILL_DB_MAX_CONNS", "4294967300"},           // wrapped to 4 as an int32
		{"WAYBILL_DB_MAX_CONNS", "2147483648"},           // one past int32
		{"WAYBILL_DB_MAX_CONNS", "99999999999999999999"}, // past int64
		{"WAYBILL_DB_MAX_CONNS", "3"},
		{"WAYBILL_DISPATCH_WORKERS", "10001"}, // River's limit per queue is 10,000
		{"WAYBILL_DISPATCH_WORKERS", "-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			t.Parallel()
			m := minimal()
			m[tt.name] = tt.value
			_, err := config.FromEnv(env(m))
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.name+": ")
		})
	}

	m := minimal()
	m["WAYBILL_DB_MAX_CONNS"] = "2147483647"
	m["WAYBILL_DISPATCH_WORKERS"] = "10000"
	m["ONFLEET_RATE_LIMIT"] = "0.5"
	m["WAYBILL_METRICS_ADDR"] = "127.0.0.1:9090"
	c, err := config.FromEnv(env(m))
	require.NoError(t, err)
	require.Equal(t, int32(2147483647), c.DBMaxConns)
	require.Equal(t, 10000, c.DispatchWorkers)
	require.InDelta(t, 0.5, c.OnfleetRateLimit, 0)
	require.Equal(t, "127.0.0.1:9090", c.MetricsAddr)
}
