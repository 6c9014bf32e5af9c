# shellcheck shell=bash
# Shared by the MPEG-TS recipes (SRT, TCP, UDP); sourced after common.sh.
#
# ts_pipeline SRC-DESCRIPTION: run SRC ! tsdemux ! (h264parse | decodebin)
# inside reconnectbin. TRANSCODE=0 (default) passes the H.264 through;
# TRANSCODE=1 decodes any codec and re-encodes at OUTPUT_CAPS with a fallback.
ts_pipeline() {
	local src=$1 inner
	: "${TRANSCODE:=0}"
	case $TRANSCODE in
	0)
		inner="$src ! tsdemux ! h264parse"
		RB="reconnectbin name=relay source=$(gst_quote "$inner")"
		PASSTHROUGH_HINT="set TRANSCODE=1 to decode and re-encode with them"
		reconnect_props
		run_pipeline "$RB"
		;;
	1)
		inner="$src ! tsdemux ! decodebin"
		# With AUDIO=aac the audio must leave reconnectbin decoded too (the
		# fallback's silence is raw): one decodebin demuxes and decodes
		# every stream.
		[[ $AUDIO == off ]] || inner="$src ! decodebin"
		RB="reconnectbin name=relay source=$(gst_quote "$inner")"
		reconnect_props raw
		ENC=$(encoder_chain)
		run_pipeline "$RB ! $ENC"
		;;
	*) die "TRANSCODE=\"$TRANSCODE\" must be 0 (pass H.264 through) or 1 (decode and re-encode)" ;;
	esac
}

# split_host_port URL SCHEME: sets HOST and PORT from scheme://host:port
# (IPv6 as [addr]:port). An empty host is allowed (listeners).
split_host_port() {
	local url=$1 scheme=$2 rest
	[[ $url == "$scheme://"* ]] || die "SOURCE=\"$url\" must start with $scheme://"
	rest=${url#"$scheme://"}
	rest=${rest%%[/?]*}
	if [[ $rest =~ ^\[([0-9a-fA-F:.]+)\]:([0-9]+)$ || $rest =~ ^([^:]*):([0-9]+)$ ]]; then
		HOST=${BASH_REMATCH[1]} PORT=${BASH_REMATCH[2]}
	else
		die "SOURCE=\"$url\" must look like $scheme://host:port"
	fi
	((PORT > 0 && PORT < 65536)) || die "SOURCE=\"$url\": port $PORT is out of range"
}

# srt_uri URL MODE: URL with mode=MODE in its query (kept if URL sets one).
# srtsrc takes the mode only from the URI: its listen address and port are
# derived from the URI when the URI is set, so a separate mode=listener
# property after it leaves the listener on a random port (GStreamer 1.22).
srt_uri() {
	local url=$1 mode=$2 query=
	[[ $url == *\?* ]] && query=${url#*\?}
	if [[ $query =~ (^|&)mode= ]]; then
		printf '%s' "$url"
	elif [[ -n $query ]]; then
		printf '%s&mode=%s' "$url" "$mode"
	else
		printf '%s?mode=%s' "$url" "$mode"
	fi
}
