package bench

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCPUPerItemLine(t *testing.T) {
	t.Parallel()
	c := CPUUsage{WindowSeconds: 10, MachineBusy: 4, Postgres: 2, Serve: 1, Sandbox: 0.5, Bench: 0.3, Other: 0.2, Cores: 2}
	require.Equal(t,
		"2.00 ms per order (postgres 1.00, serve 0.50, sandbox 0.25, bench 0.15, other 0.10) → these 2 cores carry at most ~1000 orders/s",
		cpuPerItemLine(c, 2000, "order"))
	require.Equal(t, "—", cpuPerItemLine(c, 0, "order"), "nothing handled: no figure, not a division by zero")
	require.Equal(t, "—", cpuPerItemLine(CPUUsage{Cores: 2}, 10, "order"))
}
