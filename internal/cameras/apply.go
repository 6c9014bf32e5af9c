package cameras

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Plan is what turning the settings into kvs-relay@ instances changes in a
// settings folder (/etc/kvs-relay): environment files to write and units to
// start, restart or stop.
type Plan struct {
	Dir string
	// files to write: camera name -> content, and whether it holds a secret.
	files   map[string][]byte
	secrets map[string]bool
	// Start: new cameras; Restart: cameras whose file changed; Keep:
	// unchanged ones (enabled and started again, which does nothing when
	// they run); Stop: cameras whose generated file is no longer wanted.
	Start, Restart, Keep, Stop []string
}

// PlanDir compares the settings with the generated files in dir. A file
// <camera>.env that this package did not write is never touched: planning
// over it is an error naming it.
func (s *Settings) PlanDir(dir string) (*Plan, error) {
	p := &Plan{Dir: dir, files: map[string][]byte{}, secrets: map[string]bool{}}
	existing, err := generatedFiles(dir)
	if err != nil {
		return nil, err
	}
	var problems []string
	for _, c := range s.Cameras {
		content := s.EnvFile(c)
		p.files[c.Name] = content
		p.secrets[c.Name] = s.HasSecrets(c)
		path := filepath.Join(dir, c.Name+".env")
		old, err := os.ReadFile(path)
		switch {
		case errors.Is(err, os.ErrNotExist):
			p.Start = append(p.Start, c.Name)
		case err != nil:
			problems = append(problems, fmt.Sprintf("reading %s: %v", path, err))
		case !bytes.HasPrefix(old, []byte(GeneratedMark)):
			problems = append(problems, fmt.Sprintf("%s exists and was not written by kvsrelay-cameras: move it aside (or rename camera %s in %s)", path, c.Name, s.File))
		case bytes.Equal(old, content):
			p.Keep = append(p.Keep, c.Name)
		default:
			p.Restart = append(p.Restart, c.Name)
		}
		delete(existing, c.Name)
	}
	for name := range existing {
		p.Stop = append(p.Stop, name)
	}
	sort.Strings(p.Stop)
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "\n"))
	}
	return p, nil
}

// generatedFiles returns the cameras of the generated .env files in dir.
func generatedFiles(dir string) (map[string]bool, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the settings folder: %w", err)
	}
	out := map[string]bool{}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".env")
		if !ok || !e.Type().IsRegular() {
			continue
		}
		head := make([]byte, len(GeneratedMark))
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("reading the settings folder: %w", err)
		}
		n, _ := f.Read(head)
		f.Close()
		if n == len(head) && string(head) == GeneratedMark {
			out[name] = true
		}
	}
	return out, nil
}

// Unit is the systemd unit of a camera.
func Unit(camera string) string { return "kvs-relay@" + camera + ".service" }

// Commands are the systemctl invocations (arguments) that carry the plan
// out once the files are written: stop what went away, restart what
// changed, enable and start everything listed.
func (p *Plan) Commands() [][]string {
	var cmds [][]string
	units := func(names []string) []string {
		out := make([]string, len(names))
		for i, n := range names {
			out[i] = Unit(n)
		}
		return out
	}
	if len(p.Stop) > 0 {
		cmds = append(cmds, append([]string{"disable", "--now"}, units(p.Stop)...))
	}
	if len(p.Restart) > 0 {
		cmds = append(cmds, append([]string{"restart"}, units(p.Restart)...))
	}
	all := append(append(append([]string{}, p.Start...), p.Restart...), p.Keep...)
	sort.Strings(all)
	if len(all) > 0 {
		cmds = append(cmds, append([]string{"enable", "--now"}, units(all)...))
	}
	return cmds
}

// WriteFiles writes the planned files (atomically, 0600 when a file holds a
// secret, else 0644) and removes the stopped cameras' files. Call it after
// stopping the removed units and before starting or restarting the others.
func (p *Plan) WriteFiles() error {
	if err := os.MkdirAll(p.Dir, 0o755); err != nil {
		return fmt.Errorf("creating the settings folder: %w", err)
	}
	names := make([]string, 0, len(p.files))
	for n := range p.files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		mode := os.FileMode(0o644)
		if p.secrets[name] {
			mode = 0o600
		}
		path := filepath.Join(p.Dir, name+".env")
		tmp := filepath.Join(p.Dir, "."+name+".env.tmp")
		if err := os.WriteFile(tmp, p.files[name], mode); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		// WriteFile keeps an old temp file's mode: set it.
		if err := os.Chmod(tmp, mode); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	for _, name := range p.Stop {
		if err := os.Remove(filepath.Join(p.Dir, name+".env")); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing camera %s's settings: %w", name, err)
		}
	}
	return nil
}

// Apply carries the plan out: disable the removed units, write the files,
// then restart and enable the rest. systemctl runs one command; nil skips
// the units (the files are still written).
func (p *Plan) Apply(systemctl func(args ...string) error) error {
	cmds := p.Commands()
	if systemctl != nil && len(p.Stop) > 0 {
		if err := systemctl(cmds[0]...); err != nil {
			return fmt.Errorf("stopping removed cameras: %w", err)
		}
		cmds = cmds[1:]
	}
	if err := p.WriteFiles(); err != nil {
		return err
	}
	if systemctl == nil {
		return nil
	}
	for _, c := range cmds {
		if err := systemctl(c...); err != nil {
			return fmt.Errorf("systemctl %s: %w", strings.Join(c, " "), err)
		}
	}
	return nil
}
