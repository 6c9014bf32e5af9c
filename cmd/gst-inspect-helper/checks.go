package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/kvsrelay/kvsrelay/internal/plugininfo"
)

const gstInspect = "gst-inspect-1.0"

// missingGstInspect is the one sentence a host without GStreamer's tools gets.
const missingGstInspect = "gst-inspect-1.0 not found: install gstreamer1.0-tools (make deps)"

// notChecked is the detail of checks that need gst-inspect-1.0 when it is missing.
const notChecked = "not checked: gst-inspect-1.0 not found"

// minGStreamer is the oldest GStreamer kvsrelay is tested against.
var minGStreamer = [2]int{1, 20}

var gstVersionLine = regexp.MustCompile(`(?m)^GStreamer (\d+)\.(\d+)(\.\d+)?`)

func checkGStreamerVersion(ctx context.Context, d *doctor) []checkResult {
	const name = "gstreamer version"
	res := d.Run(ctx, d.gstEnv(), gstInspect, "--version")
	if res.NotFound {
		d.gstInspectMissing = true
		return []checkResult{{name, statusFail, missingGstInspect}}
	}
	if res.Err != nil {
		return []checkResult{{name, statusFail, res.Err.Error()}}
	}
	m := gstVersionLine.FindStringSubmatch(res.Stdout)
	if res.ExitCode != 0 || m == nil {
		return []checkResult{{name, statusWarn, fmt.Sprintf("could not read the version from %s --version (exit status %d): %s",
			gstInspect, res.ExitCode, firstLine(res.Stderr, res.Stdout))}}
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	version := strings.TrimPrefix(m[0], "GStreamer ")
	if major < minGStreamer[0] || (major == minGStreamer[0] && minor < minGStreamer[1]) {
		return []checkResult{{name, statusWarn, fmt.Sprintf("GStreamer %s is older than %d.%d, the oldest kvsrelay is tested with",
			version, minGStreamer[0], minGStreamer[1])}}
	}
	return []checkResult{{name, statusPass, "GStreamer " + version}}
}

var (
	pluginVersionLine  = regexp.MustCompile(`(?m)^\s*Version\s+(\S+)`)
	pluginFilenameLine = regexp.MustCompile(`(?m)^\s*Filename\s+(.+?)\s*$`)
)

// checkPluginLoads asks gst-inspect-1.0, in its own process, to load the
// installed plugin. Loading libgstkvsrelay.so here would start a second Go
// runtime in this process.
func checkPluginLoads(ctx context.Context, d *doctor) []checkResult {
	const name = "kvsrelay plugin"
	if d.gstInspectMissing {
		return []checkResult{{name, statusFail, notChecked}}
	}
	res := d.Run(ctx, d.gstEnv(), gstInspect, plugininfo.PluginName)
	if res.Err != nil {
		return []checkResult{{name, statusFail, res.Err.Error()}}
	}
	if res.ExitCode != 0 {
		return []checkResult{{name, statusFail, fmt.Sprintf("%s %s: %s; install it with make install, or put the folder holding libgstkvsrelay.so on GST_PLUGIN_PATH (%s)",
			gstInspect, plugininfo.PluginName, firstLine(res.Stderr, res.Stdout), d.describePluginPath())}}
	}
	var missing []string
	for _, el := range plugininfo.Elements {
		if !regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(el) + `:`).MatchString(res.Stdout) {
			missing = append(missing, el)
		}
	}
	if len(missing) > 0 {
		return []checkResult{{name, statusFail, fmt.Sprintf("the installed plugin lacks %s: it is older than this helper; run make install",
			strings.Join(missing, ", "))}}
	}
	where := ""
	if m := pluginFilenameLine.FindStringSubmatch(res.Stdout); m != nil {
		where = " from " + m[1]
	}
	if m := pluginVersionLine.FindStringSubmatch(res.Stdout); m != nil && m[1] != plugininfo.Version {
		return []checkResult{{name, statusWarn, fmt.Sprintf("installed plugin%s is version %s, this helper is %s: run make install",
			where, m[1], plugininfo.Version)}}
	}
	return []checkResult{{name, statusPass, fmt.Sprintf("loads%s (version %s)", where, plugininfo.Version)}}
}

// describePluginPath says which GST_PLUGIN_PATH gst-inspect-1.0 used.
func (d *doctor) describePluginPath() string {
	for i := len(d.envFile) - 1; i >= 0; i-- {
		if a := d.envFile[i]; a.Key == "GST_PLUGIN_PATH" {
			return fmt.Sprintf("GST_PLUGIN_PATH=%s from %s", a.Value, d.EnvFile)
		}
	}
	if v, ok := d.LookupEnv("GST_PLUGIN_PATH"); ok && v != "" {
		return "GST_PLUGIN_PATH=" + v
	}
	return "GST_PLUGIN_PATH is not set"
}

// requiredElement is an element relay pipelines use and where it comes from.
type requiredElement struct {
	name string
	// warnOnly elements are not in Debian; their hint explains where they come from.
	warnOnly bool
	hint     string
}

var requiredElements = []requiredElement{
	{name: "kvssink", warnOnly: true, hint: "kvssink comes from the amazon-kinesis-video-streams-producer-sdk-cpp build " +
		"(-DBUILD_GSTREAMER_PLUGIN=ON) and the folder holding libgstkvssink.so must be on GST_PLUGIN_PATH"},
	{name: "souphttpsrc", hint: "install gstreamer1.0-plugins-good"},
	{name: "hlsdemux", hint: "install gstreamer1.0-plugins-bad"},
	{name: "rtspsrc", hint: "install gstreamer1.0-plugins-good"},
	{name: "srtsrc", hint: "install gstreamer1.0-plugins-bad"},
	{name: "decodebin", hint: "install gstreamer1.0-plugins-base"},
	{name: "x264enc", hint: "install gstreamer1.0-plugins-ugly"},
	{name: "h264parse", hint: "install gstreamer1.0-plugins-bad"},
}

func checkElements(ctx context.Context, d *doctor) []checkResult {
	if d.gstInspectMissing {
		return []checkResult{{"elements", statusFail, notChecked}}
	}
	rows := make([]checkResult, 0, len(requiredElements))
	for _, el := range requiredElements {
		name := "element " + el.name
		res := d.Run(ctx, d.gstEnv(), gstInspect, "--exists", el.name)
		switch {
		case res.Err != nil:
			rows = append(rows, checkResult{name, statusFail, res.Err.Error()})
		case res.ExitCode == 0:
			rows = append(rows, checkResult{name, statusPass, "present"})
		case el.warnOnly:
			rows = append(rows, checkResult{name, statusWarn, "not found: " + el.hint})
		default:
			rows = append(rows, checkResult{name, statusFail, "not found: " + el.hint})
		}
	}
	return rows
}

// awsCredentialVars are the variables kvssink prefers over its
// credential-path file (see /work/shared/kvssink-contract.md).
var awsCredentialVars = []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}

const overrideWarning = "they silently override kvssink's credential file (credential-path), " +
	"so kvscredprovider's fresh credentials are ignored; remove them from the relay's environment"

// checkAWSEnvironment names (never shows) AWS credential variables in this
// process's environment.
func checkAWSEnvironment(_ context.Context, d *doctor) []checkResult {
	const name = "AWS_* environment"
	var set []string
	for _, k := range awsCredentialVars {
		if _, ok := d.LookupEnv(k); ok {
			set = append(set, k)
		}
	}
	if len(set) > 0 {
		return []checkResult{{name, statusWarn, fmt.Sprintf("%s set in this environment: %s", strings.Join(set, ", "), overrideWarning)}}
	}
	return []checkResult{{name, statusPass, "no AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or AWS_SESSION_TOKEN in this environment"}}
}

// checkEnvFile looks at the relay's EnvironmentFile: it must be readable
// and must not set AWS credential variables.
func checkEnvFile(_ context.Context, d *doctor) []checkResult {
	if d.EnvFile == "" {
		return nil
	}
	name := "env file"
	if d.envFileErr != nil {
		return []checkResult{{name, statusFail, fmt.Sprintf("cannot read %s: %v", d.EnvFile, d.envFileErr)}}
	}
	var rows []checkResult
	var found []string
	for _, a := range d.envFile {
		for _, k := range awsCredentialVars {
			if a.Key == k {
				found = append(found, fmt.Sprintf("%s:%d sets %s", d.EnvFile, a.Line, k))
			}
		}
	}
	if len(found) > 0 {
		rows = append(rows, checkResult{name, statusWarn, strings.Join(found, ", ") + ": " + overrideWarning})
	}
	for _, p := range d.envProblem {
		rows = append(rows, checkResult{name, statusWarn, fmt.Sprintf("%s:%d: %s", d.EnvFile, p.Line, p.Text)})
	}
	if len(rows) == 0 {
		rows = append(rows, checkResult{name, statusPass, fmt.Sprintf("%s: %d variables, no AWS credential variables", d.EnvFile, len(d.envFile))})
	}
	return rows
}

const defaultIMDSEndpoint = "http://169.254.169.254"

var sdkStatusCode = regexp.MustCompile(`StatusCode: (\d+)`)

const imdsUnreachable = "not on EC2 or IMDS blocked; kvscredprovider source=imds will fail"

// checkIMDS does what kvscredprovider source=imds does first: get an IMDSv2
// token, then list the instance's roles.
func checkIMDS(ctx context.Context, d *doctor) []checkResult {
	const name = "IMDSv2"
	if v, ok := d.LookupEnv("AWS_EC2_METADATA_DISABLED"); ok && strings.EqualFold(v, "true") {
		return []checkResult{{name, statusWarn, "AWS_EC2_METADATA_DISABLED=true in this environment; kvscredprovider source=imds will fail"}}
	}
	endpoint, _ := d.LookupEnv("AWS_EC2_METADATA_SERVICE_ENDPOINT")
	opts := imds.Options{
		Endpoint:          endpoint,
		ClientEnableState: imds.ClientEnabled,
		// Only IMDSv2 counts: kvscredprovider never falls back to v1.
		EnableFallback: aws.FalseTernary,
		Retryer:        aws.NopRetryer{},
		// IMDS is link-local: a proxy from HTTP_PROXY must not be used.
		HTTPClient: &http.Client{Timeout: d.IMDSTimeout, Transport: &http.Transport{Proxy: nil}},
	}
	if mode, _ := d.LookupEnv("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE"); strings.EqualFold(mode, "IPv6") {
		opts.EndpointMode = imds.EndpointModeStateIPv6
	}
	where := endpoint
	if where == "" {
		where = defaultIMDSEndpoint
		if opts.EndpointMode == imds.EndpointModeStateIPv6 {
			where = "http://[fd00:ec2::254]"
		}
	}

	ctx, cancel := context.WithTimeout(ctx, d.IMDSTimeout)
	defer cancel()
	out, err := imds.New(opts).GetMetadata(ctx, &imds.GetMetadataInput{Path: "iam/security-credentials/"})
	if err != nil {
		var re *smithyhttp.ResponseError
		if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound {
			return []checkResult{{name, statusWarn, fmt.Sprintf("reachable at %s but no IAM role is attached to this instance; kvscredprovider source=imds will fail", where)}}
		}
		cause := oneLine(err.Error())
		switch {
		case ctx.Err() != nil:
			cause = fmt.Sprintf("no answer within %s", d.IMDSTimeout)
		case strings.Contains(err.Error(), "failed to get API token"):
			// The SDK wraps token failures without Unwrap; its text carries the status.
			cause = "the token request (PUT /latest/api/token) failed"
			if m := sdkStatusCode.FindStringSubmatch(err.Error()); m != nil {
				cause += " with HTTP " + m[1]
			}
		case errors.As(err, &re):
			cause = fmt.Sprintf("the role list request got HTTP %d", re.HTTPStatusCode())
		}
		return []checkResult{{name, statusWarn, fmt.Sprintf("not reachable at %s (%s): %s", where, cause, imdsUnreachable)}}
	}
	defer out.Content.Close()
	body, err := io.ReadAll(io.LimitReader(out.Content, 64<<10))
	if err != nil {
		return []checkResult{{name, statusWarn, fmt.Sprintf("reading the role list from %s: %v", where, err)}}
	}
	roles := strings.Fields(string(body))
	if len(roles) == 0 {
		return []checkResult{{name, statusWarn, fmt.Sprintf("reachable at %s but no IAM role is attached to this instance; kvscredprovider source=imds will fail", where)}}
	}
	return []checkResult{{name, statusPass, fmt.Sprintf("reachable at %s; instance role %s", where, strings.Join(roles, ", "))}}
}

// firstLine returns the first non-blank line of the first text that has one.
func firstLine(texts ...string) string {
	for _, t := range texts {
		for _, l := range strings.Split(t, "\n") {
			if l = strings.TrimSpace(l); l != "" {
				return l
			}
		}
	}
	return "no output"
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
