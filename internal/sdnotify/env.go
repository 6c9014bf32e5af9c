package sdnotify

import (
	"fmt"
	"os"
	"sync"

	"github.com/coreos/go-systemd/v22/daemon"
)

// FromEnvironment returns a Notifier wired to systemd's environment:
// NOTIFY_SOCKET (unset: an inert notifier) and WATCHDOG_USEC, honouring
// WATCHDOG_PID so a child process never pings for its parent. Send and
// WatchdogInterval in opts are filled in from the environment; the other
// options are kept. The variables are left in place (a gst-plugin-scanner
// child ignores them).
func FromEnvironment(opts Options) (*Notifier, error) {
	if os.Getenv("NOTIFY_SOCKET") == "" {
		opts.Send = nil
		opts.WatchdogInterval = 0
		return New(opts), nil
	}
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		// A malformed WATCHDOG_USEC must not cost the relay its READY=1:
		// keep notifying, without pings, and report it.
		opts.Send = sendViaSocket
		opts.WatchdogInterval = 0
		return New(opts), fmt.Errorf("reading systemd's WATCHDOG_USEC/WATCHDOG_PID: %w", err)
	}
	opts.Send = sendViaSocket
	opts.WatchdogInterval = interval
	return New(opts), nil
}

func sendViaSocket(state string) error {
	sent, err := daemon.SdNotify(false, state)
	if err != nil {
		return err
	}
	if !sent {
		return fmt.Errorf("NOTIFY_SOCKET is no longer set")
	}
	return nil
}

var (
	defaultOnce     sync.Once
	defaultNotifier *Notifier
	defaultErr      error
)

// Default is the process-wide notifier, built from the environment at first
// use and started at once. Its error (a malformed WATCHDOG_USEC) is returned
// with it every time so each element can log it; the notifier is usable anyway.
func Default() (*Notifier, error) {
	defaultOnce.Do(func() {
		defaultNotifier, defaultErr = FromEnvironment(Options{})
		defaultNotifier.Start()
	})
	return defaultNotifier, defaultErr
}
