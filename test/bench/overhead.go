package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// runCPU runs gst-launch-1.0 args to completion and returns the child's CPU
// time (user+sys over all its threads, from its rusage).
func (b *Bench) runCPU(args []string, timeout time.Duration) (time.Duration, error) {
	cmd := exec.CommandContext(b.ctx, "gst-launch-1.0", args...)
	cmd.Env = b.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = time.Second
	out := &tailWriter{max: 2 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	timer := time.AfterFunc(timeout, func() {
		if cmd.Process != nil {
			_ = cmd.Process.Kill()
		}
	})
	defer timer.Stop()
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("gst-launch-1.0 %s: %w: %s", strings.Join(args, " "), err, lastLine(out.String()))
	}
	return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}

// overheadScenario pushes the same frames through a pipeline with and
// without reconnectbin around the source and compares CPU seconds. Each
// pipeline runs with two frame counts: the difference is the per-frame
// cost (the slope), what is left at zero frames the fixed cost of starting
// and stopping the process (loading the plugin and its Go runtime).
func (b *Bench) overheadScenario(s *scope) ([]Table, error) {
	counts := b.timing().overheadFrames
	n1, n2 := counts[0], counts[1]
	// A passthrough frame costs a few microseconds, so that path runs
	// tsRepeat times as many frames: the recording played tsRepeat times
	// over in one file (MPEG-TS concatenates; the demuxer takes the
	// timestamps jumping back as a discontinuity).
	const tsRepeat = 8
	reps := b.cfg.Reps + 2 // cheap, and CPU time is noisier than it looks
	if b.cfg.Quick {
		reps = 1
	}
	dir := s.TempDir()
	tsFile := func(n int) string { return filepath.Join(dir, fmt.Sprintf("1080p-%d.ts", n)) }
	for _, n := range counts {
		b.progress("overhead: encoding %d 1080p frames to MPEG-TS for the passthrough case", n)
		if _, err := b.runCPU([]string{"-q", "videotestsrc", fmt.Sprintf("num-buffers=%d", n), "!",
			"video/x-raw,width=1920,height=1080,framerate=25/1", "!", "x264enc", "speed-preset=ultrafast", "tune=zerolatency", "key-int-max=25", "!",
			"h264parse", "!", "mpegtsmux", "!", "filesink", "location=" + tsFile(n)}, 5*time.Minute); err != nil {
			return nil, err
		}
	}
	recording, err := os.ReadFile(tsFile(n2))
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(tsFile(n2*tsRepeat), bytes.Repeat(recording, tsRepeat), 0o644); err != nil {
		return nil, err
	}
	cases := []struct {
		name   string
		counts [2]int
		chain  func(n int) string
	}{
		{"raw 1080p frames (videotestsrc pattern=black ! fakesink)", counts, func(n int) string {
			return fmt.Sprintf("videotestsrc num-buffers=%d pattern=black ! capsfilter caps=video/x-raw,width=1920,height=1080", n)
		}},
		{"1080p H.264 frames, MPEG-TS passthrough (filesrc ! tsdemux ! h264parse ! fakesink)", [2]int{n1, n2 * tsRepeat}, func(n int) string {
			return fmt.Sprintf("filesrc location=%s ! tsdemux ! h264parse", tsFile(n))
		}},
	}
	t := Table{
		Title: "Data-path overhead: CPU per frame with and without reconnectbin around the source",
		Columns: []string{"Path", "frame counts", "without per frame (us)", "with reconnectbin per frame (us)", "per-frame ratio with/without (x)", "extra per frame (us)",
			"start-up without (s)", "start-up with reconnectbin (s)", "extra start-up (s)"},
		Notes: []string{
			fmt.Sprintf("CPU time is user+sys of the whole gst-launch-1.0 process from its rusage, median of %d runs per frame count, with and without alternating. Per frame: the slope between the two frame counts, (CPU(many) - CPU(few)) / (many - few). Start-up: what is left at zero frames, CPU(few) - few x per frame: starting and stopping the process, for reconnectbin including loading the plugin and its Go runtime, paid once per process and not per frame.", reps),
			fmt.Sprintf("The passthrough path costs microseconds per frame, so it runs %d times as many frames (a %d-frame recording repeated in one file); its per-frame numbers are near what CPU accounting on a shared machine resolves.", tsRepeat, n2),
			"reconnectbin runs with restart-on-eos=false so that the end of the frames ends the pipeline.",
		},
	}
	for _, c := range cases {
		type point struct{ without, with []Sample }
		points := map[int]*point{}
		for rep := 1; rep <= reps; rep++ {
			for _, n := range c.counts {
				p := points[n]
				if p == nil {
					p = &point{}
					points[n] = p
				}
				b.progress("overhead: %d %s rep %d/%d", n, c.name, rep, reps)
				chain := c.chain(n)
				plain := append([]string{"-q"}, strings.Fields(chain)...)
				plain = append(plain, "!", "fakesink")
				wrapped := []string{"-q", "reconnectbin", `source="` + chain + `"`, "restart-on-eos=false", "!", "fakesink"}
				// Alternate the order so that drift (other load, thermal) hits
				// both sides alike.
				for i := 0; i < 2; i++ {
					useWrapped := (i == 1) != (rep%2 == 0)
					args := plain
					if useWrapped {
						args = wrapped
					}
					cpu, err := b.runCPU(args, 2*time.Minute)
					if err != nil {
						return nil, err
					}
					if useWrapped {
						p.with = append(p.with, Sample{Value: cpu.Seconds()})
					} else {
						p.without = append(p.without, Sample{Value: cpu.Seconds()})
					}
				}
			}
		}
		few, many := c.counts[0], c.counts[1]
		w1, _ := median(points[few].without)
		w2, _ := median(points[many].without)
		r1, _ := median(points[few].with)
		r2, _ := median(points[many].with)
		slopeW, fixedW := slope(few, many, w1.Value, w2.Value)
		slopeR, fixedR := slope(few, many, r1.Value, r2.Value)
		ratio := naCell
		if slopeW > 0 {
			ratio = fmt.Sprintf("%.2f", slopeR/slopeW)
		}
		t.AddRow(c.name, fmt.Sprintf("%d and %d", few, many), fmt.Sprintf("%.1f", slopeW*1e6), fmt.Sprintf("%.1f", slopeR*1e6), ratio, fmt.Sprintf("%.1f", (slopeR-slopeW)*1e6),
			fmt.Sprintf("%.3f", fixedW), fmt.Sprintf("%.3f", fixedR), fmt.Sprintf("%.3f", fixedR-fixedW))
	}
	return []Table{t}, nil
}

// slope fits a line through (few, cpuFew) and (many, cpuMany): the cost
// per frame and the fixed cost at zero frames.
func slope(few, many int, cpuFew, cpuMany float64) (perFrame, fixed float64) {
	perFrame = (cpuMany - cpuFew) / float64(many-few)
	return perFrame, cpuFew - perFrame*float64(few)
}
