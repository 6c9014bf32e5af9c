#!/usr/bin/env bash
# srt-caller.sh: pull an MPEG-TS stream over SRT (this host calls the
# encoder or gateway) and relay it into Kinesis Video Streams.
#
#   SOURCE=srt://encoder.example:8888 STREAM_NAME=cam-1 ./srt-caller.sh
#
# Variables (see README.md for the shared ones):
#   SOURCE            srt://host:port to call (required)
#   SRT_LATENCY_MS    SRT latency [200]
#   SRT_PASSPHRASE    encryption passphrase [none]; masked in printed commands
#   SRT_STREAMID      stream id for the listener's access control [none]
#   TRANSCODE         0: pass H.264 through; 1: decode + x264 at OUTPUT_CAPS [0]
set -euo pipefail
RECIPE_NAME=srt-caller
# shellcheck source=common.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh"
# shellcheck source=ts-common.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/ts-common.sh"

[[ -n ${SOURCE:-} ]] || die "set SOURCE to the srt://host:port to call"
split_host_port "$SOURCE" srt
[[ -n $HOST ]] || die "SOURCE=\"$SOURCE\" needs a host to call"
: "${SRT_LATENCY_MS:=200}"
require_uint SRT_LATENCY_MS
kvsrelay_common_env

src="srtsrc uri=$(gst_quote "$(srt_uri "$SOURCE" caller)") latency=$SRT_LATENCY_MS"
[[ -z ${SRT_PASSPHRASE:-} ]] || src+=" passphrase=$(gst_quote "$SRT_PASSPHRASE")"
[[ -z ${SRT_STREAMID:-} ]] || src+=" streamid=$(gst_quote "$SRT_STREAMID")"
ts_pipeline "$src"
