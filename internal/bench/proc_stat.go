package bench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTicks is Linux's USER_HZ, the unit of CPU times in /proc: 100 on every mainstream
// architecture (reading sysconf(_SC_CLK_TCK) would need cgo).
const clockTicks = 100

// ProcStat is what /proc says about one process.
type ProcStat struct {
	CPUSeconds   float64 // user + system, including waited-for children
	RSSBytes     int64   // resident set now
	PeakRSSBytes int64   // high-water mark of the resident set (VmHWM)
}

// ReadProcStat reads /proc/<pid>/stat and status.
func ReadProcStat(pid int) (ProcStat, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcStat{}, err
	}
	ticks, _, err := parseStat(stat)
	if err != nil {
		return ProcStat{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ProcStat{}, err
	}
	rss, _ := statusKB(status, "VmRSS")
	hwm, _ := statusKB(status, "VmHWM")
	return ProcStat{CPUSeconds: float64(ticks) / clockTicks, RSSBytes: rss * 1024, PeakRSSBytes: hwm * 1024}, nil
}

// parseStat returns utime+stime+cutime+cstime (clock ticks) and the command name from a
// /proc/<pid>/stat line. The name is in parentheses and may itself hold spaces and ')', so
// fields are counted from the last ')'.
func parseStat(b []byte) (ticks uint64, comm string, err error) {
	open, closing := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || closing < open {
		return 0, "", fmt.Errorf("malformed stat line")
	}
	comm = string(b[open+1 : closing])
	// After ") ": field 3 (state) is fields[0]; utime is field 14, stime 15, cutime 16, cstime 17.
	fields := strings.Fields(string(b[closing+1:]))
	if len(fields) < 15 {
		return 0, "", fmt.Errorf("stat line has %d fields after the name", len(fields))
	}
	for _, f := range fields[11:15] {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, "", fmt.Errorf("cpu time %q: %w", f, err)
		}
		if v > 0 {
			ticks += uint64(v)
		}
	}
	return ticks, comm, nil
}

// statusKB reads a "Key:   1234 kB" line of /proc/<pid>/status.
func statusKB(b []byte, key string) (int64, error) {
	for line := range strings.SplitSeq(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || name != key {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			break
		}
		return strconv.ParseInt(fields[0], 10, 64)
	}
	return 0, fmt.Errorf("no %s in status", key)
}

// CommandCPUSeconds sums the CPU time of every process whose command name is comm, e.g. all of
// Postgres's processes. Backends that exited were waited for by the postmaster, so their time
// is in its cutime/cstime: the sum over an interval stays right as connections come and go.
func CommandCPUSeconds(comm string) float64 {
	paths, _ := filepath.Glob("/proc/[0-9]*/stat")
	var ticks uint64
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // exited meanwhile
		}
		t, c, err := parseStat(b)
		if err == nil && c == comm {
			ticks += t
		}
	}
	return float64(ticks) / clockTicks
}

// MachineCPU is the machine's CPU time in seconds since boot, all cores: busy and total.
type MachineCPU struct{ Busy, Total float64 }

// ReadMachineCPU reads the first line of /proc/stat.
func ReadMachineCPU() (MachineCPU, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return MachineCPU{}, err
	}
	return parseMachineCPU(b)
}

func parseMachineCPU(b []byte) (MachineCPU, error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	fields := strings.Fields(string(line))
	if len(fields) < 6 || fields[0] != "cpu" {
		return MachineCPU{}, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var total, idle float64
	// user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
	for i, f := range fields[1:min(len(fields), 9)] {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return MachineCPU{}, fmt.Errorf("/proc/stat: %w", err)
		}
		total += v
		if i == 3 || i == 4 {
			idle += v
		}
	}
	return MachineCPU{Busy: (total - idle) / clockTicks, Total: total / clockTicks}, nil
}
