// Package deploy_test checks the manifests under deploy/: each decodes
// strictly with the official types (see decode_test.go), a typo fails, the
// settings in them are ones the relay's run script accepts, and every path
// they name is one the project's install targets create.
package deploy_test

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kvsrelay/kvsrelay/internal/cameras"
	"github.com/kvsrelay/kvsrelay/internal/healthserver"
)

// The paths the manifests rely on, as install-systemd lays them out with
// PREFIX=/usr/local (checked by TestInstalledPaths).
const (
	runScript     = "/usr/local/lib/kvsrelay/kvs-relay-run"
	livenessProbe = "/usr/local/lib/kvsrelay/kvs-relay-liveness"
)

func read(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// kubernetes decodes every document under deploy/kubernetes.
type kubernetes struct {
	deployments     []*appsv1.Deployment
	configMaps      map[string]*corev1.ConfigMap
	serviceAccounts map[string]*corev1.ServiceAccount
	namespaces      map[string]bool
	namespaced      []metav1.ObjectMeta
}

func loadKubernetes(t *testing.T) kubernetes {
	t.Helper()
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/kubernetes (%v)", err)
	}
	k := kubernetes{configMaps: map[string]*corev1.ConfigMap{}, serviceAccounts: map[string]*corev1.ServiceAccount{}, namespaces: map[string]bool{}}
	for _, f := range files {
		for i, doc := range splitYAML(read(t, f)) {
			obj, err := decodeK8s(doc)
			if err != nil {
				t.Fatalf("%s document %d: %v", f, i+1, err)
			}
			switch o := obj.(type) {
			case *appsv1.Deployment:
				k.deployments = append(k.deployments, o)
				k.namespaced = append(k.namespaced, o.ObjectMeta)
			case *corev1.ConfigMap:
				k.configMaps[o.Name] = o
				k.namespaced = append(k.namespaced, o.ObjectMeta)
			case *corev1.ServiceAccount:
				k.serviceAccounts[o.Name] = o
				k.namespaced = append(k.namespaced, o.ObjectMeta)
			case *corev1.Namespace:
				k.namespaces[o.Name] = true
			default:
				t.Fatalf("%s document %d: a %T, which no check here covers", f, i+1, obj)
			}
		}
	}
	return k
}

// dryRun runs pipelines/kvs-relay-run with DRY_RUN=1 and exactly env (no
// AWS_* from this machine), as the image's entrypoint would, and returns the
// command it would exec.
func dryRun(t *testing.T, what string, env map[string]string) string {
	t.Helper()
	cmd := exec.Command("../pipelines/kvs-relay-run")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LANG=C", "DRY_RUN=1"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: kvs-relay-run refuses the manifest's settings: %v\n%s", what, err, errb.String())
	}
	return out.String()
}

// checkRelayCommand asserts what a dry run must show for a KVS relay with
// credentials from the default chain.
func checkRelayCommand(t *testing.T, what, cmd, stream string) {
	t.Helper()
	for _, want := range []string{"reconnectbin", "kvscredprovider source=default", "kvssink 'stream-name=\"" + stream + "\"'"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("%s: the relay command lacks %q:\n%s", what, want, cmd)
		}
	}
}

// forbiddenEnv would make kvssink ignore the refreshed credential file.
var forbiddenEnv = []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}

// under reports whether path lies in one of the folders.
func under(path string, folders []string) bool {
	for _, f := range folders {
		if path == f || strings.HasPrefix(path, strings.TrimSuffix(f, "/")+"/") {
			return true
		}
	}
	return false
}

// The image's read-only root leaves these writable only through volumes:
// the credential folder, the metrics file when there is one, GStreamer's
// registry (the image's CACHE_DIRECTORY) and temporary files.
func writablePaths(env map[string]string) []string {
	paths := []string{env["RUNTIME_DIRECTORY"], "/var/cache/kvsrelay", "/tmp"}
	if m := env["KVSRELAY_METRICS"]; strings.HasPrefix(m, "/") {
		paths = append(paths, filepath.Dir(m))
	}
	return paths
}

// healthPort checks a relay's KVSRELAY_HEALTH_ADDR as the plugin parses it
// and returns its port (0 when unusable, with the error reported).
func healthPort(t *testing.T, what string, env map[string]string, wantHost string) int {
	t.Helper()
	addr, err := healthserver.ParseAddr(env[healthserver.EnvAddr])
	if err != nil || addr == "" {
		t.Errorf("%s: %s=%q must serve /healthz: %v", what, healthserver.EnvAddr, env[healthserver.EnvAddr], err)
		return 0
	}
	host, port, _ := net.SplitHostPort(addr)
	if host != wantHost {
		t.Errorf("%s: %s listens on %s; its probes need %s", what, healthserver.EnvAddr, host, wantHost)
	}
	n, _ := strconv.Atoi(port)
	return n
}

func TestKubernetesManifests(t *testing.T) {
	k := loadKubernetes(t)
	if len(k.deployments) == 0 {
		t.Fatal("no Deployment")
	}
	for _, m := range k.namespaced {
		if !k.namespaces[m.Namespace] {
			t.Errorf("%s is in namespace %q, which is not among the manifests", m.Name, m.Namespace)
		}
	}
	for _, sa := range k.serviceAccounts {
		if !regexp.MustCompile(`^arn:aws:iam::\d{12}:role/.+`).MatchString(sa.Annotations["eks.amazonaws.com/role-arn"]) {
			t.Errorf("ServiceAccount %s: no IRSA role annotation (eks.amazonaws.com/role-arn)", sa.Name)
		}
	}
	for _, d := range k.deployments {
		spec := d.Spec.Template.Spec
		if _, ok := k.serviceAccounts[spec.ServiceAccountName]; !ok {
			t.Errorf("Deployment %s: ServiceAccount %q is not among the manifests", d.Name, spec.ServiceAccountName)
		}
		if d.Spec.Selector == nil || len(d.Spec.Selector.MatchLabels) == 0 {
			t.Fatalf("Deployment %s: no selector", d.Name)
		}
		for key, v := range d.Spec.Selector.MatchLabels {
			if d.Spec.Template.Labels[key] != v {
				t.Errorf("Deployment %s: selector %s=%s does not match the pod labels", d.Name, key, v)
			}
		}
		if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
			t.Errorf("Deployment %s: strategy %q lets two pods upload the same streams during a rollout", d.Name, d.Spec.Strategy.Type)
		}
		volumes := map[string]bool{}
		for _, v := range spec.Volumes {
			volumes[v.Name] = true
		}
		streams := map[string]string{}
		perContainer := map[string]string{} // KEY=value of settings no two relays may share
		for _, c := range spec.Containers {
			what := "Deployment " + d.Name + " container " + c.Name
			req := c.Resources.Requests
			if req.Cpu().IsZero() || req.Memory().IsZero() {
				t.Errorf("%s: no CPU or memory request", what)
			}
			if lim := c.Resources.Limits.Memory(); lim.IsZero() || lim.Cmp(*req.Memory()) < 0 {
				t.Errorf("%s: memory limit %v below the request %v", what, lim, req.Memory())
			}

			// The container's environment, resolved as the kubelet does:
			// envFrom first, env on top; optional secrets left out.
			env := map[string]string{}
			for _, from := range c.EnvFrom {
				if from.ConfigMapRef == nil {
					t.Fatalf("%s: envFrom other than a ConfigMap", what)
				}
				cm, ok := k.configMaps[from.ConfigMapRef.Name]
				if !ok {
					t.Fatalf("%s: envFrom ConfigMap %q is not among the manifests", what, from.ConfigMapRef.Name)
				}
				for key, v := range cm.Data {
					if regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`).MatchString(key) {
						env[key] = v
					}
				}
			}
			for _, e := range c.Env {
				switch {
				case e.ValueFrom == nil:
					env[e.Name] = e.Value
				case e.ValueFrom.ConfigMapKeyRef != nil:
					ref := e.ValueFrom.ConfigMapKeyRef
					cm, ok := k.configMaps[ref.Name]
					if !ok {
						t.Fatalf("%s: %s from ConfigMap %q, which is not among the manifests", what, e.Name, ref.Name)
					}
					v, ok := cm.Data[ref.Key]
					if !ok {
						t.Fatalf("%s: %s from key %q, which ConfigMap %s lacks", what, e.Name, ref.Key, ref.Name)
					}
					env[e.Name] = v
				case e.ValueFrom.SecretKeyRef != nil:
					if ref := e.ValueFrom.SecretKeyRef; ref.Optional == nil || !*ref.Optional {
						t.Errorf("%s: %s from a Secret that is not optional: the example would not start without it", what, e.Name)
					}
				}
			}
			for _, name := range forbiddenEnv {
				if _, ok := env[name]; ok {
					t.Errorf("%s: sets %s, which kvssink would prefer to the refreshed credential file", what, name)
				}
			}
			if env["CRED_SOURCE"] != "default" {
				t.Errorf("%s: CRED_SOURCE=%q; IRSA and Pod Identity need the default chain", what, env["CRED_SOURCE"])
			}
			if s := c.SecurityContext; s == nil || s.ReadOnlyRootFilesystem == nil || !*s.ReadOnlyRootFilesystem {
				t.Errorf("%s: root filesystem not read-only", what)
			}
			// The namespace enforces the "restricted" Pod Security Standard.
			psc := spec.SecurityContext
			if sc := c.SecurityContext; sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
				sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, corev1.Capability("ALL")) ||
				psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot ||
				psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("%s: does not meet the restricted Pod Security Standard (no privilege escalation, all capabilities dropped, non-root, RuntimeDefault seccomp)", what)
			}
			var mounts []string
			for _, m := range c.VolumeMounts {
				if !volumes[m.Name] {
					t.Errorf("%s: mounts volume %q, which the pod lacks", what, m.Name)
				}
				mounts = append(mounts, m.MountPath)
			}
			for _, p := range writablePaths(env) {
				if !under(p, mounts) {
					t.Errorf("%s: %s must be writable but is on the read-only root (mounts %v)", what, p, mounts)
				}
			}
			if other, dup := streams[env["STREAM_NAME"]]; dup {
				t.Errorf("%s: stream %s is also uploaded by container %s", what, env["STREAM_NAME"], other)
			}
			streams[env["STREAM_NAME"]] = c.Name
			// The kubelet probes the pod's IP, so the relay listens on every
			// address, on the port its probes name.
			port := healthPort(t, what, env, "0.0.0.0")
			ports := map[string]int32{}
			for _, p := range c.Ports {
				ports[p.Name] = p.ContainerPort
			}
			for _, p := range []*corev1.Probe{c.LivenessProbe, c.StartupProbe} {
				if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" {
					t.Errorf("%s: liveness and startup probes must GET /healthz, got %+v", what, p)
					continue
				}
				probed := p.HTTPGet.Port.IntVal
				if p.HTTPGet.Port.StrVal != "" {
					probed = ports[p.HTTPGet.Port.StrVal]
				}
				if int(probed) != port {
					t.Errorf("%s: a probe asks port %v, the relay serves /healthz on %d", what, p.HTTPGet.Port.String(), port)
				}
			}
			for _, key := range []string{"RUNTIME_DIRECTORY", healthserver.EnvAddr} {
				if env[key] == "" {
					t.Errorf("%s: %s is not set", what, key)
				} else if other, dup := perContainer[key+"="+env[key]]; dup {
					t.Errorf("%s: %s=%s is also container %s's", what, key, env[key], other)
				}
				perContainer[key+"="+env[key]] = c.Name
			}
			checkRelayCommand(t, what, dryRun(t, what, env), env["STREAM_NAME"])
		}
	}
}

func TestECSTaskDefinition(t *testing.T) {
	td, err := decodeTaskDefinition(read(t, "ecs/task-definition.json"))
	if err != nil {
		t.Fatal(err)
	}
	if td.TaskRoleArn == nil || !regexp.MustCompile(`^arn:aws:iam::\d{12}:role/.+`).MatchString(*td.TaskRoleArn) {
		t.Errorf("taskRoleArn %v: the relay needs a task role", td.TaskRoleArn)
	}
	volumes := map[string]bool{}
	for _, v := range td.Volumes {
		volumes[*v.Name] = true
	}
	if len(td.ContainerDefinitions) == 0 {
		t.Fatal("no container")
	}
	for _, c := range td.ContainerDefinitions {
		what := "container " + *c.Name
		hc := c.HealthCheck
		if hc == nil || !slices.Equal(hc.Command, []string{"CMD", livenessProbe}) || hc.StartPeriod == nil || *hc.StartPeriod < 60 {
			t.Errorf("%s: health check must be [CMD %s] with a start period, got %+v", what, livenessProbe, hc)
		}
		env := map[string]string{}
		for _, kv := range c.Environment {
			env[*kv.Name] = *kv.Value
		}
		// The health check runs inside the container: loopback is enough.
		healthPort(t, what, env, "127.0.0.1")
		for _, name := range forbiddenEnv {
			if _, ok := env[name]; ok {
				t.Errorf("%s: sets %s, which kvssink would prefer to the refreshed credential file", what, name)
			}
		}
		if len(c.Secrets) > 0 && td.ExecutionRoleArn == nil {
			t.Errorf("%s: secrets need an executionRoleArn", what)
		}
		if env["CRED_SOURCE"] != "default" {
			t.Errorf("%s: CRED_SOURCE=%q; the task role comes through the default chain", what, env["CRED_SOURCE"])
		}
		var mounts []string
		for _, m := range c.MountPoints {
			if !volumes[*m.SourceVolume] {
				t.Errorf("%s: mount of volume %q, which the task lacks", what, *m.SourceVolume)
			}
			mounts = append(mounts, *m.ContainerPath)
		}
		if c.ReadonlyRootFilesystem != nil && *c.ReadonlyRootFilesystem {
			for _, p := range writablePaths(env) {
				if !under(p, mounts) {
					t.Errorf("%s: %s must be writable but is on the read-only root (mounts %v)", what, p, mounts)
				}
			}
		}
		checkRelayCommand(t, what, dryRun(t, what, env), env["STREAM_NAME"])
	}
}

// recipeVariable matches a Greengrass recipe variable such as
// {configuration:/Source}.
var recipeVariable = regexp.MustCompile(`\{(configuration:/[A-Za-z0-9/]+|artifacts:decompressedPath|artifacts:path|work:path|kernel:rootPath|iot:thingName)\}`)

func TestGreengrassRecipe(t *testing.T) {
	r, err := decodeRecipe(read(t, "greengrass/recipe.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := r.ComponentDependencies["aws.greengrass.TokenExchangeService"]; !ok || d.DependencyType == "SOFT" {
		t.Errorf("the component must depend (HARD) on aws.greengrass.TokenExchangeService for its credentials: %+v", r.ComponentDependencies)
	}
	if len(r.Manifests) != 1 || r.Manifests[0].Lifecycle == nil || r.Manifests[0].Lifecycle.Install == nil || r.Manifests[0].Lifecycle.Run == nil {
		t.Fatalf("want one manifest with Install and Run steps: %+v", r.Manifests)
	}
	lc := r.Manifests[0].Lifecycle
	if !lc.Install.RequiresPrivilege {
		t.Error("Install builds and installs system-wide: it needs RequiresPrivilege")
	}
	if lc.Run.RequiresPrivilege {
		t.Error("the relay must not run as root")
	}
	marker := "/usr/local/lib/kvsrelay/.greengrass-installed-" + r.ComponentVersion
	if lc.Install.Skipif != "exists "+marker || !strings.Contains(lc.Install.Script, "touch "+marker) {
		t.Errorf("Install must be skipped once this version (%s) is installed: Skipif %q", r.ComponentVersion, lc.Install.Skipif)
	}
	for _, v := range []string{"kvsrelay-" + r.ComponentVersion} {
		if !strings.Contains(lc.Install.Script, v) {
			t.Errorf("Install builds in a folder named for another version than %s", r.ComponentVersion)
		}
	}
	if strings.TrimSpace(lc.Run.Script) != "exec "+runScript {
		t.Errorf("Run %q, want exec %s", lc.Run.Script, runScript)
	}
	checkMakeSteps(t, "Greengrass Install", lc.Install.Script)

	// The Run step's environment with the recipe variables filled in from
	// the default configuration and the nucleus's folders.
	config := r.ComponentConfiguration.DefaultConfiguration
	work := t.TempDir()
	env := map[string]string{}
	for k, v := range lc.Setenv {
		env[k] = recipeVariable.ReplaceAllStringFunc(v, func(m string) string {
			name := strings.Trim(m, "{}")
			switch {
			case strings.HasPrefix(name, "configuration:/"):
				val, ok := config[strings.TrimPrefix(name, "configuration:/")].(string)
				if !ok {
					t.Fatalf("Setenv %s uses %s, which DefaultConfiguration lacks (or is not a string)", k, m)
				}
				return val
			case name == "work:path":
				return work
			}
			t.Fatalf("Setenv %s uses %s, which this test does not fill in", k, m)
			return ""
		})
	}
	if strings.Contains(strings.Join(slices.Collect(mapsValues(env)), " "), "{") {
		t.Fatalf("unresolved recipe variables in %v", env)
	}
	if env["CRED_SOURCE"] != "default" {
		t.Errorf("CRED_SOURCE=%q; the token exchange service is reached through the default chain", env["CRED_SOURCE"])
	}
	for _, name := range forbiddenEnv {
		if _, ok := env[name]; ok {
			t.Errorf("Setenv sets %s, which kvssink would prefer to the refreshed credential file", name)
		}
	}
	checkRelayCommand(t, "Greengrass Run", dryRun(t, "Greengrass Run", env), env["STREAM_NAME"])
}

func mapsValues(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for _, v := range m {
			if !yield(v) {
				return
			}
		}
	}
}

// A typo in any manifest fails its decoder, naming the field.
func TestTyposFail(t *testing.T) {
	tests := []struct {
		file, old, new string
		decode         func([]byte) error
		want           string
	}{
		{"kubernetes/relay-group-a.yaml", "livenessProbe:", "livenesProbe:", k8sDecode, "livenesProbe"},
		{"kubernetes/relay-group-a.yaml", "configMapKeyRef:", "configMapKeyref:", k8sDecode, "configMapKeyref"},
		{"kubernetes/relay-group-a.yaml", "readOnlyRootFilesystem:", "readOnlyRootFileSystem:", k8sDecode, "readOnlyRootFileSystem"},
		{"kubernetes/relay-group-a.yaml", "    requests:", "    request:", k8sDecode, "request"},
		{"kubernetes/cameras-group-a.yaml", "\ndata:", "\ndatas:", k8sDecode, "datas"},
		{"kubernetes/serviceaccount.yaml", "annotations:", "anotations:", k8sDecode, "anotations"},
		{"ecs/task-definition.json", `"taskRoleArn"`, `"taskRoleARN"`, ecsDecode, "taskRoleARN"},
		{"ecs/task-definition.json", `"healthCheck"`, `"healthcheck"`, ecsDecode, "healthcheck"},
		{"ecs/task-definition.json", `"startPeriod"`, `"startPeriods"`, ecsDecode, "startPeriods"},
		{"ecs/task-definition.json", `"awsvpc"`, `"awsvcp"`, ecsDecode, "awsvcp"},
		{"greengrass/recipe.yaml", "RequiresPrivilege:", "RequirePrivilege:", recipeDecode, "RequirePrivilege"},
		{"greengrass/recipe.yaml", "    Lifecycle:", "    LifeCycle:", recipeDecode, "LifeCycle"},
		{"greengrass/recipe.yaml", "Unarchive: ZIP", "Unarchive: TAR", recipeDecode, "TAR"},
		{"greengrass/recipe.yaml", "DependencyType: HARD", "DependencyType: hard", recipeDecode, "hard"},
	}
	for _, tt := range tests {
		t.Run(tt.file+"/"+tt.new, func(t *testing.T) {
			orig := string(read(t, tt.file))
			if err := tt.decode([]byte(orig)); err != nil {
				t.Fatalf("the file as committed fails: %v", err)
			}
			if !strings.Contains(orig, tt.old) {
				t.Fatalf("%q not in %s: the case is stale", tt.old, tt.file)
			}
			err := tt.decode([]byte(strings.Replace(orig, tt.old, tt.new, 1)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("with %q for %q: error %v, want one naming %q", tt.new, tt.old, err, tt.want)
			}
		})
	}
}

func k8sDecode(data []byte) error {
	for _, doc := range splitYAML(data) {
		if _, err := decodeK8s(doc); err != nil {
			return err
		}
	}
	return nil
}

func ecsDecode(data []byte) error { _, err := decodeTaskDefinition(data); return err }

func recipeDecode(data []byte) error { _, err := decodeRecipe(data); return err }

// --- image recipe --------------------------------------------------------------

// containerfileInstructions returns the Containerfile's instructions
// (continuation lines joined, comments dropped) as keyword and argument.
func containerfileInstructions(t *testing.T) [][2]string {
	t.Helper()
	var out [][2]string
	var cur strings.Builder
	for _, line := range strings.Split(string(read(t, "Containerfile")), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		kw, arg, _ := strings.Cut(cur.String(), " ")
		out = append(out, [2]string{strings.ToUpper(kw), strings.TrimSpace(arg)})
		cur.Reset()
	}
	return out
}

// makeTargets finds the make invocations in a shell script and returns
// their targets (words that are neither options nor VAR=value) and their
// variable settings.
func makeInvocations(script string) [][]string {
	var out [][]string
	for _, cmd := range regexp.MustCompile(`&&|\|\||;|\n`).Split(script, -1) {
		words := strings.Fields(cmd)
		for len(words) > 0 && strings.Contains(words[0], "=") {
			words = words[1:] // VAR=value before the command
		}
		if len(words) > 0 && words[0] == "make" {
			out = append(out, words[1:])
		}
	}
	return out
}

// checkMakeSteps asserts that script calls make, and that every target it
// names exists in the Makefile (make -n: nothing is run) and is one of the
// project's build and install targets.
func checkMakeSteps(t *testing.T, what, script string) []string {
	t.Helper()
	calls := makeInvocations(script)
	if len(calls) == 0 {
		t.Fatalf("%s calls no make target", what)
	}
	var targets []string
	for _, args := range calls {
		var tgts, vars []string
		for _, a := range args {
			switch {
			case strings.HasPrefix(a, "-"):
				t.Errorf("%s: make option %s: the steps should be plain targets", what, a)
			case strings.Contains(a, "="):
				vars = append(vars, a)
			default:
				tgts = append(tgts, a)
			}
		}
		for _, tgt := range tgts {
			cmd := exec.Command("make", append([]string{"-n", "--no-print-directory", tgt}, vars...)...)
			cmd.Dir = ".."
			out, err := cmd.CombinedOutput()
			if err != nil || strings.Contains(string(out), "No rule to make target") {
				t.Errorf("%s: make %s is not a target of the Makefile: %v\n%s", what, tgt, err, out)
			}
			targets = append(targets, tgt)
		}
	}
	for _, need := range []string{"deps", "build", "kvssink", "install-systemd"} {
		if !slices.Contains(targets, need) {
			t.Errorf("%s: never runs make %s (targets %v)", what, need, targets)
		}
	}
	// Scripts of the checkout called directly must exist and take the
	// options given.
	for _, m := range regexp.MustCompile(`(scripts/[a-z0-9-]+\.sh)((?: --?[a-z-]+)*)`).FindAllStringSubmatch(script, -1) {
		body, err := os.ReadFile(filepath.Join("..", m[1]))
		if err != nil {
			t.Errorf("%s: calls %s: %v", what, m[1], err)
			continue
		}
		for _, opt := range strings.Fields(m[2]) {
			if !strings.Contains(string(body), opt+")") {
				t.Errorf("%s: %s does not take %s", what, m[1], opt)
			}
		}
	}
	return targets
}

func TestContainerfile(t *testing.T) {
	var runs []string
	var entrypoint, healthcheck, stopSignal string
	env := map[string]string{}
	for _, in := range containerfileInstructions(t) {
		switch in[0] {
		case "RUN":
			runs = append(runs, in[1])
		case "ENTRYPOINT":
			entrypoint = in[1]
		case "HEALTHCHECK":
			healthcheck = in[1]
		case "STOPSIGNAL":
			stopSignal = in[1]
		case "ENV":
			for _, kv := range strings.Fields(in[1]) {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
		}
	}
	all := strings.Join(runs, "\n")
	checkMakeSteps(t, "Containerfile", all)
	// Apart from apt's bootstrap of make and the user, the RUN steps are
	// the make targets and the kvssink folder link.
	for _, r := range runs {
		if !strings.HasPrefix(r, "make ") && !strings.Contains(r, " make ") &&
			!strings.HasPrefix(r, "apt-get update") && !strings.HasPrefix(r, "useradd ") {
			t.Errorf("RUN step that is not a project target: %s", r)
		}
	}
	if entrypoint != `["`+runScript+`"]` {
		t.Errorf("ENTRYPOINT %s, want [%q]", entrypoint, runScript)
	}
	// A container stop must reach gst-launch-1.0 as SIGINT, the signal its
	// -e answers with EOS (SIGTERM, the default, drops what kvssink holds).
	if stopSignal != "SIGINT" {
		t.Errorf("STOPSIGNAL %q, want SIGINT", stopSignal)
	}
	if !strings.HasSuffix(healthcheck, `CMD ["`+livenessProbe+`"]`) {
		t.Errorf("HEALTHCHECK %q does not run %s", healthcheck, livenessProbe)
	}
	// The HEALTHCHECK's probe asks /healthz inside the container.
	healthPort(t, "Containerfile", env, "127.0.0.1")
	link := regexp.MustCompile(`ln -sfn "\$\([^)]*\)" (\S+)`).FindStringSubmatch(all)
	if link == nil || env["KVSSINK_PLUGIN_DIR"] != link[1] {
		t.Errorf("KVSSINK_PLUGIN_DIR=%q is not the kvssink folder the RUN steps link (%v)", env["KVSSINK_PLUGIN_DIR"], link)
	}
	// The image's own defaults make a working relay with nothing but the
	// camera settings.
	env["RECIPE"], env["SOURCE"], env["STREAM_NAME"], env["AWS_REGION"], env["CRED_SOURCE"] =
		"rtsp-passthrough", "rtsp://10.0.0.21/stream1", "image-cam", "eu-west-1", "default"
	checkRelayCommand(t, "image defaults", dryRun(t, "image defaults", env), "image-cam")
}

// The paths the manifests and the image name are the ones install-systemd
// creates with PREFIX=/usr/local (installed into a temporary DESTDIR, with
// stand-ins for the built plugin and kvscredfile).
func TestInstalledPaths(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatal("make is not installed")
	}
	tmp := t.TempDir()
	plugin, cred := filepath.Join(tmp, "libgstkvsrelay.so"), filepath.Join(tmp, "kvscredfile")
	for _, f := range []string{plugin, cred} {
		if err := os.WriteFile(f, []byte("stand-in"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dest := filepath.Join(tmp, "dest")
	cmd := exec.Command("make", "-s", "install-systemd", "DESTDIR="+dest, "PREFIX=/usr/local",
		"SYSTEMD_UNITDIR=/usr/local/share/kvsrelay/systemd", "KVSRELAY_PLUGIN_SO="+plugin, "KVSCREDFILE_BIN="+cred)
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install-systemd: %v\n%s", err, out)
	}
	for _, p := range []string{runScript, livenessProbe} {
		st, err := os.Stat(filepath.Join(dest, p))
		if err != nil || st.Mode().Perm()&0o111 == 0 {
			t.Errorf("%s is not installed as an executable: %v", p, err)
		}
	}
	var installed []string
	_ = filepath.Walk(dest, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			installed = append(installed, strings.TrimPrefix(p, dest))
		}
		return nil
	})
	sort.Strings(installed)
	if !slices.ContainsFunc(installed, func(p string) bool { return strings.HasSuffix(p, "/gstreamer-1.0/libgstkvsrelay.so") }) {
		t.Errorf("no plugin installed: %v", installed)
	}
}

// The group's ConfigMap is what kvsrelay-cameras makes from the group's
// settings file (deploy/cameras/group-a.yaml), and every camera listed
// there has its container in the Deployment.
func TestConfigMapIsMadeFromTheCameraSettings(t *testing.T) {
	k := loadKubernetes(t)
	s, err := cameras.Load("cameras/group-a.yaml")
	if err != nil {
		t.Fatal(err)
	}
	checked, ok := k.configMaps["kvs-relay-group-a"]
	if !ok {
		t.Fatal("no ConfigMap kvs-relay-group-a")
	}
	made, err := s.ConfigMap(cameras.ConfigMapOptions{Name: checked.Name, Namespace: checked.Namespace, Labels: checked.Labels})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(made.Data, checked.Data) {
		t.Errorf("kubernetes/cameras-group-a.yaml is not what cameras/group-a.yaml makes:\nchecked in %v\nmade       %v", checked.Data, made.Data)
	}
	containers := map[string]bool{}
	for _, d := range k.deployments {
		for _, c := range d.Spec.Template.Spec.Containers {
			containers[c.Name] = true
		}
	}
	for _, c := range s.Cameras {
		if !containers[c.Name] {
			t.Errorf("camera %s has no container in the Deployment", c.Name)
		}
	}
}
