package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ProcSample is what /proc says about one process at one moment.
type ProcSample struct {
	RSSKiB  int64
	Threads int
	FDs     int
}

// parseProcStatus reads VmRSS (KiB) and Threads from /proc/<pid>/status.
func parseProcStatus(data []byte) (rssKiB int64, threads int, err error) {
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
				return 0, 0, fmt.Errorf("parse VmRSS %q: %w", value, err)
			}
			rssKiB, haveRSS = n, true
		case "Threads":
			n, err := strconv.Atoi(fields[0])
			if err != nil {
				return 0, 0, fmt.Errorf("parse Threads %q: %w", value, err)
			}
			threads, haveThreads = n, true
		}
	}
	if !haveRSS || !haveThreads {
		return 0, 0, fmt.Errorf("process status has no VmRSS or Threads line (process exited?)")
	}
	return rssKiB, threads, nil
}

// sampleProc reads RSS, threads and open file descriptors of pid.
func sampleProc(pid int) (ProcSample, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ProcSample{}, fmt.Errorf("sample process %d: %w", pid, err)
	}
	rss, threads, err := parseProcStatus(data)
	if err != nil {
		return ProcSample{}, fmt.Errorf("sample process %d: %w", pid, err)
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return ProcSample{}, fmt.Errorf("sample process %d fds: %w", pid, err)
	}
	return ProcSample{RSSKiB: rss, Threads: threads, FDs: len(fds)}, nil
}
