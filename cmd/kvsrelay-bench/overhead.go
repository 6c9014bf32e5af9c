package main

import (
	"fmt"
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
// without reconnectbin around the source and compares CPU seconds.
func (b *Bench) overheadScenario(s *scope) ([]Table, error) {
	n := b.timing().overheadFrames
	reps := b.cfg.Reps + 2 // cheap, and CPU time is noisier than it looks
	if b.cfg.Quick {
		reps = 1
	}
	tsFile := filepath.Join(s.TempDir(), "1080p.ts")
	b.progress("overhead: encoding %d 1080p frames to MPEG-TS for the passthrough case", n)
	if _, err := b.runCPU([]string{"-q", "videotestsrc", fmt.Sprintf("num-buffers=%d", n), "!",
		"video/x-raw,width=1920,height=1080,framerate=25/1", "!", "x264enc", "speed-preset=ultrafast", "tune=zerolatency", "key-int-max=25", "!",
		"h264parse", "!", "mpegtsmux", "!", "filesink", "location=" + tsFile}, 5*time.Minute); err != nil {
		return nil, err
	}
	raw := fmt.Sprintf("videotestsrc num-buffers=%d pattern=black ! capsfilter caps=video/x-raw,width=1920,height=1080", n)
	ts := fmt.Sprintf("filesrc location=%s ! tsdemux ! h264parse", tsFile)
	cases := []struct {
		name  string
		chain string
	}{
		{fmt.Sprintf("%d raw 1080p frames (videotestsrc pattern=black ! fakesink)", n), raw},
		{fmt.Sprintf("%d 1080p H.264 frames, MPEG-TS passthrough (filesrc ! tsdemux ! h264parse ! fakesink)", n), ts},
	}
	t := Table{
		Title: "Data-path overhead: CPU seconds with and without reconnectbin around the source",
		Columns: []string{"Path", "without median (s)", "with reconnectbin median (s)", "without p90 (s)", "with reconnectbin p90 (s)",
			"ratio with/without (x)", "extra per frame (us)"},
		Notes: []string{
			"CPU time is user+sys of the whole gst-launch-1.0 process from its rusage, including start-up (loading the plugin and its Go runtime) and shutdown.",
			"reconnectbin runs with restart-on-eos=false so that the end of the frames ends the pipeline.",
		},
	}
	for _, c := range cases {
		var without, with []Sample
		for rep := 1; rep <= reps; rep++ {
			b.progress("overhead: %s rep %d/%d", c.name, rep, reps)
			plain := append([]string{"-q"}, strings.Fields(c.chain)...)
			plain = append(plain, "!", "fakesink")
			wrapped := []string{"-q", "reconnectbin", `source="` + c.chain + `"`, "restart-on-eos=false", "!", "fakesink"}
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
					with = append(with, Sample{Value: cpu.Seconds()})
				} else {
					without = append(without, Sample{Value: cpu.Seconds()})
				}
			}
		}
		wm, ok := median(without)
		rm, _ := median(with)
		wp, _ := p90(without)
		rp, _ := p90(with)
		perFrame := (rm.Value - wm.Value) / float64(n) * 1e6
		t.AddRow(c.name, formatSample(wm, ok, 3), formatSample(rm, ok, 3), formatSample(wp, ok, 3), formatSample(rp, ok, 3),
			formatRatio(rm, wm, ok), fmt.Sprintf("%.1f", perFrame))
	}
	return []Table{t}, nil
}
