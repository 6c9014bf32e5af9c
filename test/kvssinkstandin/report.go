package kvssinkstandin

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Report is what the stand-in saw, written as JSON to the `report` property
// path (or $KVSSINK_STANDIN_REPORT) so tests can assert that kvssink would
// have been happy. Times are wall-clock (with KVSSINK_STANDIN_CLOCK_OFFSET
// applied); running times are nanoseconds.
type Report struct {
	StreamName string `json:"stream_name"`
	// Region is the effective region: AWS_DEFAULT_REGION when set (even
	// empty), else the aws-region property.
	Region       string `json:"region"`
	RegionSource string `json:"region_source"` // "property" or "AWS_DEFAULT_REGION"
	// CredentialSource is "iot", "static", "env" or "file" ("" when start failed before choosing).
	CredentialSource string `json:"credential_source"`
	CredentialPath   string `json:"credential_path,omitempty"`
	// SessionTokenFromEnv: static/env keys took their session token from AWS_SESSION_TOKEN.
	SessionTokenFromEnv bool `json:"session_token_from_env,omitempty"`
	// Started: NULL->READY succeeded.
	Started bool `json:"started"`
	// MediaTypes maps pad name to the media type kvssink picked at start
	// from the pad's allowed caps.
	MediaTypes map[string]string `json:"media_types"`

	FramesAccepted map[string]uint64 `json:"frames_accepted"` // by pad name (video_0, audio_0)
	FramesDropped  map[string]uint64 `json:"frames_dropped"`  // by reason (Drop* constants)
	// RunningTimeViolations counts frames dropped for going backwards.
	RunningTimeViolations uint64  `json:"running_time_violations"`
	FirstPTSRunningTime   *uint64 `json:"first_pts_rt"`
	LastPTSRunningTime    *uint64 `json:"last_pts_rt"`
	// MaxGapNs is the largest step in decoding running time between two
	// accepted frames of the same track.
	MaxGapNs  uint64 `json:"max_gap_ns"`
	Keyframes uint64 `json:"keyframes"`
	Fragments uint64 `json:"fragments"`

	Caps []CapsRecord `json:"caps"`
	// CapsChanges counts caps events whose codec_data, width or height
	// differ from the track's first caps: the real kvssink ignores them and
	// uploads the rest of the stream under the old codec data.
	CapsChanges int `json:"caps_changes"`

	CredentialReads []CredentialRead `json:"credential_reads"`
	AccessKeysUsed  []AccessKeyUse   `json:"access_keys_used"`
	// FramesWithExpiredCredentials counts frames put after credentials lapsed.
	FramesWithExpiredCredentials uint64 `json:"frames_with_expired_credentials"`
	// StreamErrors lists the first stream errors raised (stream-error
	// signal): credentials lapsing, every failed credential file re-read.
	StreamErrors      []StreamError `json:"stream_errors"`
	StreamErrorsTotal int           `json:"stream_errors_total"`

	Errors        []string  `json:"errors"`
	Warnings      []string  `json:"warnings"`
	WarningsTotal int       `json:"warnings_total"` // Warnings keeps the first maxListed
	EOS           bool      `json:"eos"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// CapsRecord is one caps event on a track.
type CapsRecord struct {
	Track     string    `json:"track"`
	Caps      string    `json:"caps"`
	CodecData string    `json:"codec_data"` // hex, "" when absent
	Width     int       `json:"width,omitempty"`
	Height    int       `json:"height,omitempty"`
	Time      time.Time `json:"time"`
	// Changed: codec_data, width or height differ from the track's first caps.
	Changed bool `json:"changed"`
}

// CredentialRead is one read of the credential file (identical consecutive
// failures are folded into one record with Count > 1).
type CredentialRead struct {
	Time           time.Time  `json:"time"`
	LastTime       *time.Time `json:"last_time,omitempty"`
	Count          int        `json:"count"`
	OK             bool       `json:"ok"`
	Error          string     `json:"error,omitempty"`
	Status         string     `json:"status,omitempty"`        // 0x........ on failure
	AccessKeyID    string     `json:"access_key_id,omitempty"` // masked to the last 4
	Expiration     *time.Time `json:"expiration,omitempty"`    // effective (capped) expiration
	TokenTruncated bool       `json:"token_truncated,omitempty"`
}

// AccessKeyUse is an access key that signed accepted frames.
type AccessKeyUse struct {
	Key       string    `json:"key"` // masked to the last 4
	FirstUsed time.Time `json:"first_used"`
	LastUsed  time.Time `json:"last_used"`
	Frames    uint64    `json:"frames"`
}

// StreamError is a stream-error the stand-in raised.
type StreamError struct {
	Time    time.Time `json:"time"`
	Status  string    `json:"status"`
	Message string    `json:"message"`
}

// ReadReport loads a report written by the stand-in.
func ReadReport(path string) (*Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read kvssink stand-in report: %w", err)
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("parse kvssink stand-in report %s: %w", path, err)
	}
	return &r, nil
}

// Dropped returns the number of frames dropped for reason.
func (r *Report) Dropped(reason string) uint64 { return r.FramesDropped[reason] }

// TotalAccepted sums accepted frames over all tracks.
func (r *Report) TotalAccepted() uint64 {
	var n uint64
	for _, v := range r.FramesAccepted {
		n += v
	}
	return n
}

const maxListed = 200

func newReport() *Report {
	return &Report{
		MediaTypes:      map[string]string{},
		FramesAccepted:  map[string]uint64{},
		FramesDropped:   map[string]uint64{},
		Caps:            []CapsRecord{},
		CredentialReads: []CredentialRead{},
		AccessKeysUsed:  []AccessKeyUse{},
		StreamErrors:    []StreamError{},
		Errors:          []string{},
		Warnings:        []string{},
	}
}

func (r *Report) addWarning(w string) {
	r.WarningsTotal++
	if len(r.Warnings) < maxListed {
		r.Warnings = append(r.Warnings, w)
	}
}

func (r *Report) addError(e string) {
	if len(r.Errors) < maxListed {
		r.Errors = append(r.Errors, e)
	}
}

func (r *Report) addStreamError(e StreamError) {
	r.StreamErrorsTotal++
	if len(r.StreamErrors) < maxListed {
		r.StreamErrors = append(r.StreamErrors, e)
	}
}

func (r *Report) addRead(rec CredentialRead) {
	if n := len(r.CredentialReads); n > 0 {
		last := &r.CredentialReads[n-1]
		if !rec.OK && !last.OK && last.Error == rec.Error {
			last.Count++
			t := rec.Time
			last.LastTime = &t
			return
		}
	}
	if len(r.CredentialReads) < maxListed {
		r.CredentialReads = append(r.CredentialReads, rec)
	}
}

func (r *Report) useKey(masked string, now time.Time) {
	for i := range r.AccessKeysUsed {
		if r.AccessKeysUsed[i].Key == masked {
			r.AccessKeysUsed[i].LastUsed = now
			r.AccessKeysUsed[i].Frames++
			return
		}
	}
	r.AccessKeysUsed = append(r.AccessKeysUsed, AccessKeyUse{Key: masked, FirstUsed: now, LastUsed: now, Frames: 1})
}

// encode renders r as the report file's content.
func (r *Report) encode() []byte {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		// Only plain data types, so this cannot happen; never panic in a plugin.
		data, _ = json.Marshal(map[string]any{"errors": []string{"encode report: " + err.Error()}})
	}
	return data
}

// writeReportFile writes data atomically (temp file, fsync, rename) so a
// reader never sees half a report.
func writeReportFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".kvssink-report-*")
	if err != nil {
		return fmt.Errorf("write kvssink stand-in report %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write kvssink stand-in report %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync kvssink stand-in report %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close kvssink stand-in report %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replace kvssink stand-in report %s: %w", path, err)
	}
	return nil
}
