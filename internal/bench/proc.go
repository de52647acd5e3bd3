package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// processCPU is the user+system CPU time this process has used (every thread).
func processCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// syscalls is how many read and write system calls this process has made (every thread;
// syscr and syscw of /proc/self/io). On this kind of machine a loopback write costs
// several microseconds, most of it the receiver's TCP path and wake-up, so the count per
// request says much of what a hop costs.
type syscalls struct{ reads, writes int64 }

func countSyscalls() (syscalls, error) { return pidSyscalls("self") }

// pidSyscalls is countSyscalls of process pid ("self" for this one).
func pidSyscalls(pid string) (syscalls, error) {
	data, err := os.ReadFile("/proc/" + pid + "/io")
	if err != nil {
		return syscalls{}, err
	}
	var c syscalls
	found := 0
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		var dst *int64
		switch k {
		case "syscr":
			dst = &c.reads
		case "syscw":
			dst = &c.writes
		default:
			continue
		}
		if *dst, err = strconv.ParseInt(strings.TrimSpace(v), 10, 64); err != nil {
			return syscalls{}, fmt.Errorf("/proc/%s/io %s: %w", pid, k, err)
		}
		found++
	}
	if found != 2 {
		return syscalls{}, fmt.Errorf("/proc/%s/io has no syscr and syscw", pid)
	}
	return c, nil
}

func (c syscalls) sub(d syscalls) syscalls { return syscalls{c.reads - d.reads, c.writes - d.writes} }
func (c syscalls) add(d syscalls) syscalls { return syscalls{c.reads + d.reads, c.writes + d.writes} }

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every Linux
// architecture Go supports (reading it properly needs cgo's sysconf).
const clockTicks = 100

// childCPU returns the user+system CPU time of the child processes of this one whose
// command name is in names (e.g. kube-apiserver and etcd, which kubeenv started).
func childCPU(names ...string) (time.Duration, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	self := os.Getpid()
	var total time.Duration
	found := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(pid)
		if err != nil {
			continue // exited meanwhile, or not a process
		}
		if st.ppid != self || !slices.Contains(names, st.comm) {
			continue
		}
		total += st.cpu
		found++
	}
	if found != len(names) {
		return 0, fmt.Errorf("found %d of the child processes %v", found, names)
	}
	return total, nil
}

// pidCPU is the user+system CPU time process pid has used (every thread).
func pidCPU(pid int) (time.Duration, error) {
	st, err := readStat(pid)
	return st.cpu, err
}

// procStat is what the bench reads of /proc/<pid>/stat.
type procStat struct {
	comm string
	ppid int
	cpu  time.Duration // utime + stime
}

func readStat(pid int) (procStat, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseStat(data)
}

// parseStat reads "pid (comm) state ppid … utime stime …"; comm may hold spaces and
// parentheses, so the fields are counted from its last ')'.
func parseStat(data []byte) (procStat, error) {
	open, closing := bytes.IndexByte(data, '('), bytes.LastIndexByte(data, ')')
	if open < 0 || closing < open {
		return procStat{}, fmt.Errorf("/proc stat %q: no command name", data)
	}
	f := strings.Fields(string(data[closing+1:]))
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("/proc stat: %d fields after the command name", len(f))
	}
	ppid, err0 := strconv.Atoi(f[1])
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err0, err1, err2); err != nil {
		return procStat{}, fmt.Errorf("/proc stat: %w", err)
	}
	return procStat{comm: string(data[open+1 : closing]), ppid: ppid, cpu: time.Duration(utime+stime) * time.Second / clockTicks}, nil
}

// settledRSS collects garbage and returns freed pages to the OS before reading the
// resident set size, so that the reading reflects live memory rather than whatever the
// heap once grew to.
func settledRSS() (int64, error) {
	runtime.GC()
	debug.FreeOSMemory()
	return rss()
}

// rss is VmRSS from /proc/self/status, in bytes.
func rss() (int64, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("unexpected VmRSS line %q", sc.Text())
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		return kb << 10, err
	}
	return 0, fmt.Errorf("no VmRSS in /proc/self/status")
}

// loadAverage is the first field of /proc/loadavg, or "?": the machine is shared, and a
// reader of the numbers needs to know how busy it was.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
