// Package cameras reads the one settings file of a host's (or a camera
// group's) relays and turns it into what runs them: an environment file per
// kvs-relay@ instance, and the Kubernetes ConfigMap of a camera group.
//
// The file is YAML:
//
//	shared:                  # every camera's settings
//	  RECIPE: rtsp-passthrough
//	  AWS_REGION: eu-west-1
//	cameras:
//	  cam-1:                 # the kvs-relay@ instance name
//	    SOURCE: rtsp://10.20.0.21/stream1
//	    STREAM_NAME: lobby
//
// Keys are the relay's settings (pipelines/README.md, "Variables", and the
// recipes' own); a camera's keys override shared ones. Reading is strict: an
// unknown key, a camera without SOURCE or STREAM_NAME, or two cameras
// uploading one stream is an error naming the file, camera and key, because
// each of them silently misbehaves at run time (a misspelt STREAM_NAME
// uploads to the default stream, next to the other cameras).
package cameras

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// Settings is a parsed, validated settings file.
type Settings struct {
	// File is where it was read from, for messages.
	File string
	// Shared holds the settings every camera gets.
	Shared map[string]string
	// Cameras are sorted by name.
	Cameras []Camera
}

// Camera is one relay.
type Camera struct {
	// Name is the kvs-relay@ instance name and the ConfigMap key prefix.
	Name string
	// Own holds the camera's own settings (overriding Shared).
	Own map[string]string
}

// Env returns the camera's whole environment: shared settings, then its own.
func (s *Settings) Env(c Camera) map[string]string {
	env := make(map[string]string, len(s.Shared)+len(c.Own))
	for k, v := range s.Shared {
		env[k] = v
	}
	for k, v := range c.Own {
		env[k] = v
	}
	return env
}

// file is the YAML document's shape.
type file struct {
	Shared  map[string]any            `json:"shared"`
	Cameras map[string]map[string]any `json:"cameras"`
}

// cameraName is a systemd instance name that is also a ConfigMap key prefix
// ([-._a-zA-Z0-9]) and a DNS-ish container name start.
var cameraName = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$`)

// Load reads and validates the settings file at path.
func Load(path string) (*Settings, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the camera settings: %w", err)
	}
	return Parse(path, data)
}

// Parse validates the settings in data; name is the file's name for messages.
func Parse(name string, data []byte) (*Settings, error) {
	jsonData, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%s: not valid YAML: %w", name, err)
	}
	var f file
	dec := json.NewDecoder(bytes.NewReader(jsonData))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s: %w (the file has two sections: shared and cameras)", name, err)
	}
	s := &Settings{File: name}
	var problems []string
	s.Shared, problems = values(name, "shared", f.Shared, problems)
	for key := range s.Shared {
		if perCamera[key] {
			problems = append(problems, fmt.Sprintf("%s: shared: %s must be set per camera (%s)", name, key, perCameraWhy[key]))
		}
	}
	if len(f.Cameras) == 0 {
		problems = append(problems, fmt.Sprintf("%s: no cameras listed (cameras: NAME: {SOURCE: ..., STREAM_NAME: ...})", name))
	}
	streams := map[string]string{}
	names := make([]string, 0, len(f.Cameras))
	for camName := range f.Cameras {
		names = append(names, camName)
	}
	sort.Strings(names)
	for _, camName := range names {
		raw := f.Cameras[camName]
		where := "camera " + camName
		if !cameraName.MatchString(camName) {
			problems = append(problems, fmt.Sprintf("%s: %s: the name must be lower-case letters, digits, '.', '_' or '-' (at most 63, starting and ending with a letter or digit): it names the kvs-relay@ instance and the ConfigMap keys", name, where))
		}
		own, p := values(name, where, raw, nil)
		problems = append(problems, p...)
		c := Camera{Name: camName, Own: own}
		env := s.Env(c)
		if env["RECIPE"] == "" {
			problems = append(problems, fmt.Sprintf("%s: %s: no RECIPE (set it in shared or for the camera)", name, where))
		}
		if env["SOURCE"] == "" && !sourceOptional[strings.TrimSuffix(env["RECIPE"], ".sh")] {
			problems = append(problems, fmt.Sprintf("%s: %s: no SOURCE", name, where))
		}
		stream := env["STREAM_NAME"]
		switch {
		case stream == "":
			problems = append(problems, fmt.Sprintf("%s: %s: no STREAM_NAME (without it the relay uploads to the default stream kvsrelay-test)", name, where))
		case streams[stream] != "":
			problems = append(problems, fmt.Sprintf("%s: %s: STREAM_NAME %q is also camera %s's: two relays cannot upload one stream", name, where, stream, streams[stream]))
		default:
			streams[stream] = camName
		}
		s.Cameras = append(s.Cameras, c)
	}
	if err := uniquePerCamera(s); err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, errors.New(strings.Join(problems, "\n"))
	}
	return s, nil
}

// uniquePerCamera refuses two cameras sharing a per-camera value.
func uniquePerCamera(s *Settings) error {
	var problems []string
	for key := range perCamera {
		if key == "STREAM_NAME" {
			continue // Parse names the pair itself
		}
		seen := map[string]string{}
		for _, c := range s.Cameras {
			v := c.Own[key]
			if v == "" {
				continue
			}
			if other, dup := seen[v]; dup {
				problems = append(problems, fmt.Sprintf("%s: camera %s: %s=%s is also camera %s's (%s)", s.File, c.Name, key, v, other, perCameraWhy[key]))
			}
			seen[v] = c.Name
		}
	}
	if len(problems) == 0 {
		return nil
	}
	sort.Strings(problems)
	return errors.New(strings.Join(problems, "\n"))
}

// values checks one section's keys and turns its scalars into strings.
func values(name, where string, raw map[string]any, problems []string) (map[string]string, []string) {
	out := make(map[string]string, len(raw))
	for key, v := range raw {
		if why, bad := forbidden[key]; bad {
			problems = append(problems, fmt.Sprintf("%s: %s: %s is not allowed: %s", name, where, key, why))
			continue
		}
		if !Known(key) {
			msg := fmt.Sprintf("%s: %s: unknown setting %s", name, where, key)
			if near := nearest(key); near != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", near)
			}
			problems = append(problems, msg+"; the settings are listed in pipelines/README.md")
			continue
		}
		var s string
		switch v := v.(type) {
		case string:
			s = v
		case json.Number:
			s = v.String()
		case nil:
			s = ""
		case bool:
			problems = append(problems, fmt.Sprintf("%s: %s: %s: true/false is ambiguous here: quote the value the recipe expects (e.g. \"1\")", name, where, key))
			continue
		default:
			problems = append(problems, fmt.Sprintf("%s: %s: %s: want a single value, not a list or a map", name, where, key))
			continue
		}
		if strings.ContainsAny(s, "\n\r\x00") {
			problems = append(problems, fmt.Sprintf("%s: %s: %s: a value must be one line", name, where, key))
			continue
		}
		out[key] = s
	}
	return out, problems
}

// nearest returns the known key closest to key (one or two edits), or "".
func nearest(key string) string {
	best, bestD := "", 3
	for k := range known {
		if d := editDistance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// quoteEnv renders a value for a systemd EnvironmentFile: bare when safe,
// else double-quoted with \ " ` $ escaped (systemd.exec(5)).
func quoteEnv(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\"'\\`$#;") {
		return v
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "`", "\\`", `$`, `\$`).Replace(v) + `"`
}
