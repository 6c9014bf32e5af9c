package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
)

// childEnv is base without AWS credentials or settings and without any
// GStreamer plugin/registry settings, plus the given GStreamer settings.
// Contenders never see AWS_* (nothing here talks to AWS) and load plugins
// only from the system folder and pluginDir, with their own registry.
func childEnv(base []string, pluginDir, systemDir, registry string) []string {
	var out []string
	for _, kv := range base {
		key, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(key, "AWS_"),
			strings.HasPrefix(key, "GST_PLUGIN_PATH"),
			strings.HasPrefix(key, "GST_PLUGIN_SYSTEM_PATH"),
			strings.HasPrefix(key, "GST_REGISTRY"):
			continue
		}
		out = append(out, kv)
	}
	out = append(out, "GST_REGISTRY="+registry, "GST_PLUGIN_SYSTEM_PATH_1_0="+systemDir)
	if pluginDir != "" {
		out = append(out, "GST_PLUGIN_PATH="+pluginDir)
	}
	return out
}

// gstSystemPluginDir asks pkg-config where GStreamer's own plugins live.
func gstSystemPluginDir() (string, error) {
	out, err := exec.Command("pkg-config", "--variable=pluginsdir", "gstreamer-1.0").Output()
	if err != nil {
		return "", fmt.Errorf("pkg-config --variable=pluginsdir gstreamer-1.0 (install libgstreamer1.0-dev): %w", err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", fmt.Errorf("pkg-config gave no GStreamer plugin folder")
	}
	return dir, nil
}

// resolvePluginDir picks the folder holding the libgstkvsrelay.so to
// measure: the flag, else $KVSRELAY_PLUGIN_DIR, else the shipped build of
// make build (build/), and only without one of those the test build
// ($KVSRELAY_TEST_PLUGIN_DIR, build-test/), which differs from the
// shipped one by the kvssink stand-in the bench never uses. An explicit
// choice (flag, $KVSRELAY_PLUGIN_DIR) that is wrong is an error.
func resolvePluginDir(flagValue string) (string, error) {
	candidates := []string{flagValue, os.Getenv("KVSRELAY_PLUGIN_DIR"), "build", os.Getenv("KVSRELAY_TEST_PLUGIN_DIR"), "build-test"}
	for i, dir := range candidates {
		if dir == "" {
			continue
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return "", fmt.Errorf("plugin dir %s: %w", dir, err)
		}
		if _, err := os.Stat(filepath.Join(abs, "libgstkvsrelay.so")); err == nil {
			return abs, nil
		} else if i < 2 {
			return "", fmt.Errorf("plugin dir %s has no libgstkvsrelay.so (run make build): %w", abs, err)
		}
	}
	return "", fmt.Errorf("no libgstkvsrelay.so found: pass -plugin-dir or set KVSRELAY_PLUGIN_DIR (run make build)")
}

var featureLine = regexp.MustCompile(`(?m)^  ([a-z][a-z0-9-]*): `)

// pluginElements lists the elements gst-inspect-1.0 shows for the kvsrelay
// plugin.
func pluginElements(env []string) ([]string, error) {
	cmd := exec.Command("gst-inspect-1.0", "kvsrelay")
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("gst-inspect-1.0 kvsrelay: %w: %s", err, lastLine(string(out)))
	}
	var names []string
	for _, m := range featureLine.FindAllStringSubmatch(string(out), -1) {
		names = append(names, m[1])
	}
	return names, nil
}

// describeBuild says which build of the plugin was measured.
func describeBuild(dir string, elements []string) string {
	kind := "shipped build (no test elements)"
	if contains(elements, "kvssink") {
		kind = "test build: it also carries the kvssink stand-in, which no scenario uses; numbers are meant to be read off the shipped build (make build's build/libgstkvsrelay.so)"
	}
	return fmt.Sprintf("%s, elements %s; %s", filepath.Join(dir, "libgstkvsrelay.so"), strings.Join(elements, ", "), kind)
}

// Machine describes where the numbers were measured.
type Machine struct {
	CPU       string
	Cores     int
	GStreamer string
	FFmpeg    string
	Go        string
	Kernel    string
	Plugin    string // which libgstkvsrelay.so was measured
}

func probeMachine() Machine {
	m := Machine{CPU: "unknown", Cores: runtime.NumCPU(), Go: runtime.Version()}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPU = cpuModel(data)
	}
	if out, err := exec.Command("gst-launch-1.0", "--version").Output(); err == nil {
		m.GStreamer = gstVersion(out)
	}
	if out, err := exec.Command("ffmpeg", "-hide_banner", "-version").Output(); err == nil {
		first, _, _ := strings.Cut(string(out), "\n")
		m.FFmpeg = strings.TrimSpace(strings.TrimPrefix(first, "ffmpeg version "))
		if i := strings.Index(m.FFmpeg, " Copyright"); i > 0 {
			m.FFmpeg = m.FFmpeg[:i]
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	return m
}

// cpuModel returns the first "model name" of /proc/cpuinfo.
func cpuModel(cpuinfo []byte) string {
	for _, line := range bytes.Split(cpuinfo, []byte("\n")) {
		key, value, ok := bytes.Cut(line, []byte(":"))
		if ok && strings.TrimSpace(string(key)) == "model name" {
			return strings.TrimSpace(string(value))
		}
	}
	return "unknown"
}

// gstVersion returns "1.22.0" from gst-launch-1.0 --version output.
func gstVersion(out []byte) string {
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "GStreamer "); ok {
			return v
		}
	}
	return "unknown"
}

func (m Machine) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "- CPU: %s\n", m.CPU)
	fmt.Fprintf(&b, "- Cores: %s\n", strconv.Itoa(m.Cores))
	fmt.Fprintf(&b, "- GStreamer: %s\n", orUnknown(m.GStreamer))
	fmt.Fprintf(&b, "- FFmpeg: %s\n", orUnknown(m.FFmpeg))
	fmt.Fprintf(&b, "- Go: %s\n", m.Go)
	fmt.Fprintf(&b, "- Kernel: %s\n", orUnknown(m.Kernel))
	fmt.Fprintf(&b, "- Plugin: %s\n", orUnknown(m.Plugin))
	return b.String()
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
