// Command kvscredfile keeps a kvssink credential file fresh, as a sidecar
// process next to a gst-launch pipeline whose kvssink has
// credential-path=<the same file>. It does what the kvscredprovider element
// does, with the same settings as flags:
//
//	kvscredfile -source imds -credential-path /run/kvsrelay/credential
//
// It fetches credentials (IMDSv2 by default), writes the file atomically
// (mode 0600, folder 0700), refreshes it before expiry, logs to stderr with
// access key ids masked, and on SIGTERM or SIGINT removes the file and exits
// 0. With -once it writes the file once and exits, leaving the file.
//
// Differences from the element, and why:
//   - -credential-path defaults to $RUNTIME_DIRECTORY/credential, else
//     $XDG_RUNTIME_DIR/kvsrelay/credential; with neither set it is required
//     (the element can fall back to a random private folder because it tells
//     kvssink the path itself; a sidecar's kvssink could never know it).
//   - -refresh-before takes a Go duration ("15m") or, like the element's
//     property, a plain number of nanoseconds ("900000000000").
//
// The credential folder: one created by kvscredfile is 0700; an existing
// one that group or other users can write to is refused (exit 1, the error
// names the folder and its mode), one they can only list is used with a
// warning (the file itself is 0600). Under systemd use
// RuntimeDirectoryMode=0700: the default is 0755.
//
// Metrics: with KVSRELAY_METRICS set (see internal/emf: stdout, stderr or a
// file; KVSRELAY_METRICS_INTERVAL), CredentialSecondsToExpiry and
// CredentialRefreshFailures are written as CloudWatch EMF lines for the
// stream named by -stream-name, which should be the stream-name of the
// kvssink reading the file, so that they land on the same StreamName
// dimension as the relay's own metrics. Without -stream-name the name is
// taken from the credential path: its file name, or, for the default file
// name "credential", the name of its folder (/run/kvs-relay-creds/cam1/
// credential gives "cam1"). A metrics setting that cannot be used is logged
// and ignored: metrics never stop the credential refresh.
//
// Exit status: 0 on success or signal, 1 when credentials cannot be had,
// 2 on bad flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kvsrelay/kvsrelay/internal/credfile"
	"github.com/kvsrelay/kvsrelay/internal/credrefresh"
	"github.com/kvsrelay/kvsrelay/internal/credsource"
	"github.com/kvsrelay/kvsrelay/internal/emf"
	"github.com/kvsrelay/kvsrelay/internal/fielderr"
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	os.Exit(run(os.Args[1:], os.Getenv, os.Stderr, sig))
}

// config is the parsed command line.
type config struct {
	source         credsource.Options
	credentialPath string
	refreshBefore  time.Duration
	primeTimeout   time.Duration
	once           bool
	streamName     string // metrics stream (see the package comment)
}

// durationOrNanos is a flag value taking a Go duration ("15m") or a plain
// number of nanoseconds, the unit of the element's refresh-before property.
type durationOrNanos struct{ d *time.Duration }

func (v durationOrNanos) String() string {
	if v.d == nil {
		return ""
	}
	return v.d.String()
}

func (v durationOrNanos) Set(s string) error {
	s = strings.TrimSpace(s)
	if s != "" && strings.Trim(s, "0123456789") == "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is out of range", s)
		}
		*v.d = time.Duration(n)
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is neither a duration (15m) nor a number of nanoseconds", s)
	}
	*v.d = d
	return nil
}

// metricsStreamName is the stream a path's metrics are recorded under
// when -stream-name is not given.
func metricsStreamName(path string) string {
	if base := filepath.Base(path); base != credfile.DefaultFileName {
		return base
	}
	return filepath.Base(filepath.Dir(path))
}

// usageError is a bad flag value; it leads to exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("kvscredfile", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		c       config
		source  string
		timeout time.Duration
	)
	fs.StringVar(&source, "source", "imds", `where credentials come from: "imds" (EC2 instance role, IMDSv2) or "default" (AWS SDK default chain)`)
	fs.StringVar(&c.source.Role, "role", "", "IAM role name for -source imds (default: the first role IMDS lists)")
	fs.StringVar(&c.source.Profile, "profile", "", "shared config profile for -source default (default: AWS_PROFILE or \"default\")")
	fs.StringVar(&c.credentialPath, "credential-path", "", "file to keep fresh; give kvssink the same credential-path (default: $RUNTIME_DIRECTORY/credential, else $XDG_RUNTIME_DIR/kvsrelay/credential; required when neither is set)")
	c.refreshBefore = credrefresh.DefaultRefreshBefore
	fs.Var(durationOrNanos{&c.refreshBefore}, "refresh-before", "fetch new credentials this long before the current ones expire: a duration (15m) or nanoseconds like the element's property (900000000000)")
	fs.StringVar(&c.streamName, "stream-name", "", "KVS stream name the metrics are recorded under when KVSRELAY_METRICS is set: the stream-name of the kvssink reading the file (default: the credential file's name, or its folder's name for a file named \"credential\")")
	fs.StringVar(&c.source.Endpoint, "imds-endpoint", "", "IMDS endpoint URL (default: AWS_EC2_METADATA_SERVICE_ENDPOINT, else http://169.254.169.254)")
	fs.BoolVar(&c.source.AllowIMDSv1, "allow-imdsv1", false, "accept an IMDS that refuses IMDSv2 session tokens (insecure)")
	fs.DurationVar(&timeout, "http-timeout", credsource.DefaultHTTPTimeout, "timeout of each HTTP request to the credential source")
	fs.DurationVar(&c.primeTimeout, "start-timeout", time.Minute, "how long to keep trying for the first credentials before giving up")
	fs.BoolVar(&c.once, "once", false, "write the file once and exit, leaving the file in place")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		// The flag package has already printed the problem and usage.
		return c, &usageError{msg: err.Error()}
	}
	if fs.NArg() > 0 {
		return c, &usageError{msg: fmt.Sprintf("unexpected argument %q (all settings are flags, see -help)", fs.Arg(0))}
	}
	kind, err := credsource.ParseKind(source)
	if err != nil {
		return c, &usageError{msg: "invalid value for flag -source: " + err.Error()}
	}
	c.source.Kind = kind
	if kind == credsource.KindIMDS && c.source.Profile != "" {
		return c, &usageError{msg: "flag -profile is only used with -source default"}
	}
	if kind == credsource.KindDefault && c.source.Role != "" {
		return c, &usageError{msg: "flag -role is only used with -source imds"}
	}
	if credrefresh.CheckRefreshBefore(c.refreshBefore) != nil {
		return c, &usageError{msg: fmt.Sprintf("invalid value %s for flag -refresh-before: must be at least %s (%d ns; kvssink needs the file valid for over a minute when it re-reads)", c.refreshBefore, credrefresh.MinRefreshBefore, int64(credrefresh.MinRefreshBefore))}
	}
	if timeout <= 0 {
		return c, &usageError{msg: fmt.Sprintf("invalid value %s for flag -http-timeout: must be positive", timeout)}
	}
	if c.primeTimeout <= 0 {
		return c, &usageError{msg: fmt.Sprintf("invalid value %s for flag -start-timeout: must be positive", c.primeTimeout)}
	}
	c.source.HTTPTimeout = timeout
	if c.credentialPath == "" {
		if getenv("RUNTIME_DIRECTORY") == "" && getenv("XDG_RUNTIME_DIR") == "" {
			// credfile.DefaultDir would make a random temporary folder,
			// which the kvssink this file is for could never be told.
			return c, &usageError{msg: "flag -credential-path is required when neither $RUNTIME_DIRECTORY nor $XDG_RUNTIME_DIR is set: " +
				"give the file the kvssink reads (its credential-path)"}
		}
		dir, err := credfile.DefaultDir(getenv)
		if err != nil {
			return c, fmt.Errorf("choosing a folder for the credential file (set -credential-path): %w", err)
		}
		c.credentialPath = filepath.Join(dir, credfile.DefaultFileName)
	}
	if c.streamName == "" {
		c.streamName = metricsStreamName(c.credentialPath)
	}
	return c, nil
}

func run(args []string, getenv func(string) string, stderr io.Writer, sig <-chan os.Signal) int {
	log := slog.New(slog.NewTextHandler(stderr, nil))
	cfg, err := parseFlags(args, getenv, stderr)
	var ue *usageError
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "kvscredfile: %v\n", err)
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "kvscredfile: %v\n", err)
		return 1
	}

	src, err := credsource.New(cfg.source)
	if err != nil {
		err = fielderr.Rename(err, map[string]string{
			"Role": "-role", "Profile": "-profile", "Endpoint": "-imds-endpoint", "HTTPTimeout": "-http-timeout", "Kind": "-source"})
		fmt.Fprintf(stderr, "kvscredfile: %v\n", err)
		return 2
	}
	path := cfg.credentialPath
	metrics := startMetrics(log, cfg.streamName)
	keeper, err := credrefresh.New(src.Fetch,
		func(c credfile.Credentials, now time.Time) error { return credfile.Write(path, c, now) },
		credrefresh.Options{
			RefreshBefore: cfg.refreshBefore,
			Transient:     credsource.IsTransient,
			OnEvent: func(e credrefresh.Event) {
				logEvent(log, e)
				recordEvent(metrics, e)
			},
		})
	if err != nil {
		fmt.Fprintf(stderr, "kvscredfile: %v\n", err)
		return 2
	}
	log.Info("starting", "source", src.Describe(), "credential_path", path, "refresh_before", cfg.refreshBefore)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopped := make(chan os.Signal, 1)
	go func() {
		select {
		case s := <-sig:
			stopped <- s
			cancel()
		case <-ctx.Done():
		}
	}()

	primeCtx, primeCancel := context.WithTimeout(ctx, cfg.primeTimeout)
	err = keeper.Prime(primeCtx)
	primeCancel()
	if s := signalled(stopped); s != nil {
		return shutdown(log, path, s)
	}
	if err != nil {
		log.Error("no credentials could be written", "credential_path", path, "error", err)
		return 1
	}
	if w := credfile.FolderWarning(filepath.Dir(path)); w != "" {
		log.Warn(w)
	}
	if cfg.once {
		log.Info("credentials written, exiting (-once)", "credential_path", path, "key", keeper.KeyID(), "expires", keeper.Expiration().UTC())
		return 0
	}
	if err := keeper.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("refresh loop stopped", "error", err)
		return 1
	}
	return shutdown(log, path, <-stopped)
}

func signalled(ch chan os.Signal) os.Signal {
	select {
	case s := <-ch:
		return s
	default:
		return nil
	}
}

// shutdown removes the credential file so no credentials outlive the relay.
func shutdown(log *slog.Logger, path string, s os.Signal) int {
	if err := credfile.Remove(path); err != nil {
		log.Error("stopping", "signal", s.String(), "error", err)
		return 1
	}
	log.Info("stopped, credential file removed", "signal", s.String(), "credential_path", path)
	return 0
}

// startMetrics turns on the EMF metrics if KVSRELAY_METRICS asks for them
// and returns the stream to record into (nil when off). Problems are
// logged: metrics never stop the refresh.
func startMetrics(log *slog.Logger, streamName string) *emf.Stream {
	on, err := emf.StartDefaultFromEnv()
	if err != nil {
		log.Warn("metrics disabled", "error", err)
		return nil
	}
	if !on {
		return nil
	}
	log.Info("metrics on", "stream_name", streamName)
	return emf.Default().Stream(streamName)
}

// recordEvent updates the metrics (nil: off).
func recordEvent(m *emf.Stream, e credrefresh.Event) {
	if m == nil {
		return
	}
	switch e.Kind {
	case credrefresh.EventRefreshed:
		m.SetCredentialExpiry(e.Expires)
	case credrefresh.EventRefreshFailed:
		m.AddCredentialRefreshFailure()
	}
}

func logEvent(log *slog.Logger, e credrefresh.Event) {
	level := slog.LevelInfo
	switch e.Kind {
	case credrefresh.EventUnchanged:
		level = slog.LevelDebug
	case credrefresh.EventRefreshFailed:
		level = slog.LevelWarn
	case credrefresh.EventExpired:
		level = slog.LevelError
	}
	log.Log(context.Background(), level, e.String())
}
