#!/usr/bin/env bash
# Installs the system packages kvsrelay builds, tests and demos with, on
# Debian 12 or Ubuntu 22.04/24.04. Packages already installed are skipped, so
# a second run is fast and needs no network.
set -euo pipefail

packages=(
  # build
  gcc make pkg-config git
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  # run: the elements relays use (souphttpsrc, hlsdemux, rtspsrc, srtsrc, decodebin, x264enc, h264parse)
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  # tests: RTSP camera (gst-rtsp-server through Debian's python3), output checks, systemd unit checks
  gstreamer1.0-rtsp libgstrtspserver-1.0-dev python3 python3-gi python3-gst-1.0 gir1.2-gst-rtsp-server-1.0
  ffmpeg systemd ca-certificates
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#packages[@]} system packages already installed"
  exit 0
fi

echo "deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
