#!/usr/bin/env bash
# mpegts-tcp.sh: read MPEG-TS from an encoder that serves it over plain TCP
# and relay it into Kinesis Video Streams. A closed connection or a silent
# one makes reconnectbin connect again.
#
#   SOURCE=tcp://10.0.0.30:9000 STREAM_NAME=cam-1 ./mpegts-tcp.sh
#
# Variables (see README.md for the shared ones):
#   SOURCE            tcp://host:port to connect to (required)
#   TRANSCODE         0: pass H.264 through; 1: decode + x264 at OUTPUT_CAPS [0]
set -euo pipefail
RECIPE_NAME=mpegts-tcp
# shellcheck source=common.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh"
# shellcheck source=ts-common.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/ts-common.sh"

[[ -n ${SOURCE:-} ]] || die "set SOURCE to the encoder's tcp://host:port"
split_host_port "$SOURCE" tcp
[[ -n $HOST ]] || die "SOURCE=\"$SOURCE\" needs a host to connect to"
kvsrelay_common_env

ts_pipeline "tcpclientsrc host=$(gst_quote "$HOST") port=$PORT"
