#!/usr/bin/env bash
# hls-transcode.sh: relay an HLS camera feed into Kinesis Video Streams.
#
# The playlist is fetched, demuxed and decoded inside reconnectbin, which
# rebuilds it in place when it errors, ends or stalls (the incident's
# "Internal data stream error" from souphttpsrc). Its output is fixed to
# OUTPUT_CAPS (black or an image while the source is down), re-encoded with
# x264 for low latency, and handed to kvssink as AVC access units.
#
#   SOURCE=https://cam.example/live/index.m3u8 STREAM_NAME=cam-1 AWS_REGION=eu-west-1 ./hls-transcode.sh
#   SOURCE=... SINK='matroskamux ! filesink location=/tmp/relay.mkv' ./hls-transcode.sh   # offline
#
# Variables (see README.md for the shared ones):
#   SOURCE            HLS playlist URL (required)
#   HTTP_TIMEOUT_S    souphttpsrc timeout, seconds [10]
#   HTTP_RETRIES      souphttpsrc retries before it errors [3]
#   OUTPUT_CAPS FALLBACK FALLBACK_HOLD_MS FALLBACK_IMAGE BITRATE_KBPS KEY_INT_MAX X264_PRESET
set -euo pipefail
RECIPE_NAME=hls-transcode
# shellcheck source=common.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh"

[[ -n ${SOURCE:-} ]] || die "set SOURCE to the HLS playlist URL, e.g. https://cam.example/live/index.m3u8"
: "${HTTP_TIMEOUT_S:=10}"
: "${HTTP_RETRIES:=3}"
require_uint HTTP_TIMEOUT_S
require_int HTTP_RETRIES
kvsrelay_common_env

inner="souphttpsrc location=$(gst_quote "$SOURCE") timeout=$HTTP_TIMEOUT_S retries=$HTTP_RETRIES ! hlsdemux ! decodebin"
RB="reconnectbin name=relay source=$(gst_quote "$inner")"
reconnect_props raw
ENC=$(encoder_chain)
run_pipeline "$RB ! $ENC"
