package deploy_test

// Strict decoders for the manifests under deploy/, each with the official
// types where they exist: a misspelt or wrongly cased field is an error, as
// it is (or should be) for the API that takes the manifest.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// --- Kubernetes --------------------------------------------------------------

// k8sKinds maps apiVersion/kind to a new typed object of that kind.
var k8sKinds = map[string]func() any{
	"apps/v1/Deployment":  func() any { return &appsv1.Deployment{} },
	"v1/ConfigMap":        func() any { return &corev1.ConfigMap{} },
	"v1/ServiceAccount":   func() any { return &corev1.ServiceAccount{} },
	"v1/Secret":           func() any { return &corev1.Secret{} },
	"v1/Namespace":        func() any { return &corev1.Namespace{} },
	"apps/v1/StatefulSet": func() any { return &appsv1.StatefulSet{} },
}

// splitYAML splits a multi-document YAML file on "---" lines.
func splitYAML(data []byte) [][]byte {
	var docs [][]byte
	for _, d := range regexp.MustCompile(`(?m)^---[ \t]*$`).Split(string(data), -1) {
		if strings.TrimSpace(stripComments(d)) != "" {
			docs = append(docs, []byte(d))
		}
	}
	return docs
}

func stripComments(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// decodeK8s decodes one YAML document into the k8s.io/api type of its kind
// with sigs.k8s.io/yaml's strict unmarshalling (unknown and duplicate fields
// fail), then once more case-sensitively with sigs.k8s.io/json, as the API
// server reads manifests: encoding/json alone would take "configMapKeyref"
// for "configMapKeyRef".
func decodeK8s(doc []byte) (any, error) {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, err
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(j, &tm); err != nil {
		return nil, err
	}
	newObj, ok := k8sKinds[tm.APIVersion+"/"+tm.Kind]
	if !ok {
		return nil, fmt.Errorf("apiVersion %q kind %q is not one this test knows", tm.APIVersion, tm.Kind)
	}
	obj := newObj()
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return nil, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	strictErrs, err := sigsjson.UnmarshalStrict(j, newObj())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	if len(strictErrs) > 0 {
		return nil, fmt.Errorf("%s: %w", tm.Kind, errors.Join(strictErrs...))
	}
	return obj, nil
}

// --- ECS -----------------------------------------------------------------------

// decodeTaskDefinition decodes the input of `aws ecs register-task-definition
// --cli-input-json` into aws-sdk-go-v2's ecs.RegisterTaskDefinitionInput with
// DisallowUnknownFields. The SDK types carry no JSON tags, so encoding/json
// matches names without regard to case; the CLI does not, so every key is
// also checked to be the lowerCamel form of the SDK field it lands in. Enum
// values are checked against the SDK's lists.
func decodeTaskDefinition(data []byte) (*ecs.RegisterTaskDefinitionInput, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var in ecs.RegisterTaskDefinitionInput
	if err := dec.Decode(&in); err != nil {
		return nil, err
	}
	var raw any
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	if errs := checkKeyCase(raw, reflect.TypeOf(in), ""); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	var errs []error
	enum := func(what string, v string, values []string) {
		if v != "" && !slices.Contains(values, v) {
			errs = append(errs, fmt.Errorf("%s %q is not one of %v", what, v, values))
		}
	}
	enum("networkMode", string(in.NetworkMode), enumStrings(ecstypes.NetworkMode("").Values()))
	for _, c := range in.RequiresCompatibilities {
		enum("requiresCompatibilities", string(c), enumStrings(ecstypes.Compatibility("").Values()))
	}
	if rp := in.RuntimePlatform; rp != nil {
		enum("runtimePlatform.operatingSystemFamily", string(rp.OperatingSystemFamily), enumStrings(ecstypes.OSFamily("").Values()))
		enum("runtimePlatform.cpuArchitecture", string(rp.CpuArchitecture), enumStrings(ecstypes.CPUArchitecture("").Values()))
	}
	for _, c := range in.ContainerDefinitions {
		if lc := c.LogConfiguration; lc != nil {
			enum("logConfiguration.logDriver", string(lc.LogDriver), enumStrings(ecstypes.LogDriver("").Values()))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &in, nil
}

func enumStrings[T ~string](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

// checkKeyCase walks decoded JSON alongside the Go type it was decoded into
// and reports keys that are not exactly lowerCamel(field name).
func checkKeyCase(v any, t reflect.Type, path string) []error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var errs []error
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		for key, val := range obj {
			f, ok := fieldFor(t, key)
			if !ok {
				continue // DisallowUnknownFields already refused it
			}
			if want := lowerFirst(f.Name); key != want {
				errs = append(errs, fmt.Errorf("%s%s: field name is %q (names are case-sensitive)", path, key, want))
				continue
			}
			errs = append(errs, checkKeyCase(val, f.Type, path+key+".")...)
		}
	case reflect.Slice:
		if arr, ok := v.([]any); ok {
			for i, el := range arr {
				errs = append(errs, checkKeyCase(el, t.Elem(), fmt.Sprintf("%s[%d].", strings.TrimSuffix(path, "."), i))...)
			}
		}
	}
	return errs
}

func fieldFor(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		if f := t.Field(i); f.IsExported() && strings.EqualFold(f.Name, key) {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func lowerFirst(s string) string {
	r := []rune(s)
	r[0] = unicode.ToLower(r[0])
	return string(r)
}

// --- Greengrass ------------------------------------------------------------

// greengrassRecipe is a component recipe as AWS IoT Greengrass v2's
// "component recipe reference" documents it (RecipeFormatVersion
// 2020-01-25), for recipes whose manifests carry their own lifecycle: the
// global Lifecycle with selection keys is not modelled, so a recipe using
// it fails here. Keys are case-sensitive as documented (lifecycle keys
// start with a capital letter).
type greengrassRecipe struct {
	RecipeFormatVersion    string                          `json:"RecipeFormatVersion"`
	ComponentName          string                          `json:"ComponentName"`
	ComponentVersion       string                          `json:"ComponentVersion"`
	ComponentDescription   string                          `json:"ComponentDescription,omitempty"`
	ComponentPublisher     string                          `json:"ComponentPublisher"`
	ComponentType          string                          `json:"ComponentType,omitempty"`
	ComponentSource        string                          `json:"ComponentSource,omitempty"`
	ComponentConfiguration *greengrassConfiguration        `json:"ComponentConfiguration,omitempty"`
	ComponentDependencies  map[string]greengrassDependency `json:"ComponentDependencies,omitempty"`
	Manifests              []greengrassManifest            `json:"Manifests"`
}

type greengrassConfiguration struct {
	DefaultConfiguration map[string]any `json:"DefaultConfiguration"`
}

type greengrassDependency struct {
	VersionRequirement string `json:"VersionRequirement"`
	DependencyType     string `json:"DependencyType,omitempty"` // HARD (default) or SOFT
}

type greengrassManifest struct {
	Name       string               `json:"Name,omitempty"`
	Platform   map[string]string    `json:"Platform,omitempty"` // os, architecture, custom keys
	Lifecycle  *greengrassLifecycle `json:"Lifecycle,omitempty"`
	Selections []string             `json:"Selections,omitempty"`
	Artifacts  []greengrassArtifact `json:"Artifacts,omitempty"`
}

type greengrassLifecycle struct {
	Setenv    map[string]string `json:"Setenv,omitempty"`
	Bootstrap *greengrassStep   `json:"Bootstrap,omitempty"`
	Install   *greengrassStep   `json:"Install,omitempty"`
	Run       *greengrassStep   `json:"Run,omitempty"`
	Startup   *greengrassStep   `json:"Startup,omitempty"`
	Shutdown  *greengrassStep   `json:"Shutdown,omitempty"`
	Recover   *greengrassStep   `json:"Recover,omitempty"`
}

type greengrassStep struct {
	Script            string            `json:"Script"`
	RequiresPrivilege bool              `json:"RequiresPrivilege,omitempty"`
	Skipif            string            `json:"Skipif,omitempty"`
	Timeout           int               `json:"Timeout,omitempty"`
	Setenv            map[string]string `json:"Setenv,omitempty"`
}

type greengrassArtifact struct {
	URI        string                `json:"URI"`
	Unarchive  string                `json:"Unarchive,omitempty"` // NONE (default) or ZIP
	Permission *greengrassPermission `json:"Permission,omitempty"`
	Digest     string                `json:"Digest,omitempty"`
	Algorithm  string                `json:"Algorithm,omitempty"`
}

type greengrassPermission struct {
	Read    string `json:"Read,omitempty"`    // NONE, OWNER (default), ALL
	Execute string `json:"Execute,omitempty"` // NONE (default), OWNER, ALL
}

// decodeRecipe decodes a YAML recipe strictly (sigs.k8s.io/yaml, then
// case-sensitively with sigs.k8s.io/json) and checks the enumerations and
// required fields the reference names.
func decodeRecipe(data []byte) (*greengrassRecipe, error) {
	var r greengrassRecipe
	if err := yaml.UnmarshalStrict(data, &r); err != nil {
		return nil, err
	}
	j, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, err
	}
	strictErrs, err := sigsjson.UnmarshalStrict(j, &greengrassRecipe{})
	if err != nil {
		return nil, err
	}
	if len(strictErrs) > 0 {
		return nil, errors.Join(strictErrs...)
	}
	var errs []error
	need := func(what, v string) {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is required", what))
		}
	}
	oneOf := func(what, v string, allowed ...string) {
		if v != "" && !slices.Contains(allowed, v) {
			errs = append(errs, fmt.Errorf("%s %q is not one of %v", what, v, allowed))
		}
	}
	oneOf("RecipeFormatVersion", r.RecipeFormatVersion, "2020-01-25")
	need("RecipeFormatVersion", r.RecipeFormatVersion)
	need("ComponentName", r.ComponentName)
	need("ComponentVersion", r.ComponentVersion)
	need("ComponentPublisher", r.ComponentPublisher)
	if !regexp.MustCompile(`^\d+\.\d+\.\d+$`).MatchString(r.ComponentVersion) {
		errs = append(errs, fmt.Errorf("ComponentVersion %q is not major.minor.patch", r.ComponentVersion))
	}
	oneOf("ComponentType", r.ComponentType, "aws.greengrass.generic", "aws.greengrass.lambda", "aws.greengrass.plugin", "aws.greengrass.nucleus")
	for name, d := range r.ComponentDependencies {
		need("ComponentDependencies."+name+".VersionRequirement", d.VersionRequirement)
		oneOf("ComponentDependencies."+name+".DependencyType", d.DependencyType, "HARD", "SOFT")
	}
	if len(r.Manifests) == 0 {
		errs = append(errs, errors.New("Manifests: at least one manifest is required"))
	}
	for i, m := range r.Manifests {
		for _, a := range m.Artifacts {
			need(fmt.Sprintf("Manifests[%d].Artifacts.URI", i), a.URI)
			oneOf(fmt.Sprintf("Manifests[%d].Artifacts.Unarchive", i), a.Unarchive, "NONE", "ZIP")
			if p := a.Permission; p != nil {
				oneOf("Permission.Read", p.Read, "NONE", "OWNER", "ALL")
				oneOf("Permission.Execute", p.Execute, "NONE", "OWNER", "ALL")
			}
		}
		if l := m.Lifecycle; l != nil {
			if l.Run != nil && l.Startup != nil {
				errs = append(errs, fmt.Errorf("Manifests[%d].Lifecycle: only one of Run and Startup", i))
			}
			for name, s := range map[string]*greengrassStep{"Bootstrap": l.Bootstrap, "Install": l.Install, "Run": l.Run,
				"Startup": l.Startup, "Shutdown": l.Shutdown, "Recover": l.Recover} {
				if s == nil {
					continue
				}
				need(fmt.Sprintf("Manifests[%d].Lifecycle.%s.Script", i, name), s.Script)
				if s.Skipif != "" && !regexp.MustCompile(`^(onpath|exists) \S`).MatchString(s.Skipif) {
					errs = append(errs, fmt.Errorf("Manifests[%d].Lifecycle.%s.Skipif %q is neither \"onpath ...\" nor \"exists ...\"", i, name, s.Skipif))
				}
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &r, nil
}
