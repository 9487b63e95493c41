package bench

import (
	"fmt"

	"github.com/prometheus/procfs"
)

// clockTicks is Linux's USER_HZ, the unit of children's CPU times in /proc (procfs converts the
// process's own, not cutime/cstime): 100 on every mainstream architecture.
const clockTicks = 100

// ProcStat is what /proc says about one process.
type ProcStat struct {
	CPUSeconds   float64 // user + system, including waited-for children
	RSSBytes     int64   // resident set now
	PeakRSSBytes int64   // high-water mark of the resident set (VmHWM)
}

// ReadProcStat reads /proc/<pid>/stat and status.
func ReadProcStat(pid int) (ProcStat, error) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return ProcStat{}, err
	}
	p, err := fs.Proc(pid)
	if err != nil {
		return ProcStat{}, err
	}
	stat, err := p.Stat()
	if err != nil {
		return ProcStat{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	status, err := p.NewStatus()
	if err != nil {
		return ProcStat{}, fmt.Errorf("/proc/%d/status: %w", pid, err)
	}
	return ProcStat{CPUSeconds: withChildren(stat), RSSBytes: int64(status.VmRSS), PeakRSSBytes: int64(status.VmHWM)}, nil
}

// withChildren is a process's CPU seconds plus those of the children it waited for.
func withChildren(s procfs.ProcStat) float64 {
	return s.CPUTime() + float64(max(s.CUTime, 0)+max(s.CSTime, 0))/clockTicks
}

// CommandCPUSeconds sums the CPU time of every process whose command name is comm, e.g. all of
// Postgres's processes. Backends that exited were waited for by the postmaster, so their time
// is in its cutime/cstime: the sum over an interval stays right as connections come and go.
func CommandCPUSeconds(comm string) float64 {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return 0
	}
	procs, err := fs.AllProcs()
	if err != nil {
		return 0
	}
	var total float64
	for _, p := range procs {
		s, err := p.Stat()
		if err == nil && s.Comm == comm { // an error: it exited meanwhile
			total += withChildren(s)
		}
	}
	return total
}

// MachineCPU is the machine's CPU time in seconds since boot, all cores: busy and total.
type MachineCPU struct{ Busy, Total float64 }

// ReadMachineCPU reads the first line of /proc/stat.
func ReadMachineCPU() (MachineCPU, error) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return MachineCPU{}, err
	}
	st, err := fs.Stat()
	if err != nil {
		return MachineCPU{}, err
	}
	return machineCPU(st.CPUTotal), nil
}

// machineCPU: guest and guest_nice are already counted in user and nice.
func machineCPU(c procfs.CPUStat) MachineCPU {
	idle := c.Idle + c.Iowait
	total := c.User + c.Nice + c.System + c.Idle + c.Iowait + c.IRQ + c.SoftIRQ + c.Steal
	return MachineCPU{Busy: total - idle, Total: total}
}
