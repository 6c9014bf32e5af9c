package healthserver

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kvsrelay/kvsrelay/internal/emf"
	"github.com/kvsrelay/kvsrelay/internal/sdnotify"
)

// EnvAddr names the environment variable that turns the server on: a port
// ("8080"), ":port" or host:port. Without a host it listens on 127.0.0.1
// only; a container whose probes come from outside names 0.0.0.0 itself.
const EnvAddr = "KVSRELAY_HEALTH_ADDR"

// EnvInterval names the environment variable that sets the window /healthz
// judges by (a Go duration; default 10 s).
const EnvInterval = "KVSRELAY_HEALTH_INTERVAL"

// ParseAddr turns a KVSRELAY_HEALTH_ADDR value into a listen address.
// "" means off and returns "".
func ParseAddr(spec string) (string, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return "", nil
	}
	host, port := "", spec
	if strings.Contains(spec, ":") {
		var err error
		host, port, err = net.SplitHostPort(spec)
		if err != nil {
			return "", fmt.Errorf("%s=%q: want a port, :port or host:port (%v)", EnvAddr, spec, err)
		}
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("%s=%q: the port must be a number from 1 to 65535", EnvAddr, spec)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

var (
	startOnce sync.Once
	startOn   bool
	startErr  error
)

// StartDefaultFromEnv starts, once per process, the server named by
// KVSRELAY_HEALTH_ADDR, judging sdnotify.Default()'s sources and healths
// and serving emf.Default()'s metrics, for the life of the process. It
// reports whether it runs; a bad variable or a port in use returns an error
// naming the variable and leaves the relay running without it. Elements call
// it when they start, never at plugin load (gst-plugin-scanner and
// gst-inspect-1.0 load the plugin too). Later calls return the first result.
func StartDefaultFromEnv() (bool, error) {
	startOnce.Do(func() { startOn, startErr = startFromEnv() })
	return startOn, startErr
}

func startFromEnv() (bool, error) {
	addr, err := ParseAddr(os.Getenv(EnvAddr))
	if err != nil || addr == "" {
		return false, err
	}
	interval := DefaultInterval
	if v := os.Getenv(EnvInterval); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return false, fmt.Errorf("%s=%q: want a positive duration such as 10s", EnvInterval, v)
		}
		interval = d
	}
	notifier, _ := sdnotify.Default() // a bad WATCHDOG_USEC is the elements' to report
	// A push into kvssink blocked for a whole window fails the check, as half
	// a watchdog interval does under systemd (whose windows are that half).
	observer := notifier.Observe(interval)
	emf.ServeDefault()
	srv, err := New(Options{Check: observer.Check, Metrics: emf.Default().WritePrometheus, Interval: interval})
	if err != nil {
		return false, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false, fmt.Errorf("%s=%q: %w", EnvAddr, os.Getenv(EnvAddr), err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }() // for the life of the process
	go srv.Run(context.Background())
	return true, nil
}
