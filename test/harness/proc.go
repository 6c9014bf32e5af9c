package harness

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ProcSample is what /proc says about one process at one moment: what a
// long-running relay must not grow.
type ProcSample struct {
	RSSKiB  int64
	Threads int
	FDs     int
}

// SampleProcess reads pid's resident set size and thread count from
// /proc/<pid>/status and counts its open file descriptors in /proc/<pid>/fd.
func SampleProcess(pid int) (ProcSample, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ProcSample{}, fmt.Errorf("sample process %d: %w", pid, err)
	}
	s, err := ParseProcStatus(data)
	if err != nil {
		return ProcSample{}, fmt.Errorf("sample process %d: %w", pid, err)
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return ProcSample{}, fmt.Errorf("sample process %d: open files: %w", pid, err)
	}
	s.FDs = len(fds)
	return s, nil
}

// ParseProcStatus takes VmRSS (KiB) and Threads from the text of
// /proc/<pid>/status (FDs stays 0).
func ParseProcStatus(data []byte) (ProcSample, error) {
	var s ProcSample
	var haveRSS, haveThreads bool
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(value)
		if len(fields) == 0 {
			continue
		}
		switch key {
		case "VmRSS":
			n, err := strconv.ParseInt(fields[0], 10, 64)
			if err != nil {
				return ProcSample{}, fmt.Errorf("parse VmRSS %q: %w", strings.TrimSpace(value), err)
			}
			s.RSSKiB, haveRSS = n, true
		case "Threads":
			n, err := strconv.Atoi(fields[0])
			if err != nil {
				return ProcSample{}, fmt.Errorf("parse Threads %q: %w", strings.TrimSpace(value), err)
			}
			s.Threads, haveThreads = n, true
		}
	}
	if !haveRSS || !haveThreads {
		// A zombie's status has neither.
		return ProcSample{}, fmt.Errorf("no VmRSS or Threads line in the process status (has it exited?)")
	}
	return s, nil
}

// ThreadNames counts pid's threads by name (/proc/<pid>/task/*/comm, at
// most 15 characters: GStreamer names streaming threads after their pad,
// GLib's pools "pool-N", Go's runtime threads carry the process's name), so
// that a thread count that moved can be told apart: a pool that grew or a
// streaming thread that was never joined. A thread that ends while it is
// read is skipped.
func ThreadNames(pid int) (map[string]int, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/comm", pid))
	if err != nil || len(tasks) == 0 {
		return nil, fmt.Errorf("threads of process %d: none found (has it exited?)", pid)
	}
	names := map[string]int{}
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		names[strings.TrimSpace(string(b))]++
	}
	return names, nil
}
