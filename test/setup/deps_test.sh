#!/usr/bin/env bash
# Tests scripts/install-deps.sh, scripts/find-go.sh, the Makefile's Go
# lookup and scripts/build-kvssink.sh on a fake machine: a PATH of links to
# the real tools a minimal Debian has, plus fakes for what must not really
# run (apt-get, sudo, dpkg-query, id, an old distribution go, cmake,
# gst-inspect-1.0). Go "releases" are local tarballs served through file://
# URLs; kvssink's "upstream" is local git repositories made from the release
# archives in ../shared/third_party. Nothing outside a temp folder is touched.
#
#   deps_test.sh --list    the case names
#   deps_test.sh CASE      run one case; exit 0 when it passes
#
# setup_test.go runs every case as a subtest.
set -uo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
deps=$repo/scripts/install-deps.sh
findgo=$repo/scripts/find-go.sh

fail() { echo "FAIL: $*" >&2; exit 1; }

# setup makes the fake machine in $T: $T/bin is the whole PATH.
setup() {
  T=$(mktemp -d)
  trap 'rm -rf "$T"' EXIT
  mkdir -p "$T/bin" "$T/home" "$T/dl" "$T/log"
  local tool p
  for tool in bash sh env cat sed grep awk mktemp rm mv mkdir cp chmod ln dirname basename uname \
    tar gzip sha256sum python3 head tail tr cut sort find touch ls readlink make git nproc; do
    p=$(type -P "$tool") || fail "the test needs $tool"
    ln -s "$p" "$T/bin/$tool"
  done
  # curl is real (file:// URLs) but every call is logged, to tell "no network".
  p=$(command -v curl) || fail "the test needs curl"
  cat >"$T/bin/curl" <<EOF
#!/bin/bash
echo "curl \$*" >>"$T/log/curl"
exec $p "\$@"
EOF
  # dpkg-query reports the packages in \$T/installed as installed.
  cat >"$T/bin/dpkg-query" <<EOF
#!/bin/bash
shift 2   # -W -f=FORMAT
rc=0
for p in "\$@"; do
  if grep -qx "\$p" "$T/installed" 2>/dev/null; then echo "\$p install ok installed"; else echo "dpkg-query: no packages found matching \$p" >&2; rc=1; fi
done
exit \$rc
EOF
  cat >"$T/bin/apt-get" <<EOF
#!/bin/bash
echo "apt-get \$* DEBIAN_FRONTEND=\${DEBIAN_FRONTEND:-unset} uid=\$(id -u)" >>"$T/log/apt"
EOF
  # id -u says \$T/uid (0 unless a case says otherwise), 0 under the fake sudo.
  echo 0 >"$T/uid"
  cat >"$T/bin/id" <<EOF
#!/bin/bash
[ "\$1" = -u ] || exit 1
if [ -n "\${FAKE_SUDO:-}" ]; then echo 0; else cat "$T/uid"; fi
EOF
  chmod +x "$T/bin/"*
  export PATH=$T/bin HOME=$T/home
  export KVSRELAY_GO_DIR=$T/usr/local/go KVSRELAY_GO_DL=file://$T/dl KVSRELAY_GO_JSON=file://$T/dl/releases.json
  export KVSRELAY_GO_VERSION=go1.99.1
  unset DRY_RUN KVSRELAY_GO_SHA256 GO GOTOOLCHAIN
  # A make running this test (make test) must not steer the cases' make.
  unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES
}

# fake_sudo installs a sudo that, like the real one, resets the environment.
fake_sudo() {
  cat >"$T/bin/sudo" <<EOF
#!/bin/bash
echo "sudo \$*" >>"$T/log/sudo"
exec env -i PATH="$T/bin" FAKE_SUDO=1 "\$@"
EOF
  chmod +x "$T/bin/sudo"
}

all_packages_installed() {
  sed -n '/^packages=(/,/^)/{/^packages=(/d;/^)/d;s/#.*//;p}' "$deps" | tr -s ' \t' '\n\n' | grep . >"$T/installed"
  [ "$(grep -c . "$T/installed")" -gt 10 ] || fail "could not read the package list of $deps"
}

# fake_go DIR VERSION: a go command at DIR/bin/go reporting VERSION.
fake_go() {
  mkdir -p "$1/bin"
  printf '#!/bin/bash\n[ "$1" = version ] && echo "go version go%s linux/amd64"\n' "$2" >"$1/bin/go"
  chmod +x "$1/bin/go"
}

# release VERSION: a go.dev-like archive of a fake Go and the JSON list.
release() {
  local arch
  case $(uname -m) in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) arch=$(uname -m) ;; esac
  rm -rf "$T/src" && fake_go "$T/src/go" "${1#go}"
  tar -C "$T/src" -czf "$T/dl/$1.linux-$arch.tar.gz" go
  SHA=$(sha256sum "$T/dl/$1.linux-$arch.tar.gz" | cut -d' ' -f1)
  cat >"$T/dl/releases.json" <<EOF
[
 {"version": "go1.99.2", "stable": true, "files": [
   {"filename": "go1.99.2.linux-$arch.tar.gz", "os": "linux", "arch": "$arch", "version": "go1.99.2",
    "sha256": "0000000000000000000000000000000000000000000000000000000000000000", "size": 1, "kind": "archive"}]},
 {"version": "$1", "stable": true, "files": [
   {"filename": "$1.src.tar.gz", "os": "", "arch": "", "version": "$1", "sha256": "1111111111111111111111111111111111111111111111111111111111111111", "size": 1, "kind": "source"},
   {"filename": "$1.linux-$arch.tar.gz", "os": "linux", "arch": "$arch", "version": "$1", "sha256": "$SHA", "size": 1, "kind": "archive"}]}
]
EOF
}

run_deps() { OUT=$("$deps" 2>&1); RC=$?; }
expect_rc() { [ "$RC" -eq "$1" ] || fail "install-deps.sh exited $RC, want $1; output:
$OUT"; }
expect_out() { grep -qF -- "$1" <<<"$OUT" || fail "output lacks '$1':
$OUT"; }
expect_no_log() { [ ! -s "$T/log/$1" ] || fail "$1 ran:
$(cat "$T/log/$1")
output:
$OUT"; }
installed_go() { "$KVSRELAY_GO_DIR/bin/go" version 2>/dev/null; }

# --- cases -------------------------------------------------------------------

case_second_run_is_offline() {
  all_packages_installed
  fake_go "$KVSRELAY_GO_DIR" 1.24.2
  run_deps
  expect_rc 0
  expect_out "system packages already installed"
  expect_out "Go 1.24.2 at $KVSRELAY_GO_DIR/bin/go"
  expect_no_log curl; expect_no_log apt; expect_no_log sudo
}

case_installs_go_when_none() {
  all_packages_installed
  release go1.99.1
  run_deps
  expect_rc 0
  expect_out "no Go >= 1.21 found: installing go1.99.1 into $KVSRELAY_GO_DIR"
  [ "$(installed_go)" = "go version go1.99.1 linux/amd64" ] || fail "installed go says '$(installed_go)'; output:
$OUT"
  ls "$T/usr/local" | grep -q kvsrelay && fail "staging left behind: $(ls "$T/usr/local")"
  # The second run needs no network: the release is gone, nothing is fetched.
  rm -rf "$T/dl"/* "$T/log/curl"
  run_deps
  expect_rc 0
  expect_out "Go 1.99.1 at $KVSRELAY_GO_DIR/bin/go"
  expect_no_log curl
}

case_replaces_too_old_go() {
  all_packages_installed
  release go1.99.1
  fake_go "$T/usr/lib/go-1.19" 1.19.8           # Debian 12's golang-go on PATH
  ln -s "$T/usr/lib/go-1.19/bin/go" "$T/bin/go"
  fake_go "$KVSRELAY_GO_DIR" 1.18.1              # an old tarball install
  touch "$KVSRELAY_GO_DIR/stale-file"
  run_deps
  expect_rc 0
  expect_out "Go 1.19.8 at $T/bin/go is too old (kvsrelay needs >= 1.21): installing go1.99.1"
  [ "$(installed_go)" = "go version go1.99.1 linux/amd64" ] || fail "installed go says '$(installed_go)'"
  [ ! -e "$KVSRELAY_GO_DIR/stale-file" ] || fail "the old Go's files were kept"
  [ "$("$findgo")" = "$KVSRELAY_GO_DIR/bin/go" ] || fail "find-go.sh picks $("$findgo"), not the new Go"
}

case_checksum_mismatch_installs_nothing() {
  all_packages_installed
  release go1.99.1
  echo tampered >>"$T/dl/go1.99.1.linux-"*.tar.gz
  run_deps
  expect_rc 1
  expect_out "does not match its published SHA-256"
  [ ! -e "$KVSRELAY_GO_DIR" ] || fail "$KVSRELAY_GO_DIR exists after a checksum mismatch"
  ls "$T/usr/local" 2>/dev/null | grep -q . && fail "left behind: $(ls "$T/usr/local")"
  return 0
}

case_pinned_sha256_needs_no_list() {
  all_packages_installed
  release go1.99.1
  rm "$T/dl/releases.json"
  KVSRELAY_GO_SHA256=${SHA^^} run_deps
  expect_rc 0
  [ "$(installed_go)" = "go version go1.99.1 linux/amd64" ] || fail "installed go says '$(installed_go)'; output:
$OUT"
  grep -q releases.json "$T/log/curl" && fail "fetched the release list despite a pinned SHA-256"
  KVSRELAY_GO_SHA256=abc run_deps   # Go is there now: nothing to check
  expect_rc 0
}

case_release_not_listed() {
  all_packages_installed
  release go1.99.1
  KVSRELAY_GO_VERSION=go1.42.0 run_deps
  expect_rc 1
  expect_out "has no go1.42.0.linux-"
  [ ! -e "$KVSRELAY_GO_DIR" ] || fail "$KVSRELAY_GO_DIR exists"
}

case_apt_through_sudo_keeps_frontend() {
  all_packages_installed
  sed -i '/^curl$/d; /^ffmpeg$/d' "$T/installed"
  fake_go "$KVSRELAY_GO_DIR" 1.24.2
  fake_sudo
  echo 1000 >"$T/uid"
  run_deps
  expect_rc 0
  expect_out "installing ffmpeg curl"
  grep -q "^sudo env DEBIAN_FRONTEND=noninteractive apt-get update" "$T/log/sudo" || fail "apt-get update not through sudo env: $(cat "$T/log/sudo" 2>&1)"
  grep -q "^apt-get install -y -qq --no-install-recommends ffmpeg curl DEBIAN_FRONTEND=noninteractive uid=0" "$T/log/apt" ||
    fail "apt-get install did not run as root with DEBIAN_FRONTEND kept: $(cat "$T/log/apt" 2>&1)"
}

case_root_without_sudo() {
  all_packages_installed
  sed -i '/^curl$/d' "$T/installed"
  fake_go "$KVSRELAY_GO_DIR" 1.24.2
  run_deps
  expect_rc 0
  grep -q "^apt-get install -y -qq --no-install-recommends curl DEBIAN_FRONTEND=noninteractive uid=0" "$T/log/apt" ||
    fail "apt-get install: $(cat "$T/log/apt" 2>&1)"
  expect_no_log sudo
}

case_no_sudo_not_root() {
  all_packages_installed
  sed -i '/^curl$/d' "$T/installed"
  echo 1000 >"$T/uid"
  run_deps
  expect_rc 1
  expect_out "installing curl needs root, and sudo is not installed: run make deps (or this script) as root, or install sudo first."
  expect_no_log apt
}

case_go_into_root_folder_needs_sudo() {
  all_packages_installed
  release go1.99.1
  echo 1000 >"$T/uid"
  # /proc/1 is a folder nobody may write, root included.
  [ -w /proc/1 ] && { echo "skip: /proc/1 is writable here"; exit 3; }
  export KVSRELAY_GO_DIR=/proc/1/kvsrelay-test/go
  run_deps
  expect_rc 1
  expect_out "installing Go into /proc/1/kvsrelay-test/go needs root, and sudo is not installed"
  expect_no_log curl
}

case_dry_run_changes_nothing() {
  : >"$T/installed"
  fake_sudo
  echo 1000 >"$T/uid"
  DRY_RUN=1 run_deps
  expect_rc 0
  expect_out "would run: sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc make"
  expect_out "would download file://$T/dl/go1.99.1.linux-"
  expect_no_log apt; expect_no_log sudo; expect_no_log curl
  [ ! -e "$KVSRELAY_GO_DIR" ] || fail "dry run created $KVSRELAY_GO_DIR"
}

case_find_go_sentences() {
  local out
  out=$("$findgo" --check "$KVSRELAY_GO_DIR/bin/go" 2>&1) && fail "--check passed without any Go"
  grep -qF "Go is not installed (no go on PATH, no $KVSRELAY_GO_DIR/bin/go): run make deps" <<<"$out" || fail "no Go: '$out'"
  [ "$("$findgo")" = "$KVSRELAY_GO_DIR/bin/go" ] || fail "without any Go find-go.sh prints $("$findgo")"

  fake_go "$T/old" 1.18.1
  ln -s "$T/old/bin/go" "$T/bin/go"
  out=$("$findgo" --check "$("$findgo")" 2>&1) && fail "--check passed with only Go 1.18"
  grep -qF "Go 1.18.1 at $T/bin/go is too old for kvsrelay (it needs Go >= 1.21)" <<<"$out" || fail "old Go: '$out'"
  out=$("$findgo" --check "$T/bin/go" 2>&1) && fail "--check passed for Go 1.18"
  grep -qF "Go 1.18.1 at $T/bin/go is too old: kvsrelay needs Go >= 1.21" <<<"$out" || fail "GO=old: '$out'"

  fake_go "$KVSRELAY_GO_DIR" 1.21rc2
  [ "$("$findgo")" = "$KVSRELAY_GO_DIR/bin/go" ] || fail "with an old go on PATH find-go.sh prints $("$findgo")"
  "$findgo" --check "$("$findgo")" || fail "--check refused Go 1.21rc2"

  rm "$T/bin/go" && fake_go "$T/new" 1.30.0 && ln -s "$T/new/bin/go" "$T/bin/go"
  [ "$("$findgo")" = "$T/bin/go" ] || fail "a new go on PATH is not preferred: $("$findgo")"
}

case_makefile_finds_go_off_path() {
  # /usr/local/go/bin is not on PATH: make still uses the Go there.
  fake_go "$KVSRELAY_GO_DIR" 1.24.2
  local out
  out=$(make -C "$repo" --no-print-directory -n -B BUILD="$T/build" "$T/build/kvscredfile" 2>&1) || fail "make -n: $out"
  grep -qF "$KVSRELAY_GO_DIR/bin/go build -trimpath -o $T/build/kvscredfile ./cmd/kvscredfile" <<<"$out" ||
    fail "make does not run the Go in $KVSRELAY_GO_DIR:
$out"
}

case_makefile_without_go_says_so() {
  local out rc
  out=$(make -C "$repo" --no-print-directory BUILD="$T/build" "$T/build/kvscredfile" 2>&1); rc=$?
  [ $rc -ne 0 ] || fail "make built without any Go: $out"
  grep -qF "Go is not installed (no go on PATH, no $KVSRELAY_GO_DIR/bin/go): run make deps" <<<"$out" || fail "make without Go said:
$out"
  [ ! -e "$T/build/kvscredfile" ] || fail "something was built"
}

case_makefile_with_old_go_says_so() {
  fake_go "$T/old" 1.19.8
  ln -s "$T/old/bin/go" "$T/bin/go"
  local out
  out=$(make -C "$repo" --no-print-directory BUILD="$T/build" GO="$T/bin/go" "$T/build/kvscredfile" 2>&1) && fail "make built with Go 1.19: $out"
  grep -qF "Go 1.19.8 at $T/bin/go is too old: kvsrelay needs Go >= 1.21" <<<"$out" || fail "make with Go 1.19 said:
$out"
}

# --- kvssink -------------------------------------------------------------------
# build-kvssink.sh runs from a copy of the repository's scripts in $T/clone,
# so its default sources folder is $T/shared/third_party (as CI lays it out),
# holding copies of the real release archives. cmake is a fake: configuring
# checks that the sources are arranged as the real build needs, building
# makes stand-in .so files (make test's real-kvssink tests check the real
# build).

kvssink_archives=(
  amazon-kinesis-video-streams-producer-sdk-cpp:3.6.0:CPP
  amazon-kinesis-video-streams-producer-c:1.6.2:C
  amazon-kinesis-video-streams-pic:c98c2a256a7b:PIC
)

kvssink_setup() {
  local shared=$repo/../shared/third_party a p
  for a in "${kvssink_archives[@]}"; do
    p=$(cut -d: -f1 <<<"$a")-$(cut -d: -f2 <<<"$a").tar.gz
    [ -f "$shared/$p" ] || { echo "skip: no $shared/$p (kvssink's release archives)"; exit 3; }
  done
  mkdir -p "$T/clone/scripts" "$T/shared/third_party" "$T/etc"
  cp "$repo/scripts/build-kvssink.sh" "$repo/scripts/lib-apt.sh" "$T/clone/scripts/"
  cp "$shared"/*.tar.gz "$shared/SHA256SUMS" "$T/shared/third_party/"
  chmod a-w "$T/shared/third_party" "$T/shared/third_party"/*
  KVSSINK=$T/clone/scripts/build-kvssink.sh
  printf 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n' >"$T/etc/os-release"
  export KVSSINK_OS_RELEASE=$T/etc/os-release KVSSINK_CACHE=$T/cache KVSSINK_JOBS=2
  unset KVSSINK_SOURCES KVSSINK_UPSTREAM KVSSINK_SKIP_DEPS KVSSINK_CPP_COMMIT KVSSINK_C_COMMIT KVSSINK_PIC_COMMIT XDG_CACHE_HOME
  sed -n '/^packages=(/,/^)/{/^packages=(/d;/^)/d;s/#.*//;p}' "$KVSSINK" | tr -s ' \t' '\n\n' | grep . >"$T/installed"
  grep -qx liblog4cplus-dev "$T/installed" || fail "could not read the package list of $KVSSINK"
  printf '#!/bin/bash\nexit 0\n' >"$T/bin/c++"
  cat >"$T/bin/cmake" <<EOF
#!/bin/bash
echo "cmake \$*" >>"$T/log/cmake"
if [ "\$1" = -S ]; then
  c=\$2/dependency/libkvscproducer/kvscproducer-src
  for f in "\$c/CMakeLists.txt" "\$c/dependency/libkvspic/kvspic-src/CMakeLists.txt"; do
    [ -f "\$f" ] || { echo "CMake Error: no \$f"; exit 1; }
  done
  for f in "\$2/CMake/Dependencies/libkvscproducer-CMakeLists.txt" "\$c/CMake/Dependencies/libkvspic-CMakeLists.txt"; do
    grep -q GIT_ "\$f" && { echo "CMake Error: \$f would clone"; exit 1; }
    grep -q 'DOWNLOAD_COMMAND *""' "\$f" || { echo "CMake Error: \$f has no empty download step"; exit 1; }
  done
  mkdir -p "\$4"
  exit 0
fi
[ "\$1" = --build ] || exit 1
[ -n "\${FAKE_CMAKE_FAIL:-}" ] && { echo "gstkvssink.cpp:1: error: it broke"; exit 2; }
mkdir -p "\$2/dependency/lib"
echo plugin >"\$2/libgstkvssink.so"
echo producer >"\$2/libKinesisVideoProducer.so"
echo cproducer >"\$2/dependency/lib/libcproducer.so.1.6.2"
ln -s libcproducer.so.1.6.2 "\$2/dependency/lib/libcproducer.so.1"
echo curl >"\$2/dependency/lib/libkvsCommonCurl.so.1"
EOF
  # gst-inspect-1.0 "loads" a plugin file holding "plugin". FAKE_GST_KILL
  # makes it kill build-kvssink.sh (its parent's parent: the script runs it
  # in a command substitution) as an interrupt during the last step.
  cat >"$T/bin/gst-inspect-1.0" <<EOF
#!/bin/bash
echo "gst-inspect-1.0 \$*" >>"$T/log/gst"
if [ -n "\${FAKE_GST_KILL:-}" ]; then
  p=\$(awk '{print \$4}' /proc/\$PPID/stat)
  grep -q build-kvssink.sh /proc/\$p/cmdline && kill -TERM "\$p"
fi
grep -qx plugin "\$1" 2>/dev/null || { echo "Could not load plugin file: \$1"; exit 1; }
printf 'Plugin Details:\n  Name                     kvssink\n'
EOF
  chmod +x "$T/bin/c++" "$T/bin/cmake" "$T/bin/gst-inspect-1.0"
}

# kvssink_upstream: $T/upstream/<repo>.git made from the release archives,
# one commit each; with "pin", KVSSINK_*_COMMIT name those commits.
kvssink_upstream() {
  local a name dir
  for a in "${kvssink_archives[@]}"; do
    name=$(cut -d: -f1 <<<"$a")
    dir=$T/upstream/$name.git
    mkdir -p "$dir"
    tar -C "$dir" --strip-components=1 -xzf "$T/shared/third_party/$name-$(cut -d: -f2 <<<"$a").tar.gz" &&
      git -C "$dir" init -q && git -C "$dir" add -A &&
      git -C "$dir" -c user.name=upstream -c user.email=upstream@localhost commit -qm release ||
      fail "could not make $dir"
    if [ "${1:-}" = pin ]; then export "KVSSINK_${a##*:}_COMMIT=$(git -C "$dir" rev-parse HEAD)"; fi
  done
  export KVSSINK_UPSTREAM=file://$T/upstream
}

run_kvssink() { OUT=$("$KVSSINK" "$@" 2>"$T/stderr"); RC=$?; ERR=$(cat "$T/stderr"); }
expect_kvssink_rc() { [ "$RC" -eq "$1" ] || fail "build-kvssink.sh exited $RC, want $1; stdout:
$OUT
stderr:
$ERR"; }
expect_err() { grep -qF -- "$1" <<<"$ERR" || fail "stderr lacks '$1':
$ERR"; }
# expect_no_cache: no cache, and nothing half-made beside where it would be.
expect_no_cache() {
  local left
  left=$(ls -A "$KVSSINK_CACHE" 2>/dev/null | grep -vx kvssink-build.log)
  [ -z "$left" ] || fail "left in the cache folder: $left"
}
# expect_cache: stdout is the one line, naming a plugin folder in the cache
# that holds only libgstkvssink.so, with the SDK's libraries in lib/ beside
# it (files, not links into the deleted build folder).
expect_cache() {
  local dir
  dir=$(sed -n 's/^export GST_PLUGIN_PATH=\(.*\)\${GST_PLUGIN_PATH:+:\$GST_PLUGIN_PATH}$/\1/p' <<<"$OUT")
  [ "$(grep -c . <<<"$OUT")" -eq 1 ] && [ -n "$dir" ] || fail "stdout is not the one GST_PLUGIN_PATH line:
$OUT"
  case $dir in "$KVSSINK_CACHE"/kvssink-3.6.0-*/plugin) ;; *) fail "the plugin folder $dir is not in $KVSSINK_CACHE" ;; esac
  [ "$(ls "$dir")" = libgstkvssink.so ] || fail "$dir holds $(ls "$dir")"
  [ "$(ls "$dir/../lib" | tr '\n' ' ')" = "libKinesisVideoProducer.so libcproducer.so.1 libkvsCommonCurl.so.1 " ] ||
    fail "lib/ holds $(ls "$dir/../lib")"
  [ ! -L "$dir/../lib/libcproducer.so.1" ] || fail "lib/libcproducer.so.1 is a link"
  [ "$(ls -A "$KVSSINK_CACHE")" = "$(basename "$(dirname "$dir")")" ] || fail "more than the cache in $KVSSINK_CACHE: $(ls -A "$KVSSINK_CACHE")"
  PLUGIN_DIR=$dir
}

case_kvssink_builds_once_then_reuses_cache() {
  kvssink_setup
  run_kvssink
  expect_kvssink_rc 0
  expect_cache
  expect_err "unpacking the sources from $T/shared/third_party (SHA-256 checked)"
  expect_no_log apt; expect_no_log sudo
  grep -qF -- "-DCMAKE_INSTALL_RPATH=\$ORIGIN/../lib" "$T/log/cmake" || fail "no RPATH flag: $(cat "$T/log/cmake")"
  grep -qF "from the archives in $T/shared/third_party" "$PLUGIN_DIR/../SOURCES" || fail "SOURCES: $(cat "$PLUGIN_DIR/../SOURCES")"
  local first=$OUT
  # Without the sources and without cmake, the second run reuses the cache.
  chmod -R u+w "$T/shared" && rm -rf "$T/shared" "$T/log/cmake" "$T/bin/cmake"
  run_kvssink
  expect_kvssink_rc 0
  [ "$OUT" = "$first" ] || fail "the second run printed '$OUT', the first '$first'"
  expect_err "reusing the build in"
  expect_no_log cmake
  run_kvssink --if-sources
  expect_kvssink_rc 0
  [ "$OUT" = "$PLUGIN_DIR" ] || fail "--if-sources with a cache printed '$OUT'"
}

case_kvssink_checksum_mismatch_builds_nothing() {
  kvssink_setup
  local a=$T/shared/third_party/amazon-kinesis-video-streams-producer-c-1.6.2.tar.gz
  chmod u+w "$a" && echo tampered >>"$a"
  run_kvssink
  expect_kvssink_rc 1
  expect_err "$a does not match its pinned SHA-256"
  [ -z "$OUT" ] || fail "stdout: $OUT"
  expect_no_log cmake
  expect_no_cache
}

case_kvssink_unknown_distribution() {
  kvssink_setup
  printf 'PRETTY_NAME="Fedora Linux 40"\nID=fedora\nVERSION_ID=40\n' >"$T/etc/os-release"
  run_kvssink
  expect_kvssink_rc 1
  [ "$(grep -c . <<<"$ERR")" -eq 1 ] || fail "more than one sentence:
$ERR"
  expect_err "kvssink: this script installs kvssink's build dependencies on Debian and Ubuntu only, and this is Fedora Linux 40:"
  expect_err "KVSSINK_SKIP_DEPS=1."
  expect_no_log apt; expect_no_log cmake
  expect_no_cache
  # Told that the packages are there, it builds.
  KVSSINK_SKIP_DEPS=1 run_kvssink
  expect_kvssink_rc 0
  expect_cache
}

case_kvssink_installs_build_packages() {
  kvssink_setup
  sed -i '/^cmake$/d; /^liblog4cplus-dev$/d' "$T/installed"
  fake_sudo
  echo 1000 >"$T/uid"
  run_kvssink
  expect_kvssink_rc 0
  expect_err "kvssink: installing cmake liblog4cplus-dev"
  grep -q "^apt-get install -y -qq --no-install-recommends cmake liblog4cplus-dev DEBIAN_FRONTEND=noninteractive uid=0" "$T/log/apt" ||
    fail "apt-get install did not run as root: $(cat "$T/log/apt" 2>&1)"
  expect_cache
}

case_kvssink_failed_build_one_sentence() {
  kvssink_setup
  FAKE_CMAKE_FAIL=1 run_kvssink
  expect_kvssink_rc 1
  [ "$(tail -n 1 <<<"$ERR")" = "kvssink: building kvssink failed while compiling (cmake --build) (the last lines are above; the whole log is $KVSSINK_CACHE/kvssink-build.log): nothing was cached." ] ||
    fail "the last line is not the sentence:
$ERR"
  expect_err "gstkvssink.cpp:1: error: it broke"
  grep -q "it broke" "$KVSSINK_CACHE/kvssink-build.log" || fail "the log was not kept"
  expect_no_cache
}

case_kvssink_interrupted_leaves_no_cache() {
  kvssink_setup
  FAKE_GST_KILL=1 run_kvssink
  [ "$RC" -eq 143 ] || fail "the run was not killed (exit $RC): $OUT $ERR"
  grep -q "^gst-inspect-1.0 .*/libgstkvssink.so" "$T/log/gst" || fail "the kill came before the last step"
  expect_no_cache
  run_kvssink
  expect_kvssink_rc 0
  expect_cache
}

case_kvssink_downloads_pinned_commits() {
  kvssink_setup
  kvssink_upstream pin
  chmod -R u+w "$T/shared" && rm -rf "$T/shared"
  run_kvssink --plugin-dir
  expect_kvssink_rc 0
  expect_err "fetching the sources from file://$T/upstream at the pinned commits"
  case $OUT in "$KVSSINK_CACHE"/kvssink-3.6.0-*/plugin) ;; *) fail "--plugin-dir printed '$OUT'" ;; esac
  [ "$(ls "$OUT")" = libgstkvssink.so ] || fail "$OUT holds $(ls "$OUT")"
  grep -qF "fetched from file://$T/upstream" "$OUT/../SOURCES" || fail "SOURCES: $(cat "$OUT/../SOURCES")"
}

case_kvssink_download_refuses_other_commits() {
  kvssink_setup
  kvssink_upstream # its commits are not the pinned ones
  chmod -R u+w "$T/shared" && rm -rf "$T/shared"
  run_kvssink
  expect_kvssink_rc 1
  expect_err "could not fetch file://$T/upstream/amazon-kinesis-video-streams-producer-sdk-cpp.git at commit a6efdf5d2fe1fcc5be85048a0c1b6a90ab80ff72"
  expect_no_log cmake
  expect_no_cache
}

case_kvssink_without_sources_make_test_skips() {
  kvssink_setup
  chmod -R u+w "$T/shared" && rm -rf "$T/shared"
  run_kvssink --if-sources
  expect_kvssink_rc 3
  [ -z "$OUT" ] || fail "stdout: $OUT"
  [ "$(grep -c . <<<"$ERR")" -eq 1 ] || fail "not one line:
$ERR"
  expect_err "real-kvssink tests skipped: no kvssink sources in $T/shared/third_party (set KVSSINK_SOURCES)"
  expect_no_log cmake; expect_no_log apt
  expect_no_cache
}

case_kvssink_dry_run_changes_nothing() {
  kvssink_setup
  sed -i '/^cmake$/d' "$T/installed"
  fake_sudo
  echo 1000 >"$T/uid"
  DRY_RUN=1 run_kvssink
  expect_kvssink_rc 0
  expect_err "would run: sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends cmake"
  expect_err "would build kvssink 3.6.0 with 2 jobs into $KVSSINK_CACHE/kvssink-3.6.0-"
  [ -z "$OUT" ] || fail "stdout: $OUT"
  expect_no_log apt; expect_no_log sudo; expect_no_log cmake
  expect_no_cache
}

# --- driver ------------------------------------------------------------------

if [ "${1:-}" = --list ]; then
  declare -F | sed -n 's/^declare -f case_//p'
  exit 0
fi
declare -F "case_${1:-}" >/dev/null || { echo "usage: $0 --list | CASE" >&2; exit 2; }
setup
"case_$1"
echo "ok $1"
