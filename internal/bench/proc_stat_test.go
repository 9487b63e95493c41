package bench

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseStat(t *testing.T) {
	t.Parallel()

	// A real line's shape; the name holds a space and a ')'.
	line := []byte("4242 (post gres) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 10 5 20 0 1 0 123456 1000000 500 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n")
	ticks, comm, err := parseStat(line)
	require.NoError(t, err)
	require.Equal(t, "post gres) x", comm)
	require.Equal(t, uint64(250+75+10+5), ticks)

	_, _, err = parseStat([]byte("garbage"))
	require.Error(t, err)
	_, _, err = parseStat([]byte("1 (x) S 1 2"))
	require.Error(t, err)
}

func TestStatusKB(t *testing.T) {
	t.Parallel()

	status := []byte("Name:\twaybill\nVmPeak:\t 1500000 kB\nVmHWM:\t   81234 kB\nVmRSS:\t   60000 kB\n")
	hwm, err := statusKB(status, "VmHWM")
	require.NoError(t, err)
	require.Equal(t, int64(81234), hwm)
	_, err = statusKB(status, "VmSwap")
	require.Error(t, err)
}

func TestParseMachineCPU(t *testing.T) {
	t.Parallel()

	m, err := parseMachineCPU([]byte("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3\n"))
	require.NoError(t, err)
	require.InDelta(t, 1.5, m.Busy, 1e-9)
	require.InDelta(t, 10.0, m.Total, 1e-9)
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
}
