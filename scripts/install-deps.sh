#!/usr/bin/env bash
# Installs what kvsrelay builds, tests and demos with, on Debian 12 or Ubuntu
# 22.04/24.04: the system packages below and, when no Go >= 1.21 is found,
# Go itself (the official release from go.dev into /usr/local/go, its SHA-256
# checked against the one go.dev publishes). Whatever is already installed is
# skipped, so a second run is fast and needs no network.
#
# Root or sudo is needed only to install something. Settings (environment;
# the defaults are what users want, the others serve the tests):
#   KVSRELAY_GO_VERSION  the Go release to install (default below)
#   KVSRELAY_GO_DIR      where to install it (default /usr/local/go; the
#                        Makefile looks there when PATH has no go >= 1.21)
#   KVSRELAY_GO_SHA256   the release archive's SHA-256, instead of go.dev's list
#   KVSRELAY_GO_DL       where release archives come from (https://go.dev/dl)
#   KVSRELAY_GO_JSON     go.dev's release list (https://go.dev/dl/?mode=json&include=all)
#   DRY_RUN=1            say what would be installed, change nothing
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)

packages=(
  # build
  gcc make pkg-config git
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  # run: the elements relays use (souphttpsrc, hlsdemux, rtspsrc, srtsrc, decodebin, x264enc, h264parse)
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  # tests: RTSP camera (gst-rtsp-server through Debian's python3), output checks, systemd unit checks,
  # curl (a test fetches through it); curl, ca-certificates and python3 also download and check Go
  gstreamer1.0-rtsp libgstrtspserver-1.0-dev python3 python3-gi python3-gst-1.0 gir1.2-gst-rtsp-server-1.0
  ffmpeg systemd ca-certificates curl
  # make demo: timeoverlay burns the clock into the picture
  gstreamer1.0-x
)

# Go: Debian 12's golang-go (1.19) and Ubuntu 22.04's (1.18) are too old to
# build go-gst v1.4.0's dependencies; Go >= 1.21 fetches the version go.mod
# asks for. This release is what kvsrelay is developed and tested with.
go_version=${KVSRELAY_GO_VERSION:-go1.26.8}
go_dir=${KVSRELAY_GO_DIR:-/usr/local/go}
go_dl=${KVSRELAY_GO_DL:-https://go.dev/dl}
go_json=${KVSRELAY_GO_JSON:-https://go.dev/dl/?mode=json&include=all}
dry_run=${DRY_RUN:-}
[ "$dry_run" = 0 ] && dry_run=

say() { echo "deps: $*"; }
die() { echo "deps: $*" >&2; exit 1; }
root_hint="make deps (or this script)"
# shellcheck source=lib-apt.sh
. "$here/lib-apt.sh"

# --- system packages ---------------------------------------------------------

mapfile -t missing < <(missing_packages "${packages[@]}")
if [ ${#missing[@]} -eq 0 ]; then
  say "all ${#packages[@]} system packages already installed"
else
  say "installing ${missing[*]}"
  install_packages "${missing[@]}"
fi

# --- Go ----------------------------------------------------------------------

found=$("$here/find-go.sh")
if "$here/find-go.sh" --check "$found" 2>/dev/null; then
  say "Go $("$here/find-go.sh" --version "$found") at $found"
  exit 0
fi
if old=$(command -v go) && v=$("$here/find-go.sh" --version "$old"); then
  say "Go $v at $old is too old (kvsrelay needs >= 1.21): installing $go_version into $go_dir"
else
  say "no Go >= 1.21 found: installing $go_version into $go_dir"
fi

case $(uname -m) in
  x86_64 | amd64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  armv6l | armv7l | armv8l) arch=armv6l ;;
  i386 | i486 | i586 | i686) arch=386 ;;
  ppc64le) arch=ppc64le ;;
  s390x) arch=s390x ;;
  riscv64) arch=riscv64 ;;
  loongarch64) arch=loong64 ;;
  *) die "go.dev has no Go release for this machine ($(uname -m)): install Go >= 1.21 yourself and run this again." ;;
esac
archive=$go_version.linux-$arch.tar.gz

# Installing into go_dir needs root unless the folder it goes into (or the
# closest one that exists) is ours.
parent=$(dirname "$go_dir")
while [ ! -d "$parent" ]; do parent=$(dirname "$parent"); done
if [ -w "$parent" ]; then
  go_sudo=
else
  need_root "Go into $go_dir"
  go_sudo=$sudo
fi

if [ -n "$dry_run" ]; then
  say "would download $go_dl/$archive, check its SHA-256 against ${KVSRELAY_GO_SHA256:-$go_json} and unpack it into $go_dir${go_sudo:+ (with $go_sudo)}"
  exit 0
fi

for tool in curl sha256sum tar; do
  command -v "$tool" >/dev/null 2>&1 || die "downloading Go needs $tool, which is not installed: install it (apt-get install $tool) and run this again."
done

tmp=$(mktemp -d)
staging=
cleanup() {
  rm -rf "$tmp"
  if [ -n "$staging" ]; then ${go_sudo:+"$go_sudo"} rm -rf "$staging"; fi
}
trap cleanup EXIT

sha=${KVSRELAY_GO_SHA256:-}
if [ -z "$sha" ]; then
  command -v python3 >/dev/null 2>&1 || die "reading go.dev's release list needs python3, which is not installed: install it (apt-get install python3) and run this again."
  curl -fsSL --retry 3 -o "$tmp/releases.json" "$go_json" ||
    die "could not fetch go.dev's release list ($go_json): check the network, or install Go >= 1.21 yourself."
  sha=$(python3 - "$tmp/releases.json" "$archive" <<'EOF'
import json, sys
path, archive = sys.argv[1], sys.argv[2]
for release in json.load(open(path)):
    for f in release.get("files", []):
        if f.get("filename") == archive and f.get("kind") == "archive":
            print(f["sha256"])
            sys.exit(0)
sys.exit(1)
EOF
  ) || die "go.dev's release list ($go_json) has no $archive: set KVSRELAY_GO_VERSION to a release it lists."
fi
sha=${sha,,}
case $sha in
  *[!0-9a-f]* | '') die "the SHA-256 for $archive is not 64 hex digits: '$sha'" ;;
esac
[ ${#sha} -eq 64 ] || die "the SHA-256 for $archive is not 64 hex digits: '$sha'"

say "downloading $go_dl/$archive"
progress=-s
[ -t 2 ] && progress=-#
curl -fSL "$progress" --retry 3 -o "$tmp/$archive" "$go_dl/$archive" ||
  die "could not download $go_dl/$archive: check the network, or install Go >= 1.21 yourself."
echo "$sha  $tmp/$archive" | sha256sum -c --status - ||
  die "$archive does not match its published SHA-256 ($sha): not installed; run this again, and if it persists, download Go yourself from https://go.dev/dl/."

# Unpack beside go_dir, then swap it in: an interrupted run never leaves half
# a Go in go_dir.
staging="$go_dir.kvsrelay-new"
${go_sudo:+"$go_sudo"} rm -rf "$staging" "$go_dir.kvsrelay-old"
${go_sudo:+"$go_sudo"} mkdir -p "$staging"
${go_sudo:+"$go_sudo"} tar -C "$staging" -xzf "$tmp/$archive"
v=$("$here/find-go.sh" --version "$staging/go/bin/go") ||
  die "the Go in $archive does not run on this machine: not installed."
if [ -e "$go_dir" ]; then ${go_sudo:+"$go_sudo"} mv "$go_dir" "$go_dir.kvsrelay-old"; fi
${go_sudo:+"$go_sudo"} mv "$staging/go" "$go_dir"
${go_sudo:+"$go_sudo"} rm -rf "$go_dir.kvsrelay-old"
say "installed Go $v into $go_dir (the Makefile finds it there; add $go_dir/bin to PATH to use go yourself)"
