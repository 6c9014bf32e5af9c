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
  # make demo: timeoverlay burns the clock into the picture
  gstreamer1.0-x
)

# Go itself: Debian 12's golang-go (1.19) is too old to build go-gst v1.4.0's
# dependencies; Go >= 1.21 fetches the toolchain go.mod asks for on its own.
if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ]; then
  echo "deps: Go is not installed. Install Go >= 1.21 (https://go.dev/dl/ or your distribution's" >&2
  echo "      golang-1.22-go / golang-1.23-go package) and run this again." >&2
  exit 1
fi

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
