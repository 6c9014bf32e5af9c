# shellcheck shell=bash
# Shared by the recipe scripts in this folder; sourced, never run.
#
# Builds the gst-launch-1.0 argument list in the array ARGS, then either
# prints it (DRY_RUN=1) or replaces the shell with gst-launch-1.0 (exec), so
# that under systemd gst-launch IS the unit's main process: it receives the
# stop signal, and its sd_notify READY=1/WATCHDOG=1 are accepted with
# NotifyAccess=main.

# The caps kvssink needs right before it: it picks its track type from the
# caps allowed at start (see docs: kvssink contract).
readonly KVS_CAPS='video/x-h264,stream-format=avc,alignment=au'
readonly DEFAULT_OUTPUT_CAPS='video/x-raw,format=I420,width=1280,height=720,framerate=25/1'
# What kvssink's audio pad gets with AUDIO=aac: raw AAC with codec data
# (aacparse converts), the format the KVS console and HLS playback play.
readonly KVS_AUDIO_CAPS='audio/mpeg,mpegversion=4,stream-format=raw'

die() {
	printf '%s: %s\n' "${RECIPE_NAME:-kvs-relay}" "$*" >&2
	exit 2
}

warn() {
	printf '%s: warning: %s\n' "${RECIPE_NAME:-kvs-relay}" "$*" >&2
}

# gst_quote VALUE: VALUE as a double-quoted gst-launch string, so spaces,
# '!' and quotes inside it stay part of the value. Apply twice for a value
# inside reconnectbin's source description (itself a quoted value).
gst_quote() {
	local v=${1//\\/\\\\}
	v=${v//\"/\\\"}
	printf '"%s"' "$v"
}

# require_uint NAME: fail with a clear message unless $NAME is empty or a
# non-negative integer.
require_uint() {
	local name=$1 value=${!1:-}
	[[ -z $value || $value =~ ^[0-9]+$ ]] || die "$name=\"$value\" is not a non-negative integer"
}

# require_int NAME: like require_uint, also allowing -1 style values.
require_int() {
	local name=$1 value=${!1:-}
	[[ -z $value || $value =~ ^-?[0-9]+$ ]] || die "$name=\"$value\" is not an integer"
}

# words STRING: append the gst-launch tokens of STRING to ARGS, splitting at
# whitespace outside double quotes, as a shell user would quote them. Each
# token reaches gst-launch-1.0 as one argument and is parsed exactly as
# written: whitespace inside quoted values is kept.
words() {
	local s=$1 tok='' c i inq=0 esc=0 have=0
	for ((i = 0; i < ${#s}; i++)); do
		c=${s:i:1}
		if ((esc)); then
			tok+=$c esc=0
			continue
		fi
		case $c in
		\\) tok+=$c esc=1 have=1 ;;
		\") tok+=$c inq=$((1 - inq)) have=1 ;;
		[[:space:]])
			if ((inq)); then
				tok+=$c
			elif ((have)); then
				ARGS+=("$tok")
				tok='' have=0
			fi
			;;
		*) tok+=$c have=1 ;;
		esac
	done
	((inq == 0)) || die "unbalanced double quote in: $s"
	((have == 0)) || ARGS+=("$tok")
}

# kvssink_buffer_props: size kvssink's buffer for an outage to KVS of
# OUTAGE_BUDGET_S seconds (default 120, kvssink's own buffer-duration) at
# STREAM_KBPS (default BITRATE_KBPS, else 4000), so a network cut that short
# loses nothing (kvssink resends what it holds once the network is back):
#   buffer-duration = OUTAGE_BUDGET_S + 30 s (the fragments in flight and
#                     kvssink noticing the cut)
#   storage-size    = STREAM_KBPS * 1000/8 * buffer-duration * 1.25 (MKV
#                     overhead and headroom), in MiB rounded up, at least
#                     kvssink's default 128 MiB
#   replay-duration = buffer-duration: how far back kvssink rewinds when it
#                     opens a new putMedia call after a failed one (its
#                     default 40 s). It rewinds to the oldest frame not yet
#                     acknowledged as persisted, but never further than this:
#                     frames it had already written into the dead connection
#                     before that (a cut longer than 40 s) are never sent
#                     again, and leave a hole nobody counts (issue #14 part 3)
# Past that, kvssink drops the oldest frames (STATUS_STORE_OUT_OF_MEMORY is
# the storage running out first). Appended to SINK unless KVSSINK_EXTRA sets
# the property itself.
kvssink_buffer_props() {
	require_uint OUTAGE_BUDGET_S
	require_uint STREAM_KBPS
	local budget=${OUTAGE_BUDGET_S:-120} kbps=${STREAM_KBPS:-${BITRATE_KBPS:-4000}}
	[[ $kbps =~ ^[0-9]+$ ]] || die "BITRATE_KBPS=\"$kbps\" is not a non-negative integer"
	local duration=$((budget + 30))
	local mib=$(((kbps * 125 * duration * 5 / 4 + 1048575) / 1048576))
	((mib >= 128)) || mib=128
	[[ " ${KVSSINK_EXTRA:-} " == *" buffer-duration="* ]] || SINK+=" buffer-duration=$duration"
	[[ " ${KVSSINK_EXTRA:-} " == *" storage-size="* ]] || SINK+=" storage-size=$mib"
	[[ " ${KVSSINK_EXTRA:-} " == *" replay-duration="* ]] || SINK+=" replay-duration=$duration"
}

# audio_settings: AUDIO (off or aac) and the AAC encoding settings. The
# camera's audio is off by default (video only, as before): kvssink with an
# audio track waits for audio before it uploads anything, so audio is only
# for cameras that send it.
audio_settings() {
	: "${AUDIO:=off}"
	case $AUDIO in
	off | aac) ;;
	*) die "AUDIO=\"$AUDIO\" must be off (video only) or aac (the camera's audio, any codec, re-encoded to AAC)" ;;
	esac
	require_uint AUDIO_RATE
	require_uint AUDIO_CHANNELS
	require_uint AUDIO_BITRATE_KBPS
	: "${AUDIO_RATE:=48000}" "${AUDIO_CHANNELS:=1}" "${AUDIO_BITRATE_KBPS:=64}"
	case $AUDIO_RATE in
	8000 | 11025 | 12000 | 16000 | 22050 | 24000 | 32000 | 44100 | 48000) ;;
	*) die "AUDIO_RATE=\"$AUDIO_RATE\" is not an AAC sample rate (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)" ;;
	esac
	((AUDIO_CHANNELS >= 1 && AUDIO_CHANNELS <= 2)) || die "AUDIO_CHANNELS=\"$AUDIO_CHANNELS\" must be 1 or 2"
	((AUDIO_BITRATE_KBPS >= 16)) || die "AUDIO_BITRATE_KBPS=\"$AUDIO_BITRATE_KBPS\" must be at least 16"
}

# kvsrelay_common_env: defaults every recipe shares. Sets SINK, CREDS and
# SINK_IS_KVS.
kvsrelay_common_env() {
	audio_settings
	: "${STREAM_NAME:=kvsrelay-test}"
	: "${AWS_REGION:=${AWS_DEFAULT_REGION:-us-east-1}}"
	[[ $STREAM_NAME =~ ^[a-zA-Z0-9_.-]{1,256}$ ]] ||
		die "STREAM_NAME=\"$STREAM_NAME\" is not a valid KVS stream name (1-256 of a-z A-Z 0-9 _ . -)"

	if [[ -z ${SINK:-} ]]; then
		SINK="kvssink stream-name=$(gst_quote "$STREAM_NAME") aws-region=$(gst_quote "$AWS_REGION")"
		# The audio branch links to kvssink by this name.
		[[ $AUDIO == off ]] || SINK="kvssink name=kvs${SINK#kvssink}"
		# Sidecar credentials (kvscredfile@.service): no element, the file
		# path goes to kvssink itself.
		if [[ -n ${CREDENTIAL_PATH:-} && -n ${CREDS+set} && -z ${CREDS} ]]; then
			SINK+=" credential-path=$(gst_quote "$CREDENTIAL_PATH")"
		fi
		kvssink_buffer_props
		[[ -z ${KVSSINK_EXTRA:-} ]] || SINK+=" $KVSSINK_EXTRA"
	fi
	SINK_IS_KVS=0
	[[ $SINK =~ (^|[[:space:]!])kvssink([[:space:]]|$) ]] && SINK_IS_KVS=1
	if [[ $AUDIO != off && ! $SINK =~ (^|[[:space:]])name=kvs([[:space:]]|$) ]]; then
		die "AUDIO=$AUDIO needs the element of SINK that takes the audio named kvs, e.g. SINK=\"kvssink name=kvs ...\" or SINK=\"matroskamux name=kvs ! filesink location=...\""
	fi

	# CREDS unset: kvscredprovider when uploading to KVS, nothing for a local
	# sink (so swapping SINK alone runs the recipe offline). CREDS set, even
	# to "", is used as given.
	if [[ -z ${CREDS+set} ]]; then
		CREDS=
		if ((SINK_IS_KVS)); then
			CREDS="kvscredprovider"
			[[ -z ${CRED_SOURCE:-} ]] || CREDS+=" source=$CRED_SOURCE"
			[[ -z ${CRED_ROLE:-} ]] || CREDS+=" role=$(gst_quote "$CRED_ROLE")"
			[[ -z ${CRED_PROFILE:-} ]] || CREDS+=" profile=$(gst_quote "$CRED_PROFILE")"
			[[ -z ${CREDENTIAL_PATH:-} ]] || CREDS+=" credential-path=$(gst_quote "$CREDENTIAL_PATH")"
			if [[ -n ${CRED_REFRESH_BEFORE_MS:-} ]]; then
				require_uint CRED_REFRESH_BEFORE_MS
				CREDS+=" refresh-before=${CRED_REFRESH_BEFORE_MS}000000"
			fi
		fi
	fi

	if ((SINK_IS_KVS)); then
		# kvssink takes static keys over its credential file, and they never
		# refresh: the incident's expired-token failure.
		if [[ -n ${AWS_ACCESS_KEY_ID:-} || -n ${AWS_SECRET_ACCESS_KEY:-} ]]; then
			warn "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are set: kvssink will use them instead of the refreshed credential file, and uploads stop when they expire; unset them"
		fi
		if [[ -n ${AWS_DEFAULT_REGION:-} && $AWS_DEFAULT_REGION != "$AWS_REGION" ]]; then
			warn "AWS_DEFAULT_REGION=$AWS_DEFAULT_REGION overrides aws-region=$AWS_REGION inside kvssink"
		fi
	fi
}

# reconnect_props [raw]: reconnectbin's properties from the environment,
# appended to the string in RB. Unset variables keep the element's defaults.
# "raw" adds output-caps and the fallback, which need decoded video; without
# it they are ignored with a warning.
reconnect_props() {
	local raw=${1:-}
	local v
	for v in STALL_TIMEOUT_MS RETRY_DELAY_MS MAX_RETRY_DELAY_MS; do require_uint "$v"; done
	require_int MAX_RETRIES
	[[ -z ${STALL_TIMEOUT_MS:-} ]] || RB+=" stall-timeout=${STALL_TIMEOUT_MS}000000"
	[[ -z ${RETRY_DELAY_MS:-} ]] || RB+=" retry-delay=${RETRY_DELAY_MS}000000"
	[[ -z ${MAX_RETRY_DELAY_MS:-} ]] || RB+=" max-retry-delay=${MAX_RETRY_DELAY_MS}000000"
	[[ -z ${MAX_RETRIES:-} ]] || RB+=" max-retries=$MAX_RETRIES"
	RB+=" restart-on-eos=true"

	if [[ $raw == raw ]]; then
		: "${OUTPUT_CAPS:=$DEFAULT_OUTPUT_CAPS}"
		: "${FALLBACK:=black}"
		case $FALLBACK in
		none | black | image) ;;
		*) die "FALLBACK=\"$FALLBACK\" must be none, black or image" ;;
		esac
		if [[ $FALLBACK == image && -z ${FALLBACK_IMAGE:-} ]]; then
			die "FALLBACK=image needs FALLBACK_IMAGE (a PNG or JPEG file)"
		fi
		RB+=" output-caps=$(gst_quote "$OUTPUT_CAPS") fallback=$FALLBACK"
		if [[ $AUDIO != off ]]; then
			# The source's audio arrives decoded here; one fixed format, in
			# which the fallback's silence is made too, so the AAC encoder is
			# configured once whatever the camera sends.
			RB+=" output-audio-caps=audio/x-raw,format=S16LE,layout=interleaved,rate=$AUDIO_RATE,channels=$AUDIO_CHANNELS"
			AUDIO_DECODE=
		fi
		require_uint FALLBACK_HOLD_MS
		[[ -z ${FALLBACK_HOLD_MS:-} ]] || RB+=" fallback-hold=${FALLBACK_HOLD_MS}000000"
		[[ -z ${FALLBACK_IMAGE:-} ]] || RB+=" fallback-image=$(gst_quote "$FALLBACK_IMAGE")"
	else
		warn_unused_transcode_settings
	fi
}

# warn_unused_transcode_settings: a passthrough pipeline has no decoded
# video, so the settings of the transcoding recipes do not apply. One settings
# file (like example-cam.env) serves every recipe, so they are ignored with
# one warning naming them, not refused. PASSTHROUGH_HINT says how to get them.
warn_unused_transcode_settings() {
	local v unused=()
	for v in FALLBACK OUTPUT_CAPS FALLBACK_IMAGE FALLBACK_HOLD_MS BITRATE_KBPS KEY_INT_MAX X264_PRESET; do
		[[ -n ${!v:-} ]] || continue
		[[ $v == FALLBACK && ${FALLBACK} == none ]] && continue
		unused+=("$v")
	done
	((${#unused[@]} == 0)) && return 0
	local list
	list=$(printf '%s, ' "${unused[@]}")
	warn "ignoring ${list%, }: this recipe passes the camera's H.264 through, so there is no decoded video to scale, re-encode or replace with a fallback picture (${PASSTHROUGH_HINT:-use a transcoding recipe for them})"
}

# encoder_chain: the H.264 encoder after a raw reconnectbin. No leaky queue
# anywhere: a sink that stops accepting data must block the push, so the
# systemd watchdog sees the wedge and restarts the process.
encoder_chain() {
	require_uint BITRATE_KBPS
	require_uint KEY_INT_MAX
	local fps num=25 den=1
	# Default GOP: 2 s of frames at the output frame rate (one KVS fragment).
	if [[ $OUTPUT_CAPS =~ framerate=(\([a-z]+\))?([0-9]+)/([0-9]+) ]]; then
		num=${BASH_REMATCH[2]} den=${BASH_REMATCH[3]}
	fi
	fps=$(((num + den - 1) / den))
	((fps > 0)) || fps=25
	: "${KEY_INT_MAX:=$((2 * fps))}"
	: "${BITRATE_KBPS:=2000}"
	: "${X264_PRESET:=superfast}"
	printf '%s' "videoconvert ! x264enc tune=zerolatency speed-preset=$X264_PRESET bitrate=$BITRATE_KBPS key-int-max=$KEY_INT_MAX ! h264parse"
}

# AUDIO_DECODE: how the audio branch gets raw audio from reconnectbin's
# audio pad. A passthrough source hands over what the camera sends (RTP
# G.711 or AAC from rtspsrc, AAC or MP2 from tsdemux): decodebin depayloads
# and decodes any of it. A transcoding recipe (reconnect_props raw) decodes
# inside reconnectbin and clears it.
AUDIO_DECODE='decodebin !'

# audio_chain: reconnectbin's audio pad to kvssink's audio pad, for
# AUDIO=aac. avenc_aac (FFmpeg's AAC encoder, gstreamer1.0-libav, which the
# transcoding recipes need for H.264 decoding anyway) rather than voaacenc
# (plugins-bad, an unmaintained encoder). The raw format is fixed, so a
# camera that comes back with another rate or channel count does not change
# the AAC codec data kvssink keeps from its first caps. No leaky queue: a
# wedged kvssink must block (see encoder_chain).
# audiorate makes the samples contiguous before the encoder: a camera's RTP
# audio stamped by rtpjitterbuffer on a loaded machine runs early (128 ms
# packets 123 ms apart, then one 31 ms before the last one ended);
# audioresample resyncs on that and the AAC encoder's output steps back,
# which kvssink refuses, and the next video frame with it (its DTS is filled
# in from the audio's). audiorate drops the overlapping samples and fills
# gaps (a camera restart) with silence instead.
audio_chain() {
	printf '%s' "relay.audio ! queue ! $AUDIO_DECODE audiorate skip-to-first=true ! audioconvert ! audioresample ! audio/x-raw,rate=$AUDIO_RATE,channels=$AUDIO_CHANNELS ! avenc_aac bitrate=$((AUDIO_BITRATE_KBPS * 1000)) ! aacparse ! $KVS_AUDIO_CAPS ! kvs."
}

# run_pipeline DESCRIPTION: CREDS, then DESCRIPTION, then the kvssink caps and
# SINK (and the audio branch for AUDIO=aac); exec gst-launch-1.0, or print
# the command for DRY_RUN=1.
run_pipeline() {
	ARGS=()
	[[ -z $CREDS ]] || words "$CREDS"
	words "$1"
	ARGS+=("!" "$KVS_CAPS" "!")
	words "$SINK"
	[[ $AUDIO == off ]] || words "$(audio_chain)"
	# -e: on SIGINT (the unit's KillSignal, Ctrl-C by hand) gst-launch sends
	# EOS and waits for it to reach kvssink, which then closes its last
	# fragment and uploads what it holds; without it a stop drops them.
	local -a flags=(-e)
	[[ -z ${GST_LAUNCH_FLAGS:-} ]] || read -r -a flags <<<"-e $GST_LAUNCH_FLAGS"

	if [[ ${DRY_RUN:-0} != 0 ]]; then
		print_command gst-launch-1.0 "${flags[@]}" "${ARGS[@]}"
		exit 0
	fi
	printf '%s: running: ' "${RECIPE_NAME:-kvs-relay}" >&2
	print_command gst-launch-1.0 "${flags[@]}" "${ARGS[@]}" >&2
	exec gst-launch-1.0 "${flags[@]}" "${ARGS[@]}"
}

# print_command WORD...: one shell-ready line; secrets (RTSP/SRT passwords,
# passwords in URLs) are replaced by ****.
print_command() {
	local w out=()
	for w in "$@"; do
		w=$(mask_secrets "$w")
		if [[ $w =~ ^[][A-Za-z0-9_./:=,@%+^-]+$ || $w == '!' ]]; then
			out+=("$w")
		else
			out+=("'${w//\'/\'\\\'\'}'")
		fi
	done
	printf '%s\n' "${out[*]}"
}

mask_secrets() {
	local w=$1 secret q1 q2
	for secret in "${RTSP_PASSWORD:-}" "${SRT_PASSPHRASE:-}"; do
		[[ -n $secret ]] || continue
		q1=$(gst_quote "$secret")
		q1=${q1:1:${#q1}-2}
		q2=$(gst_quote "$q1")
		q2=${q2:1:${#q2}-2}
		w=${w//"$q2"/****}
		w=${w//"$q1"/****}
		w=${w//"$secret"/****}
	done
	# a password in a URL: scheme://user:password@host
	w=$(sed -E 's#(://[^/:@"[:space:]]+:)[^@/"[:space:]]+@#\1****@#g' <<<"$w")
	printf '%s' "$w"
}
