#!/usr/bin/env bash
# srt-listener.sh: wait for an encoder to push MPEG-TS over SRT to this host
# and relay it into Kinesis Video Streams. When the sender drops, reconnectbin
# rebuilds the listener and waits for it to call again.
#
#   SOURCE=srt://:8888 STREAM_NAME=cam-1 ./srt-listener.sh
#
# Variables (see README.md for the shared ones):
#   SOURCE            srt://[address]:port to listen on [srt://:8888]
#   SRT_LATENCY_MS    SRT latency [200]
#   SRT_PASSPHRASE    encryption passphrase [none]; masked in printed commands
#   TRANSCODE         0: pass H.264 through; 1: decode + x264 at OUTPUT_CAPS [0]
set -euo pipefail
RECIPE_NAME=srt-listener
# shellcheck source=common.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh"
# shellcheck source=ts-common.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/ts-common.sh"

: "${SOURCE:=srt://:8888}"
split_host_port "$SOURCE" srt
: "${SRT_LATENCY_MS:=200}"
require_uint SRT_LATENCY_MS
kvsrelay_common_env

src="srtsrc uri=$(gst_quote "$(srt_uri "$SOURCE" listener)") latency=$SRT_LATENCY_MS"
[[ -z ${SRT_PASSPHRASE:-} ]] || src+=" passphrase=$(gst_quote "$SRT_PASSPHRASE")"
ts_pipeline "$src"
