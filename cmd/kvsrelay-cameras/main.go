// Command kvsrelay-cameras turns one settings file listing a host's cameras
// into kvs-relay@ instances, or a camera group's settings into its
// Kubernetes ConfigMap (see internal/cameras for the file's format).
//
//	kvsrelay-cameras check FILE
//	sudo kvsrelay-cameras apply [-dir /etc/kvs-relay] [-no-systemctl] FILE
//	kvsrelay-cameras configmap -name NAME -namespace NS [-label k=v ...] FILE
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/kvsrelay/kvsrelay/internal/cameras"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const usage = `usage:
  kvsrelay-cameras check FILE
      validate the settings file and list its cameras
  kvsrelay-cameras apply [-dir /etc/kvs-relay] [-systemctl systemctl] [-no-systemctl] FILE
      write DIR/<camera>.env for every camera (0600 when it holds a password),
      remove the files of cameras no longer listed, and run systemctl:
      disable --now the removed units, restart the changed ones, enable --now all
  kvsrelay-cameras configmap -name NAME -namespace NS [-label KEY=VALUE ...] FILE
      print the camera group's Kubernetes ConfigMap (passwords belong in the
      group's Secret and are refused)
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "check":
		err = check(args[1:], stdout, stderr)
	case "apply":
		err = apply(args[1:], stdout, stderr)
	case "configmap":
		err = configMap(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		err = usageError(fmt.Sprintf("unknown command %q", args[0]))
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "kvsrelay-cameras: %s\n%s", ue, usage)
		return 2
	case errors.Is(err, flag.ErrHelp):
		return 0
	default:
		fmt.Fprintf(stderr, "kvsrelay-cameras: %s\n", strings.ReplaceAll(err.Error(), "\n", "\nkvsrelay-cameras: "))
		return 1
	}
}

type usageError string

func (e usageError) Error() string { return string(e) }

// load parses flags in fs from args, runs checkFlags (nil: none), and loads
// the one settings file named.
func load(fs *flag.FlagSet, args []string, stderr io.Writer, checkFlags func() error) (*cameras.Settings, error) {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError(err.Error())
	}
	if fs.NArg() != 1 {
		return nil, usageError(fs.Name() + ": name one settings file")
	}
	if checkFlags != nil {
		if err := checkFlags(); err != nil {
			return nil, err
		}
	}
	return cameras.Load(fs.Arg(0))
}

func check(args []string, stdout, stderr io.Writer) error {
	s, err := load(flag.NewFlagSet("check", flag.ContinueOnError), args, stderr, nil)
	if err != nil {
		return err
	}
	for _, c := range s.Cameras {
		env := s.Env(c)
		fmt.Fprintf(stdout, "%s: %s %s -> %s\n", c.Name, env["RECIPE"], redactSource(env["SOURCE"]), env["STREAM_NAME"])
	}
	fmt.Fprintf(stdout, "%s: %d cameras, valid\n", s.File, len(s.Cameras))
	return nil
}

// redactSource hides a password written into a source URL
// (rtsp://user:pass@host/...).
func redactSource(src string) string {
	scheme, rest, ok := strings.Cut(src, "://")
	if !ok {
		return src
	}
	at := strings.LastIndex(rest, "@")
	slash := strings.Index(rest, "/")
	if at < 0 || (slash >= 0 && at > slash) {
		return src
	}
	user, _, hasPass := strings.Cut(rest[:at], ":")
	if !hasPass {
		return src
	}
	return scheme + "://" + user + ":***" + rest[at:]
}

func apply(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("apply", flag.ContinueOnError)
	dir := fs.String("dir", "/etc/kvs-relay", "folder of the kvs-relay@ settings files (the unit reads <dir>/<camera>.env)")
	systemctlPath := fs.String("systemctl", "systemctl", "systemctl command to run")
	noSystemctl := fs.Bool("no-systemctl", false, "write the files only; print the systemctl commands instead of running them")
	s, err := load(fs, args, stderr, nil)
	if err != nil {
		return err
	}
	plan, err := s.PlanDir(*dir)
	if err != nil {
		return err
	}
	var systemctl func(args ...string) error
	if !*noSystemctl {
		systemctl = func(args ...string) error {
			cmd := exec.Command(*systemctlPath, args...)
			cmd.Stdout, cmd.Stderr = stdout, stderr
			return cmd.Run()
		}
	}
	if err := plan.Apply(systemctl); err != nil {
		return err
	}
	for _, line := range []struct {
		what  string
		names []string
	}{{"started", plan.Start}, {"restarted (settings changed)", plan.Restart}, {"unchanged", plan.Keep}, {"stopped and removed", plan.Stop}} {
		if len(line.names) > 0 {
			fmt.Fprintf(stdout, "%s: %s\n", line.what, strings.Join(line.names, ", "))
		}
	}
	if *noSystemctl {
		for _, c := range plan.Commands() {
			fmt.Fprintf(stdout, "run: %s %s\n", *systemctlPath, strings.Join(c, " "))
		}
	}
	return nil
}

// labels collects repeated -label KEY=VALUE flags.
type labels map[string]string

func (l labels) String() string { return "" }
func (l labels) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", v)
	}
	l[k] = val
	return nil
}

func configMap(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("configmap", flag.ContinueOnError)
	name := fs.String("name", "", "the ConfigMap's name (the Deployment's configMapRef), e.g. kvs-relay-group-a")
	namespace := fs.String("namespace", "", "the ConfigMap's namespace")
	lbl := labels{}
	fs.Var(lbl, "label", "a label KEY=VALUE (repeatable)")
	s, err := load(fs, args, stderr, func() error {
		if *name == "" || *namespace == "" {
			return usageError("configmap: -name and -namespace are required")
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(lbl) == 0 {
		lbl = nil
	}
	out, err := s.ConfigMapYAML(cameras.ConfigMapOptions{Name: *name, Namespace: *namespace, Labels: lbl})
	if err != nil {
		return err
	}
	_, err = stdout.Write(out)
	return err
}
