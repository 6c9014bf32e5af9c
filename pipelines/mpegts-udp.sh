#!/usr/bin/env bash
# mpegts-udp.sh: receive MPEG-TS over UDP (unicast, or multicast when the
# address is a group) and relay it into Kinesis Video Streams. UDP never
# errors when the sender stops; reconnectbin's stall timeout notices.
#
#   SOURCE=udp://239.1.1.1:5000 MULTICAST_IFACE=eth1 STREAM_NAME=cam-1 ./mpegts-udp.sh
#
# Variables (see README.md for the shared ones):
#   SOURCE            udp://address:port to receive on [udp://0.0.0.0:5000]
#   MULTICAST_IFACE   interface(s) to join a multicast group on [kernel's choice]
#   UDP_BUFFER_BYTES  kernel receive buffer [2097152]
#   TRANSCODE         0: pass H.264 through; 1: decode + x264 at OUTPUT_CAPS [0]
set -euo pipefail
RECIPE_NAME=mpegts-udp
# shellcheck source=common.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh"
# shellcheck source=ts-common.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/ts-common.sh"

: "${SOURCE:=udp://0.0.0.0:5000}"
split_host_port "$SOURCE" udp
: "${HOST:=0.0.0.0}"
: "${UDP_BUFFER_BYTES:=2097152}"
require_uint UDP_BUFFER_BYTES
kvsrelay_common_env

src="udpsrc address=$(gst_quote "$HOST") port=$PORT buffer-size=$UDP_BUFFER_BYTES"
[[ -z ${MULTICAST_IFACE:-} ]] || src+=" multicast-iface=$(gst_quote "$MULTICAST_IFACE")"
src+=" caps=$(gst_quote "video/mpegts,systemstream=(boolean)true,packetsize=(int)188")"
ts_pipeline "$src"
