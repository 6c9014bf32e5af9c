package pipelines_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kvsrelay/kvsrelay/internal/cameras"
)

// kvsrelay-cameras refuses unknown settings, so it must know every one the
// recipes read: the README's Variables table and each recipe's own list.
func TestCamerasToolKnowsEverySetting(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(readme), "## Variables")
	if !ok {
		t.Fatal("README.md has no Variables section")
	}
	table, _, _ = strings.Cut(table, "\n## ")
	names := map[string]string{}
	row := regexp.MustCompile("(?m)^\\| (`[A-Z0-9_]+`(?:, `[A-Z0-9_]+`)*) \\|")
	for _, m := range row.FindAllStringSubmatch(table, -1) {
		for _, n := range regexp.MustCompile("[A-Z0-9_]+").FindAllString(m[1], -1) {
			names[n] = "README.md"
		}
	}
	if len(names) < 20 {
		t.Fatalf("read only %d variables from README.md's table", len(names))
	}
	scripts, _ := filepath.Glob("*.sh")
	own := regexp.MustCompile(`(?m)^#   ([A-Z][A-Z0-9_]+)\s`)
	for _, s := range scripts {
		data, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		_, vars, ok := strings.Cut(string(data), "# Variables")
		if !ok {
			continue
		}
		vars, _, _ = strings.Cut(vars, "\nset -")
		for _, m := range own.FindAllStringSubmatch(vars, -1) {
			names[m[1]] = s
		}
	}
	for n, where := range names {
		if !cameras.Known(n) {
			t.Errorf("%s reads %s, which kvsrelay-cameras would refuse (internal/cameras/keys.go)", where, n)
		}
	}
}

// The example host settings file is valid and makes a root-only file for
// the camera with a password.
func TestCamerasExample(t *testing.T) {
	s, err := cameras.Load("env/cameras.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range s.Cameras {
		if got, want := s.HasSecrets(c), c.Own["RTSP_PASSWORD"] != ""; got != want {
			t.Errorf("camera %s: secrets %v, want %v", c.Name, got, want)
		}
	}
}
