#!/usr/bin/env bash
# Tests scripts/install-deps.sh, scripts/find-go.sh and the Makefile's Go
# lookup on a fake machine: a PATH of links to the real tools a minimal
# Debian has, plus fakes for what must not really run (apt-get, sudo,
# dpkg-query, id, an old distribution go). Go "releases" are local tarballs
# served through file:// URLs. Nothing outside a temp folder is touched.
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
    tar gzip sha256sum python3 head tail tr cut sort find touch ls readlink make; do
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

# --- driver ------------------------------------------------------------------

if [ "${1:-}" = --list ]; then
  declare -F | sed -n 's/^declare -f case_//p'
  exit 0
fi
declare -F "case_${1:-}" >/dev/null || { echo "usage: $0 --list | CASE" >&2; exit 2; }
setup
"case_$1"
echo "ok $1"
