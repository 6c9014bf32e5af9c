package servers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// ProbedStream is one stream as ffprobe reports it.
type ProbedStream struct {
	CodecType string `json:"codec_type"` // "video", "audio"
	CodecName string `json:"codec_name"` // "h264", "aac"
	Width     int    `json:"width"`
	Height    int    `json:"height"`
}

// FFProbe runs ffprobe on url (tcp://, srt://, rtsp://, http://...m3u8) and
// returns its streams. extraArgs go before the URL, e.g. "-rtsp_transport",
// "tcp". ffprobe runs in its own process group and is killed with it when
// ctx ends.
func FFProbe(ctx context.Context, url string, extraArgs ...string) ([]ProbedStream, error) {
	args := []string{"-v", "error", "-analyzeduration", "1500000", "-of", "json", "-show_entries", "stream=codec_type,codec_name,width,height"}
	args = append(args, extraArgs...)
	args = append(args, url)
	cmd := exec.CommandContext(ctx, "ffprobe", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("ffprobe %s: %w: %s", url, err, lastLines(stderr.String(), 5))
	}
	var out struct {
		Streams []ProbedStream `json:"streams"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return nil, fmt.Errorf("ffprobe %s: parse output: %w", url, err)
	}
	return out.Streams, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
