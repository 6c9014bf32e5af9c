#!/usr/bin/env bash
# testpattern.sh: a live test picture through the whole relay path
# (reconnectbin, x264, kvssink, credentials). Use it to prove a host, its
# IAM role and a stream work before pointing the relay at a camera.
#
#   STREAM_NAME=relay-smoke-test ./testpattern.sh
#   SINK='matroskamux ! filesink location=/tmp/relay.mkv' ./testpattern.sh
#
# Variables (see README.md for the shared ones):
#   PATTERN           videotestsrc pattern [smpte]
#   OUTPUT_CAPS FALLBACK FALLBACK_HOLD_MS FALLBACK_IMAGE BITRATE_KBPS KEY_INT_MAX X264_PRESET
set -euo pipefail
RECIPE_NAME=testpattern
# shellcheck source=common.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh"

: "${PATTERN:=smpte}"
[[ $PATTERN =~ ^[a-z0-9-]+$ ]] || die "PATTERN=\"$PATTERN\" is not a videotestsrc pattern name"
kvsrelay_common_env
[[ $AUDIO == off ]] || die "AUDIO=$AUDIO: the test pattern has no audio (set AUDIO=off)"

inner="videotestsrc is-live=true pattern=$PATTERN ! timeoverlay"
RB="reconnectbin name=relay source=$(gst_quote "$inner")"
reconnect_props raw
ENC=$(encoder_chain)
run_pipeline "$RB ! $ENC"
