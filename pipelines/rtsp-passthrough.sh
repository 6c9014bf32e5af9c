#!/usr/bin/env bash
# rtsp-passthrough.sh: relay an RTSP camera's H.264 into Kinesis Video Streams
# without re-encoding (no CPU for video, no quality loss).
#
# rtspsrc, depayloading and h264parse run inside reconnectbin, which rebuilds
# them when the camera drops the session or goes quiet. No fallback picture:
# that needs decoded video (use a transcoding recipe if you need one). The
# camera must keep the same resolution and SPS/PPS across reconnects, since
# kvssink keeps the codec data of its first caps for the whole run.
#
#   SOURCE=rtsp://10.0.0.21:554/Streaming/Channels/101 RTSP_USER=relay RTSP_PASSWORD=... STREAM_NAME=cam-1 ./rtsp-passthrough.sh
#
# Variables (see README.md for the shared ones):
#   SOURCE            rtsp:// URL (required)
#   RTSP_USER         user-id for the camera [none]
#   RTSP_PASSWORD     user-pw for the camera [none]; masked in printed commands
#   RTSP_PROTOCOLS    rtspsrc protocols: tcp, udp, tcp+udp, ... [tcp]
#   RTSP_LATENCY_MS   jitterbuffer latency [200]
set -euo pipefail
RECIPE_NAME=rtsp-passthrough
# shellcheck source=common.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh"

[[ ${SOURCE:-} == rtsp://* || ${SOURCE:-} == rtsps://* ]] ||
	die "set SOURCE to the camera's rtsp:// URL (got \"${SOURCE:-}\")"
: "${RTSP_PROTOCOLS:=tcp}"
: "${RTSP_LATENCY_MS:=200}"
[[ $RTSP_PROTOCOLS =~ ^[a-z+-]+$ ]] || die "RTSP_PROTOCOLS=\"$RTSP_PROTOCOLS\" is not like tcp, udp or tcp+udp"
require_uint RTSP_LATENCY_MS
kvsrelay_common_env

inner="rtspsrc location=$(gst_quote "$SOURCE") protocols=$RTSP_PROTOCOLS latency=$RTSP_LATENCY_MS"
[[ -z ${RTSP_USER:-} ]] || inner+=" user-id=$(gst_quote "$RTSP_USER")"
[[ -z ${RTSP_PASSWORD:-} ]] || inner+=" user-pw=$(gst_quote "$RTSP_PASSWORD")"
inner+=" ! rtph264depay ! h264parse"
RB="reconnectbin name=relay source=$(gst_quote "$inner")"
reconnect_props
run_pipeline "$RB"
