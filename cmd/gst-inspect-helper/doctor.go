package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"text/tabwriter"
	"time"
)

// status is a check's verdict; a larger value is worse.
type status int

const (
	statusPass status = iota
	statusWarn
	statusFail
)

func (s status) String() string {
	switch s {
	case statusPass:
		return "PASS"
	case statusWarn:
		return "WARN"
	}
	return "FAIL"
}

// checkResult is one row of the doctor's table.
type checkResult struct {
	Check  string
	Status status
	Detail string
}

// commandResult is what running a program produced. NotFound means the
// program is not installed (not on PATH); Err is any other failure to run
// it to completion (timeout, permission), not a non-zero exit.
type commandResult struct {
	Stdout   string
	Stderr   string
	ExitCode int
	NotFound bool
	Err      error
}

// commandRunner runs name with args, adding extraEnv (KEY=VALUE) to the
// doctor's own environment. Tests substitute a fake.
type commandRunner func(ctx context.Context, extraEnv []string, name string, args ...string) commandResult

// doctorOptions is everything the checks depend on, injectable for tests.
type doctorOptions struct {
	Run       commandRunner
	LookupEnv func(key string) (string, bool)
	ReadFile  func(path string) ([]byte, error)
	// EnvFile is the relay's systemd EnvironmentFile; "" skips those checks.
	EnvFile     string
	IMDSTimeout time.Duration
}

// doctor holds the options plus what earlier checks learned.
type doctor struct {
	doctorOptions

	// gstInspectMissing is set by the version check so that later checks
	// say "not checked" once instead of repeating the install hint.
	gstInspectMissing bool
	// envFile is the parsed EnvironmentFile (nil when none or unreadable).
	envFile    []envAssignment
	envProblem []envFileProblem
	envFileErr error
}

// check is one entry of the doctor's check table.
type check struct {
	name string
	run  func(ctx context.Context, d *doctor) []checkResult
}

// doctorChecks is the ordered check table. Order matters: the GStreamer
// version check finds out whether gst-inspect-1.0 exists at all.
var doctorChecks = []check{
	{"gstreamer", checkGStreamerVersion},
	{"plugin", checkPluginLoads},
	{"elements", checkElements},
	{"environment", checkAWSEnvironment},
	{"env-file", checkEnvFile},
	{"imds", checkIMDS},
}

// runChecks runs every check and returns the rows in table order.
func runChecks(ctx context.Context, opts doctorOptions) []checkResult {
	d := &doctor{doctorOptions: opts}
	if opts.EnvFile != "" {
		d.loadEnvFile()
	}
	var rows []checkResult
	for _, c := range doctorChecks {
		rows = append(rows, c.run(ctx, d)...)
	}
	return rows
}

func (d *doctor) loadEnvFile() {
	data, err := d.ReadFile(d.EnvFile)
	if err != nil {
		d.envFileErr = err
		return
	}
	d.envFile, d.envProblem = parseEnvFile(string(data))
}

// gstEnv is what the relay's EnvironmentFile sets for GStreamer (plugin
// paths, registry), so that gst-inspect-1.0 looks where the service will.
func (d *doctor) gstEnv() []string {
	var env []string
	for _, a := range d.envFile {
		if strings.HasPrefix(a.Key, "GST_") {
			env = append(env, a.Key+"="+a.Value)
		}
	}
	return env
}

// exitCode maps the worst result to the doctor's exit status.
func exitCode(rows []checkResult) int {
	worst := statusPass
	for _, r := range rows {
		worst = max(worst, r.Status)
	}
	switch worst {
	case statusPass:
		return 0
	case statusWarn:
		return 1
	}
	return 2
}

// writeTable prints the rows as aligned CHECK / RESULT / DETAIL columns.
func writeTable(w io.Writer, rows []checkResult) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tRESULT\tDETAIL")
	for _, r := range rows {
		detail := strings.ReplaceAll(r.Detail, "\n", " ")
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Check, r.Status, detail)
	}
	return tw.Flush()
}

// runDoctor implements `gst-inspect-helper doctor`.
func runDoctor(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	envFile := fs.String("env-file", "", "relay's systemd EnvironmentFile to check (e.g. /etc/kvs-relay/cam1.env)")
	imdsTimeout := fs.Duration("imds-timeout", time.Second, "how long to wait for the EC2 instance metadata service")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: gst-inspect-helper doctor [-env-file FILE] [-imds-timeout 1s]\n\n"+
			"Checks this host for running kvsrelay relays. Exit status: 0 all pass, 1 warnings, 2 failures.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "doctor: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *imdsTimeout <= 0 {
		fmt.Fprintf(stderr, "doctor: -imds-timeout must be positive, got %s\n", *imdsTimeout)
		return 2
	}
	rows := runChecks(context.Background(), doctorOptions{
		Run:         execRunner(2 * time.Minute),
		LookupEnv:   os.LookupEnv,
		ReadFile:    os.ReadFile,
		EnvFile:     *envFile,
		IMDSTimeout: *imdsTimeout,
	})
	if err := writeTable(stdout, rows); err != nil {
		fmt.Fprintf(stderr, "doctor: writing the table: %v\n", err)
		return 2
	}
	return exitCode(rows)
}

// execRunner runs real programs, each bounded by timeout (a first
// gst-inspect-1.0 run rebuilds the plugin registry, which takes a while on
// a small machine).
func execRunner(timeout time.Duration) commandRunner {
	return func(ctx context.Context, extraEnv []string, name string, args ...string) commandResult {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, name, args...)
		if len(extraEnv) > 0 {
			cmd.Env = append(os.Environ(), extraEnv...)
		}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		res := commandResult{Stdout: stdout.String(), Stderr: stderr.String()}
		var exitErr *exec.ExitError
		switch {
		case err == nil:
		case errors.Is(err, exec.ErrNotFound):
			res.NotFound = true
		case ctx.Err() != nil:
			res.Err = fmt.Errorf("%s %s: no answer within %s", name, strings.Join(args, " "), timeout)
		case errors.As(err, &exitErr):
			res.ExitCode = exitErr.ExitCode()
		default:
			res.Err = fmt.Errorf("running %s: %w", name, err)
		}
		return res
	}
}
