package emf

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// EnvOutput names the environment variable that chooses where metric lines
// go: "stdout", "stderr", a file path (appended to, created 0640), or empty
// for no metrics at all.
const EnvOutput = "KVSRELAY_METRICS"

// EnvInterval names the environment variable that sets how often metric
// lines are written (a Go duration such as "60s"; default 60 s, CloudWatch's
// standard resolution).
const EnvInterval = "KVSRELAY_METRICS_INTERVAL"

// OpenOutput resolves an output spec as described for EnvOutput. It returns
// a nil writer for "" (metrics off). close releases a file; it is a no-op
// for stdout, stderr and off.
func OpenOutput(spec string) (w io.Writer, close func() error, err error) {
	noop := func() error { return nil }
	switch spec {
	case "":
		return nil, noop, nil
	case "stdout", "-":
		return os.Stdout, noop, nil
	case "stderr":
		return os.Stderr, noop, nil
	}
	f, err := os.OpenFile(spec, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, noop, fmt.Errorf("%s=%q: opening the metrics file: %w", EnvOutput, spec, err)
	}
	return f, f.Close, nil
}

var (
	defaultOnce     sync.Once
	defaultRecorder *Recorder

	startOnce sync.Once
	startOn   bool
	startErr  error

	served atomic.Bool
)

// ServeDefault marks Default() as read by something other than the EMF
// writer (the /metrics endpoint), so elements record into it even when
// KVSRELAY_METRICS is unset. Call it before the elements' first
// StartDefaultFromEnv.
func ServeDefault() { served.Store(true) }

// Default is the process-wide Recorder that every element records into.
func Default() *Recorder {
	defaultOnce.Do(func() { defaultRecorder = NewRecorder(RecorderOptions{}) })
	return defaultRecorder
}

// StartDefaultFromEnv starts, once per process, a Writer for Default() to the
// output named by KVSRELAY_METRICS, running for the life of the process.
// It reports whether metrics are recorded: lines are written, or /metrics
// serves them (ServeDefault). The error is the writer's, from the first call.
func StartDefaultFromEnv() (bool, error) {
	startOnce.Do(func() {
		out, closeOut, err := OpenOutput(os.Getenv(EnvOutput))
		if err != nil || out == nil {
			startErr = err
			return
		}
		var interval time.Duration
		if v := os.Getenv(EnvInterval); v != "" {
			d, perr := time.ParseDuration(v)
			if perr != nil || d <= 0 {
				_ = closeOut()
				startErr = fmt.Errorf("%s=%q: want a positive duration such as 60s", EnvInterval, v)
				return
			}
			interval = d
		}
		w, err := NewWriter(Default(), WriterOptions{Out: out, Interval: interval})
		if err != nil {
			_ = closeOut()
			startErr = err
			return
		}
		startOn = true
		go func() {
			// Runs until the process exits; a write error (disk full, closed
			// stdout) stops metrics but never the relay.
			_ = w.Run(context.Background())
			_ = closeOut()
		}()
	})
	return startOn || served.Load(), startErr
}
