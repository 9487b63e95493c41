package bench

import (
	"os"
	"testing"

	"github.com/prometheus/procfs"
	"github.com/stretchr/testify/require"
)

func TestMachineCPU(t *testing.T) {
	t.Parallel()

	m := machineCPU(procfs.CPUStat{User: 1, System: 0.5, Idle: 8, Iowait: 0.5, Guest: 0.3})
	require.InDelta(t, 1.5, m.Busy, 1e-9)
	require.InDelta(t, 10.0, m.Total, 1e-9)
}

func TestWithChildren(t *testing.T) {
	t.Parallel()

	require.InDelta(t, 3.4, withChildren(procfs.ProcStat{UTime: 250, STime: 75, CUTime: 10, CSTime: 5}), 1e-9)
	require.InDelta(t, 3.25, withChildren(procfs.ProcStat{UTime: 250, STime: 75, CUTime: -1}), 1e-9)
}

func TestReadProcStatSelf(t *testing.T) {
	t.Parallel()

	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc on this system")
	}
	s, err := ReadProcStat(os.Getpid())
	require.NoError(t, err)
	require.Positive(t, s.PeakRSSBytes)
	require.GreaterOrEqual(t, s.PeakRSSBytes, s.RSSBytes)
	require.Positive(t, CommandCPUSeconds("bench.test")+CommandCPUSeconds(procComm(t)))
	m, err := ReadMachineCPU()
	require.NoError(t, err)
	require.Greater(t, m.Total, m.Busy)
}

func procComm(t *testing.T) string {
	b, err := os.ReadFile("/proc/self/comm")
	require.NoError(t, err)
	return string(b[:len(b)-1])
}
