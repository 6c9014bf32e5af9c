// Package kvscredprovider implements the kvscredprovider element: a padless
// element that fetches AWS credentials (IMDSv2 first, the SDK's default chain
// where asked) and keeps every kvssink in its pipeline supplied with fresh
// ones through kvssink's credential-path file, long before they expire.
//
// # How the credentials beat kvssink's NULL->READY
//
// kvssink reads its credential file at NULL->READY, and a bin changes the
// state of its sinks before its other elements, so the provider's own
// NULL->READY always comes after kvssink's. The provider therefore does its
// work when it is added to a bin, which gst-launch-1.0 (and any application)
// does before the first state change:
//
//  1. It joins a bin: the set_bus override (parenthooks.go) notices and, in
//     the adding thread once the bin's lock is released, the element finds
//     the top-level bin, points credential-path of every kvssink already in
//     it (recursively) at its file, and watches deep-element-added on the
//     top-level bin for kvssinks added later (kvscredprovider may come before
//     or after kvssink in a gst-launch line).
//  2. Still inside that call it fetches and writes credentials
//     synchronously (credrefresh.Keeper.Prime, bounded by PrimeTimeout), so
//     the file exists before the pipeline's first state change, then starts
//     the refresh goroutine.
//  3. If no credentials could be had by then, it posts a WARNING with the
//     reason, keeps retrying in the background, and holds the kvssinks in
//     NULL (gst_element_set_locked_state), so that the pipeline's start
//     reaches the provider's own NULL->READY, which then fails with an ERROR
//     naming the cause. Without the hold, kvssink's "Could not find any AWS
//     credentials!" would come first, and gst-launch-1.0 prints only the
//     errors posted after the pipeline was parsed. If credentials arrive in
//     time, the kvssinks are released and start normally. With credentials
//     in place nothing is ever held.
//
// The provider may also sit inside a bin of its own ("( kvscredprovider )"
// in a gst-launch line, or a bin an application builds and adds to its
// pipeline later): when that bin joins a larger one, step 1 runs again for
// the new top-level bin (the set_clock override in parenthooks.go sees
// the add, since a bin hands its clock to everything inside it), still
// before the pipeline's first state change. At its own NULL->READY the
// provider resolves the top-level bin once more; a kvssink it finds already
// started without its file (the provider joined a running pipeline, or a
// bin with a running kvssink joined later) gets an ERROR: kvssink reads
// credential-path only at its start, so that kvssink would fail silently
// at its first token renewal instead.
//
// At READY->NULL the provider stops refreshing and removes the file; the
// kvssinks (already in NULL: a bin stops its sinks first) are held there, so
// that a restart of the pipeline brings them up only after the provider's
// NULL->READY has written credentials again. The credentials it had are
// kept in memory (never logged) across the stop: if they still have well
// over kvssink's margins left (credrefresh.MinSeedRemaining) the restart
// writes them at once and asks the source in the background, so an IMDS
// outage at that moment does not fail the start (static stability). Leaving
// the bin (gst_bin_remove, or the pipeline being freed) also stops the
// refresh, removes the file, forgets the credentials and releases held
// kvssinks.
//
// The credential folder: one created by the provider is 0700; an existing
// one that group or other users can write to is refused (they could replace
// the file kvssink reads), one they can only list gets a WARNING (the file
// itself is 0600). systemd creates RuntimeDirectory= folders 0755 unless
// RuntimeDirectoryMode=0700 is set.
//
// With KVSRELAY_METRICS set, CredentialSecondsToExpiry and
// CredentialRefreshFailures are recorded in the CloudWatch EMF stream of
// every kvssink supplied (named after its stream-name, as reconnectbin
// names its stream), see metrics.go.
//
// Upload health (upload.go, uploadhooks.go): every kvssink found is also
// watched from the provider's NULL->READY to its READY->NULL, for whether
// its upload gets through: fragment acknowledgements, stream errors, frames
// going in, put frame errors. The rule (internal/uploadhealth): frames going
// in without a PERSISTED acknowledgement for ack-timeout is a stall
// (kvscredprovider-upload-stalled, a WARNING); past max(ack-timeout,
// kvssink's buffer-duration) too it is a wedge, and the process's systemd
// watchdog pings stop (internal/sdnotify's Health) with a STATUS= line
// saying why. It waits for buffer-duration because until then kvssink still
// holds what did not reach the service and sends it when the network is
// back; a restart would lose it and cannot fix the network. The next
// PERSISTED acknowledgement ends both (kvscredprovider-upload-resumed).
// Frames kvssink loses anyway (evicted from a full buffer, skipped) are
// read from its own counters and reported
// (kvscredprovider-upload-frames-lost, a WARNING).
// Errors post kvscredprovider-upload-error. EMF: UploadAckAgeSeconds,
// UploadAckLatencySeconds, UploadErrors, UploadFramesDropped in the
// kvssink's stream. A pipeline without kvssink watches nothing.
//
// Settings (source, role, profile, credential-path, refresh-before) are read
// when the element joins a bin (gst-launch-1.0 sets them before that) and at
// each NULL->READY after a stop. A change made while the element is in a
// bin and in NULL with credentials written restarts the refresh at once
// (synchronously).
//
// This file holds the registration and the property table (each property is
// documented once, here); element.go is the GObject glue, parenthooks.go
// tells it when it joins or leaves a bin, session.go runs one credential
// refresh, kvssinks.go finds and configures kvssinks, upload.go and
// uploadhooks.go watch their uploads. Decisions
// (when to refresh, backoff, what is valid, when an upload is wedged) live
// in internal/credrefresh, internal/credsource, internal/credfile and
// internal/uploadhealth.
package kvscredprovider

import (
	"math"
	"time"

	"github.com/go-gst/go-glib/glib"
	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/credrefresh"
	"github.com/kvsrelay/kvsrelay/internal/gstshim"
	"github.com/kvsrelay/kvsrelay/internal/uploadhealth"
)

// FactoryName is the name gst-launch-1.0 and gst_element_factory_make use.
const FactoryName = "kvscredprovider"

// Defaults and limits of the properties below.
const (
	DefaultRefreshBefore = credrefresh.DefaultRefreshBefore
	MinRefreshBefore     = credrefresh.MinRefreshBefore
	// PrimeTimeout bounds the synchronous first fetch when the element joins
	// a bin (gst-launch-1.0 waits for it before starting the pipeline).
	PrimeTimeout = 30 * time.Second
)

// Bus message names (GST_MESSAGE_ELEMENT structures).
const (
	// MessageRefreshed: new credentials were written. Fields access-key-id
	// (string, masked ****ABCD), expiration (string, RFC 3339 UTC) and
	// reused (boolean: true when credentials kept in memory from before a
	// restart were written again instead of fetched).
	MessageRefreshed = "kvscredprovider-refreshed"
	// MessageRefreshFailed: a fetch or write failed; the file keeps the last
	// valid credentials. Fields reason (string), time-left (guint64 ns the
	// current credentials stay valid, 0 when there are none), attempt (gint:
	// failed attempts since the last successful write; answers that only
	// repeat the current credentials do not count). The first failure of an
	// outage (attempt 1) is also posted as a bus WARNING.
	MessageRefreshFailed = "kvscredprovider-refresh-failed"
	// MessageUploadStalled: a kvssink got no PERSISTED fragment
	// acknowledgement for ack-timeout while frames went into it. Fields
	// kvssink (string: its name), stream-name (string), ack-age (guint64
	// ns: the wait so far), restart-after (guint64 ns: the wait after
	// which the systemd watchdog pings stop, max(ack-timeout, kvssink's
	// buffer-duration)) and last-error (string: the last ERROR
	// acknowledgement or stream error seen, "" when none). Also posted as a
	// bus WARNING; a second WARNING follows when the pings stop.
	MessageUploadStalled = "kvscredprovider-upload-stalled"
	// MessageUploadResumed: a PERSISTED acknowledgement ended a stall.
	// Fields kvssink, stream-name, stalled-for (guint64 ns: the wait it
	// ended).
	MessageUploadResumed = "kvscredprovider-upload-resumed"
	// MessageUploadError: an ERROR fragment acknowledgement or a kvssink
	// stream error. Fields kvssink, stream-name, source (string:
	// "error-ack" or "stream-error"), status (guint64: the ack's ErrorId,
	// e.g. 4004, or the SDK status, e.g. 0x52000049), fragment-timecode
	// (guint64 ms, error-ack only, else 0) and description (string).
	MessageUploadError = "kvscredprovider-upload-error"
	// MessageUploadFramesLost: kvssink evicted unsent frames from its full
	// buffer (a network outage longer than its buffer-duration or
	// storage-size hold), as its own counters say (the provider turns on
	// kvssink's get-kvs-metrics to read them). Posted at the first loss, then at most every 10 s while
	// frames keep being lost, also as a bus WARNING. Fields kvssink,
	// stream-name, frames (guint64: lost since the previous message),
	// dropped and skipped (guint64: totals so far), backlog (guint64 ns:
	// what kvssink holds unsent), buffer-duration (guint64 ns: kvssink's).
	MessageUploadFramesLost = "kvscredprovider-upload-frames-lost"
)

// DefaultAckTimeout is the ack-timeout property's default.
const DefaultAckTimeout = uploadhealth.DefaultAckTimeout

var cat = gst.NewDebugCategory(FactoryName, gst.DebugColorNone, "kvsrelay kvscredprovider: credential refresh for kvssink")

// Register registers kvscredprovider with plugin, or statically when plugin is nil.
func Register(plugin *gst.Plugin) bool {
	return gst.RegisterElement(plugin, FactoryName, gst.RankNone, &credProvider{}, gst.ExtendsElement)
}

const rw = glib.ParameterReadWrite
const ro = glib.ParameterReadable

// Property indexes: properties[i] is what SetProperty/GetProperty receive as id.
const (
	propSource = iota
	propRole
	propProfile
	propCredentialPath
	propRefreshBefore
	propExpiration
	propStatus
	propAckTimeout
	propUploadStatus
)

// Values of the source enum (GstKvsCredProviderSource).
const (
	sourceIMDS    = 0
	sourceDefault = 1
)

var sourceType = gstshim.RegisterEnum("GstKvsCredProviderSource", []gstshim.EnumValue{
	{Value: sourceIMDS, Name: "EC2 instance role through IMDSv2", Nick: "imds"},
	{Value: sourceDefault, Name: "AWS SDK default credential chain", Nick: "default"},
})

var properties = []*glib.ParamSpec{
	propSource: gstshim.EnumParam("source", "Credential source",
		"Where credentials come from: imds (the EC2 instance role through IMDSv2 only; "+
			"AWS_EC2_METADATA_SERVICE_ENDPOINT overrides the endpoint) or default (the AWS SDK default chain: "+
			"environment, shared config and credentials files with profile, SSO, web identity, ECS, IMDS). "+
			"Read when the element joins a bin and at each start.",
		sourceType, sourceIMDS, rw),
	propRole: glib.NewStringParam("role", "IAM role",
		"IAM role name whose credentials IMDS serves, for source=imds. Unset: the first role IMDS lists "+
			"(an instance profile holds one role).",
		nil, rw),
	propProfile: glib.NewStringParam("profile", "Shared config profile",
		"Profile of the shared AWS config and credentials files, for source=default. Unset: AWS_PROFILE, "+
			"else \"default\".",
		nil, rw),
	propCredentialPath: glib.NewStringParam("credential-path", "Credential file",
		"File the credentials are written to (mode 0600, atomically replaced) and that every kvssink in the "+
			"pipeline gets as its credential-path. Unset: credential-<pid>-<element name> in $RUNTIME_DIRECTORY, "+
			"else $XDG_RUNTIME_DIR/kvsrelay, else a new private temporary folder; reading the property then "+
			"gives the chosen file once the element is in a bin. A missing folder is created 0700; an existing "+
			"folder that group or others can write to is refused, one they can read gets a warning. "+
			"The file is removed at READY->NULL and when the element leaves its bin.",
		nil, rw),
	propRefreshBefore: glib.NewUint64Param("refresh-before", "Refresh before expiry (ns)",
		"Fetch new credentials this long before the current ones expire; failed attempts are retried with "+
			"backoff while the current file stays in place. At least 150000000000 (2 min 30 s): kvssink needs "+
			"the file valid for over a minute when it re-reads it; smaller values fail the start with an error.",
		0, math.MaxUint64, uint64(DefaultRefreshBefore), rw),
	propExpiration: glib.NewStringParam("expiration", "Expiration",
		"When the credentials now in the file expire, RFC 3339 in UTC (e.g. 2026-03-01T18:04:05Z); "+
			"null while none have been written.",
		nil, ro),
	propStatus: glib.NewStringParam("status", "Status",
		"idle (not in a bin yet), fetching (no credentials yet, trying), valid, degraded (refresh failing, "+
			"the file still valid), expired (the file's credentials expired, still trying) or stopped "+
			"(after READY->NULL, leaving the bin, or bad settings).",
		nil, ro),
	propAckTimeout: glib.NewUint64Param("ack-timeout", "Upload acknowledgement timeout (ns)",
		"Upload health of every kvssink in the pipeline: when frames keep going into a kvssink but no PERSISTED "+
			"fragment acknowledgement has come for this long, a kvscredprovider-upload-stalled message and a WARNING "+
			"are posted; once the wait also passes that kvssink's buffer-duration (what kvssink still holds and would "+
			"send after a network outage), the process's systemd watchdog pings (WATCHDOG=1) stop so that systemd "+
			"restarts it, and STATUS= says why. The next PERSISTED acknowledgement ends both. 0 turns this off "+
			"(errors are still reported); otherwise at least 10000000000 (10 s). Needs kvssink's fragment-acks=true "+
			"(its default). Read at each NULL->READY.",
		0, math.MaxUint64, uint64(DefaultAckTimeout), rw),
	propUploadStatus: glib.NewStringParam("upload-status", "Upload status",
		"One GstStructure per watched kvssink, separated by \"; \" (parse it with gst_caps_from_string): upload, "+
			"kvssink, stream-name, state (waiting: no frame yet; ok; stalled; wedged: watchdog pings withheld; "+
			"unwatched: fragment-acks=false), ack-age (ns waited for a PERSISTED acknowledgement, 0 when nothing "+
			"waits), latency (ns from the last fragment's BUFFERING to its PERSISTED acknowledgement), frames-in, "+
			"persisted, error-acks, stream-errors, frames-dropped (put frame errors kvssink reported), stalls, "+
			"last-status, and from kvssink's own counters (0 until it reported them): buffer-dropped (frames "+
			"evicted unsent from its full buffer), skipped (frames it did not send after a reset or refused fragment; "+
			"the service may have them from an earlier connection), backlog (ns it holds unsent). "+
			"Null while nothing is watched (no kvssink, or not started).",
		nil, ro),
}
