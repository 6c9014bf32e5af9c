package main

import (
	"bufio"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kvsrelay/kvsrelay/test/harness"
	"github.com/kvsrelay/kvsrelay/test/servers"
)

// rebuildWarmup rebuilds happen before the "before" sample, so lazy
// one-time allocations (Go runtime, first child, caches, the first
// connections' sessions) are not counted as growth.
const rebuildWarmup = 20

// memHoldSource is the source the host switches to when the bench samples:
// it streams until told to end, so the rebuilds stop and every stopped
// instance can be freed. Both samples are taken holding it, so it is in
// both and cancels out.
const memHoldSource = "videotestsrc name=memhold is-live=true ! capsfilter caps=video/x-raw,width=64,height=48,framerate=5/1"

// freeBound is how long the bench waits, once the rebuilds stopped, for
// reconnectbin's stats to say that only the current source instance is
// still allocated. A stopped instance is kept a few seconds (see
// reconnectbin's retire) and freed at the next collection; more than a
// minute means instances leak.
const freeBound = 60 * time.Second

// The goal of the memory scenario: what 1,000 rebuilds may add at most.
const (
	goalRSSMiB  = 5.0
	goalThreads = 0
	goalFDs     = 0
)

//go:embed memhost.py
var memHostScript []byte

// memorySource is one source chain the memory scenario rebuilds.
type memorySource struct {
	name     string
	chain    string
	rebuilds int
}

// memoryScenario rebuilds reconnectbin's source over and over in one
// process and compares RSS, threads and fds before and after: a source
// that ends after one frame (no network), and network sources
// (tcpclientsrc, souphttpsrc with hlsdemux, each with decodebin) against
// local servers that send a short clip and end the stream, so that leaked
// sockets, sessions and streaming threads of network elements show. Both
// samples are taken at rest, once the rebuilds have stopped and every
// stopped instance has been freed (measured by reconnectbin's
// instances-allocated), so that instances still on their way out are not
// counted as growth.
func (b *Bench) memoryScenario(s *scope) ([]Table, error) {
	tm := b.timing()
	dir := s.TempDir()
	clip, err := b.makeClip(dir, 3)
	if err != nil {
		return nil, err
	}
	clips, err := startClipServers(clip)
	if err != nil {
		return nil, err
	}
	defer clips.Close()
	script := filepath.Join(dir, "memhost.py")
	if err := os.WriteFile(script, memHostScript, 0o644); err != nil {
		return nil, fmt.Errorf("write the memory scenario's host: %w", err)
	}
	sources := []memorySource{
		{"videotestsrc num-buffers=1", "videotestsrc num-buffers=1", tm.rebuilds},
		{"tcpclientsrc ! tsdemux ! decodebin", fmt.Sprintf("tcpclientsrc host=127.0.0.1 port=%d ! tsdemux ! decodebin", clips.TCPPort()), tm.netRebuilds},
		{"souphttpsrc ! hlsdemux ! decodebin", fmt.Sprintf("souphttpsrc location=%s ! hlsdemux ! decodebin", clips.PlaylistURL()), tm.netRebuilds},
	}
	t := Table{
		Title: "Memory: one process before and after many rebuilds of its source, both sampled at rest",
		Columns: []string{"Source", "Metric", "rebuilds (count)", "before median (value)", "after median (value)",
			"change median (value)", "change p90 (value)", "goal: change at most (value)", "meets goal"},
		Notes: []string{
			fmt.Sprintf("reconnectbin name=rb source=\"...\" retry-delay=0 max-retry-delay=0 on-caps-change=pass ! fakesink, %d repetition(s) per source, one process each: every end of stream is followed by a rebuild. The process is Debian's python3 running the pipeline as gst-launch-1.0 would (test/bench/memhost.py), because it must also change reconnectbin's source while running.", b.cfg.Reps),
			fmt.Sprintf("Sampling at rest: the source is switched to a live videotestsrc that streams until told to end, the bench reads reconnectbin's stats until instances-allocated is 1 (only that source left: every stopped instance has been freed, measured rather than waited for) and samples /proc/<pid>/status and /proc/<pid>/fd. It does so after %d rebuilds, after a warm-up round of the given number of rebuilds, and after as many again: \"before\" and \"after\" are the last two, so the change is what a second round of rebuilds leaves behind (a leak), not the heap the first round grows into and keeps (\"RSS over the warm-up round\"). \"Wait for stopped instances to be freed\" is how long the last round's took after its last rebuild (reconnectbin lets a stopped instance go at once; it is freed when the last reference to it is dropped, some by Go's garbage collector).", rebuildWarmup),
			fmt.Sprintf("RSS is sampled after glibc's malloc_trim, so that it counts memory still allocated, not free memory the C allocator kept from the peak (up to 5 s of stopped instances at once); \"RSS before malloc_trim\" is the same moment without it. Go's heap is left to its own scavenger. Goal: over 1,000 rebuilds RSS grows by at most %.0f MiB, and threads and fds do not grow; \"meets goal\" compares the p90 change with it (with fewer rebuilds, as with -quick, the goal is still that of 1,000).", goalRSSMiB),
			fmt.Sprintf("The network sources connect to local servers (Go, in the bench) that send a %d-frame 64x48 H.264 clip and end the stream: the TCP server closes the connection after the clip, the HLS server serves a finished (VOD) playlist of one segment. Each rebuild opens a new connection (souphttpsrc: two requests, playlist and segment) and builds new demuxer and decoder threads.", 3),
		},
	}
	for _, src := range sources {
		if err := b.memoryRuns(script, src, &t); err != nil {
			return []Table{t}, err
		}
	}
	return []Table{t}, nil
}

// memoryRuns measures one source over the repetitions and adds its rows.
func (b *Bench) memoryRuns(script string, src memorySource, t *Table) error {
	n := src.rebuilds
	pipeline := `reconnectbin name=rb source="` + src.chain + `" retry-delay=0 max-retry-delay=0 on-caps-change=pass ! fakesink`
	type metric struct {
		name          string
		decimals      int
		goal          float64
		before, after []Sample
		change        []Sample
	}
	metrics := []*metric{{name: "RSS (MiB)", decimals: 1, goal: goalRSSMiB}, {name: "threads", goal: goalThreads}, {name: "open fds", goal: goalFDs},
		{name: "RSS before malloc_trim (MiB)", decimals: 1, goal: math.NaN()},
		{name: "RSS over the warm-up round (MiB)", decimals: 1, goal: math.NaN()}}
	var rates, waits []Sample
	var threadMoves []string
	for rep := 1; rep <= b.cfg.Reps; rep++ {
		b.progress("memory: %s: %d rebuilds, rep %d/%d", src.name, n, rep, b.cfg.Reps)
		host, err := startMemHost(script, pipeline, b.env)
		if err != nil {
			return fmt.Errorf("%s: %w", src.name, err)
		}
		first, before, after, rate, wait, err := b.memoryRun(host, src.chain, n)
		host.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", src.name, err)
		}
		rates = append(rates, Sample{Value: rate})
		waits = append(waits, Sample{Value: wait.Seconds()})
		if moved := threadChange(before.threadNames, after.threadNames); moved != "" {
			threadMoves = append(threadMoves, fmt.Sprintf("rep %d: %s", rep, moved))
		}
		values := [][2]float64{
			{float64(before.trimmed.RSSKiB) / 1024, float64(after.trimmed.RSSKiB) / 1024},
			{float64(before.trimmed.Threads), float64(after.trimmed.Threads)},
			{float64(before.trimmed.FDs), float64(after.trimmed.FDs)},
			{float64(before.untrimmedRSSKiB) / 1024, float64(after.untrimmedRSSKiB) / 1024},
			{float64(first.trimmed.RSSKiB) / 1024, float64(before.trimmed.RSSKiB) / 1024},
		}
		for i, v := range values {
			metrics[i].before = append(metrics[i].before, Sample{Value: v[0]})
			metrics[i].after = append(metrics[i].after, Sample{Value: v[1]})
			metrics[i].change = append(metrics[i].change, Sample{Value: v[1] - v[0]})
		}
	}
	for _, m := range metrics {
		bm, ok := median(m.before)
		am, _ := median(m.after)
		cm, _ := median(m.change)
		cp, _ := p90(m.change)
		meets := ""
		switch {
		case math.IsNaN(m.goal):
		case cp.Value > m.goal:
			meets = "no"
		default:
			meets = "yes"
		}
		t.AddRow(src.name, m.name, fmt.Sprint(n), formatSample(bm, ok, m.decimals), formatSample(am, ok, m.decimals),
			formatSample(cm, ok, m.decimals), formatSample(cp, ok, m.decimals), formatSample(Sample{Value: m.goal}, true, m.decimals), meets)
	}
	rm, ok := median(rates)
	t.AddRow(src.name, "rebuilds per second", fmt.Sprint(n), naCell, formatSample(rm, ok, 0), naCell, naCell, naCell, "")
	wm, ok := median(waits)
	t.AddRow(src.name, "wait for stopped instances to be freed (s)", fmt.Sprint(n), naCell, formatSample(wm, ok, 1), naCell, naCell, naCell, "")
	if len(threadMoves) > 0 {
		t.Notes = append(t.Notes, fmt.Sprintf("%s: threads by name (/proc/<pid>/task/*/comm) that differ between before and after: %s.", src.name, strings.Join(threadMoves, "; ")))
	}
	return nil
}

// memoryRun is one repetition: warm up, sample at rest, rebuild n times
// (the warm-up round), sample at rest, rebuild n times again, sample at
// rest. It returns the three samples, the rate of the measured round and
// how long its stopped instances took to be freed after its last rebuild.
func (b *Bench) memoryRun(h *memHost, chain string, n int) (first, before, after memSample, rate float64, wait time.Duration, err error) {
	if err = h.waitRecovered(b, rebuildWarmup); err != nil {
		return
	}
	if first, _, err = h.sampleAtRest(b); err != nil {
		return
	}
	round := func() (float64, error) {
		base := h.recovered()
		if _, err := h.call("source " + chain); err != nil {
			return 0, err
		}
		if _, err := h.call("end"); err != nil {
			return 0, err
		}
		start := time.Now()
		if err := h.waitRecovered(b, base+n); err != nil {
			return 0, err
		}
		return float64(n) / time.Since(start).Seconds(), nil
	}
	if _, err = round(); err != nil {
		return
	}
	if before, _, err = h.sampleAtRest(b); err != nil {
		return
	}
	if rate, err = round(); err != nil {
		return
	}
	after, wait, err = h.sampleAtRest(b)
	return
}

// memHost is the memory scenario's host process (memhost.py).
type memHost struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	stderr  *tailWriter
	replies chan string
	exited  chan struct{}

	mu      sync.Mutex
	count   int    // reconnectbin-recovered messages so far
	failure string // the host's "error ..." line, if any
}

// startPythonHost starts one of the bench's python3 hosts (script and its
// arguments) in its own process group, with its stdin to write commands
// to, a scanner over its stdout lines and the tail of its stderr.
func startPythonHost(env []string, script string, args ...string) (cmd *exec.Cmd, stdin io.WriteCloser, stdout *bufio.Scanner, stderr *tailWriter, err error) {
	cmd = exec.Command(servers.SystemPython, append([]string{script}, args...)...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr = &tailWriter{max: 4 << 10}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if stdin, err = cmd.StdinPipe(); err != nil {
		return nil, nil, nil, nil, err
	}
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("start %s %s (Debian's python3 with python3-gst-1.0, make deps): %w", servers.SystemPython, script, err)
	}
	stdout = bufio.NewScanner(out)
	stdout.Buffer(make([]byte, 64<<10), 1<<20)
	return cmd, stdin, stdout, stderr, nil
}

func startMemHost(script, pipeline string, env []string) (*memHost, error) {
	cmd, stdin, sc, stderr, err := startPythonHost(env, script, pipeline)
	if err != nil {
		return nil, err
	}
	h := &memHost{cmd: cmd, stdin: stdin, stderr: stderr, replies: make(chan string, 16), exited: make(chan struct{})}
	go func() {
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "recovered "):
				h.mu.Lock()
				h.count++
				h.mu.Unlock()
			case strings.HasPrefix(line, "error "):
				h.mu.Lock()
				h.failure = strings.TrimPrefix(line, "error ")
				h.mu.Unlock()
				h.replies <- line
			default:
				h.replies <- line
			}
		}
		_ = cmd.Wait()
		close(h.exited)
	}()
	return h, nil
}

func (h *memHost) recovered() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.count
}

// failed says why the host stopped working ("" while it works): its error
// line, else how it exited.
func (h *memHost) failed() string {
	h.mu.Lock()
	failure := h.failure
	h.mu.Unlock()
	if failure != "" {
		return failure
	}
	select {
	case <-h.exited:
		return "the host exited: " + lastLine(h.stderr.String())
	default:
		return ""
	}
}

// why is failed, for a host that did not answer.
func (h *memHost) why() string {
	if f := h.failed(); f != "" {
		return f
	}
	return "no answer"
}

// call sends one command and returns its reply line.
func (h *memHost) call(command string) (string, error) {
	if _, err := io.WriteString(h.stdin, command+"\n"); err != nil {
		return "", fmt.Errorf("%s: %s", strings.Fields(command)[0], h.why())
	}
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	select {
	case reply := <-h.replies:
		if text, failed := strings.CutPrefix(reply, "error "); failed {
			return "", errors.New(text)
		}
		return reply, nil
	case <-h.exited:
		return "", fmt.Errorf("%s: %s", strings.Fields(command)[0], h.why())
	case <-timer.C:
		return "", fmt.Errorf("%s: no answer in 30 s", strings.Fields(command)[0])
	}
}

// waitRecovered waits until reconnectbin has rebuilt count times in all.
func (h *memHost) waitRecovered(b *Bench, count int) error {
	if !waitFor(b.ctx, 5*time.Minute, func() bool { return h.recovered() >= count || h.failed() != "" }) || h.recovered() < count {
		return fmt.Errorf("reconnectbin rebuilt %d of %d times: %s", h.recovered(), count, h.why())
	}
	return nil
}

// allocatedField reads instances-allocated from a printed reconnectbin-stats.
var allocatedField = regexp.MustCompile(`instances-allocated=\(g?int64\)(-?\d+)`)

// sampleAtRest switches to the hold source, waits until it is the only
// source instance still allocated, and samples the process. It returns how
// long the stopped instances took to be freed after the last rebuild.
func (h *memHost) sampleAtRest(b *Bench) (memSample, time.Duration, error) {
	if _, err := h.call("source " + memHoldSource); err != nil {
		return memSample{}, 0, err
	}
	var holding bool
	var rebuilt time.Time
	allocated := -1
	var callErr error
	freed := waitFor(b.ctx, freeBound, func() bool {
		reply, err := h.call("stats")
		if err != nil {
			callErr = err
			return true
		}
		wasHolding := holding
		holding = strings.HasPrefix(reply, "stats holding=1 ")
		if holding && !wasHolding {
			rebuilt = time.Now()
		}
		if m := allocatedField.FindStringSubmatch(reply); m != nil {
			allocated, _ = strconv.Atoi(m[1])
		}
		return holding && allocated == 1
	})
	switch {
	case callErr != nil:
		return memSample{}, 0, callErr
	case !freed && !holding:
		return memSample{}, 0, fmt.Errorf("reconnectbin did not switch to the hold source within %v", freeBound)
	case !freed:
		return memSample{}, 0, fmt.Errorf("%d source instances still allocated %v after the rebuilds stopped, want 1 (the current one)", allocated, freeBound)
	}
	wait := time.Since(rebuilt)
	untrimmed, err := harness.SampleProcess(h.cmd.Process.Pid)
	if err != nil {
		return memSample{}, 0, err
	}
	if _, err := h.call("trim"); err != nil {
		return memSample{}, 0, err
	}
	trimmed, err := harness.SampleProcess(h.cmd.Process.Pid)
	if err != nil {
		return memSample{}, 0, err
	}
	names, err := harness.ThreadNames(h.cmd.Process.Pid)
	return memSample{trimmed: trimmed, untrimmedRSSKiB: untrimmed.RSSKiB, threadNames: names}, wait, err
}

// digitRun is a run of digits in a thread name.
var digitRun = regexp.MustCompile(`[0-9]+`)

// memSample is the process at rest: after malloc_trim, and its RSS before.
type memSample struct {
	trimmed         harness.ProcSample
	untrimmedRSSKiB int64
	threadNames     map[string]int // thread name -> count, to say which threads moved
}

// threadChange says which kinds of thread differ in count from before to
// after ("python# +1, pool-# -1"), in name order; "" when none do. Digits
// are folded to one "#": GStreamer names a streaming thread after its
// element ("souphttpsrc2047" is souphttpsrc2047:src cut to 15 characters),
// and a pooled thread keeps the name of the last task it ran, so the same
// idle thread shows a new number after every rebuild.
func threadChange(before, after map[string]int) string {
	fold := func(in map[string]int) map[string]int {
		out := map[string]int{}
		for n, c := range in {
			out[digitRun.ReplaceAllString(n, "#")] += c
		}
		return out
	}
	before, after = fold(before), fold(after)
	names := map[string]bool{}
	for n := range before {
		names[n] = true
	}
	for n := range after {
		names[n] = true
	}
	var moves []string
	for _, n := range slices.Sorted(maps.Keys(names)) {
		if d := after[n] - before[n]; d != 0 {
			moves = append(moves, fmt.Sprintf("%s %+d", n, d))
		}
	}
	return strings.Join(moves, ", ")
}

// Close ends the host (closing stdin stops its main loop) and reaps it.
func (h *memHost) Close() {
	_ = h.stdin.Close()
	select {
	case <-h.exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-h.cmd.Process.Pid, syscall.SIGKILL)
		<-h.exited
	}
}
