#!/usr/bin/env bash
# Builds AWS's kvssink GStreamer element (libgstkvssink.so of the Kinesis
# Video Streams producer SDK C++), which no distribution packages, for this
# machine into a cache folder, and prints the line that makes GStreamer find
# it. A second run reuses the cache: no root, no network, no build.
#
#   build-kvssink.sh               build or reuse; print `export GST_PLUGIN_PATH=...`
#   build-kvssink.sh --plugin-dir  build or reuse; print only the plugin folder
#   build-kvssink.sh --if-sources  as --plugin-dir when the cache or the local
#                                  sources are there; else say in one line why
#                                  not and exit 3 (make test skips then)
#
# Sources: the release archives in KVSSINK_SOURCES (default
# ../shared/third_party beside the repository, as CI has it), each checked
# against the SHA-256 pinned below; when that folder does not exist, the same
# releases are fetched from GitHub with git at the commits pinned below.
# Build dependencies (Debian/Ubuntu packages) are installed first, as root or
# through sudo, like make deps.
#
# The cache folder, ${XDG_CACHE_HOME:-~/.cache}/kvsrelay/kvssink-<version>-<hash>
# (the hash covers the pins, the build recipe and the distribution), holds
#   plugin/libgstkvssink.so   alone: GStreamer tries every .so on its path
#   lib/                      the SDK's three shared libraries (RPATH $ORIGIN/../lib)
#   licenses/, SOURCES        the projects' LICENSE/NOTICE files, what was built from
# It is assembled beside its final name and renamed into place, so an
# interrupted run never leaves half a cache.
#
# Settings (environment; the defaults are what users want, the others serve
# the tests):
#   KVSSINK_SOURCES     folder holding the release archives (see above)
#   KVSSINK_UPSTREAM    where the git repositories are (https://github.com/awslabs)
#   KVSSINK_CACHE       cache root (${XDG_CACHE_HOME:-~/.cache}/kvsrelay)
#   KVSSINK_JOBS        parallel compile jobs (the number of CPUs)
#   KVSSINK_SKIP_DEPS=1 install no packages (on other distributions: install
#                       the equivalents of the packages below yourself)
#   KVSSINK_OS_RELEASE  the os-release file naming the distribution (/etc/os-release)
#   KVSSINK_CPP_COMMIT, KVSSINK_C_COMMIT, KVSSINK_PIC_COMMIT
#                       the commits to fetch instead of the pinned ones (a
#                       stand-in upstream in the tests)
#   DRY_RUN=1           say what would be done, change nothing
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")

# --- pins ----------------------------------------------------------------------
# The releases kvssink is built from: producer SDK C++ v3.6.0, producer-c
# v1.6.2 (which the C++ SDK's build fetches) and PIC at the commit of its
# release 1.2.0 (producer-c names PIC v1.3.1; this commit builds and runs
# with it). The SHA-256 sums are those of the archives in
# shared/third_party (its SHA256SUMS); they are pinned here rather than read
# from that folder, so a changed archive cannot bring its own sum. Those
# archives leave out docs, CI files and unit tests, so GitHub's archives of
# the same tags have other sums: a download is pinned by the commit instead.
# A git commit id is a hash over the whole tree, so fetching that commit and
# checking HEAD pins the content as a SHA-256 of an archive would.
kvssink_version=3.6.0
cpp_repo=amazon-kinesis-video-streams-producer-sdk-cpp
cpp_archive=$cpp_repo-3.6.0.tar.gz
cpp_sha256=ad3ec876d585857e776a553c13bdd72c12e6d592146fc03f20afcd4d38fa7e35
cpp_commit=${KVSSINK_CPP_COMMIT:-a6efdf5d2fe1fcc5be85048a0c1b6a90ab80ff72} # tag v3.6.0
c_repo=amazon-kinesis-video-streams-producer-c
c_archive=$c_repo-1.6.2.tar.gz
c_sha256=d03ca5d3079e6164401b4544c0773eb0f17be8e6affb16060497822ed85cfa38
c_commit=${KVSSINK_C_COMMIT:-a8e17c498a0200e2b36f71a9d3842c8680e03c38} # tag v1.6.2
pic_repo=amazon-kinesis-video-streams-pic
pic_archive=$pic_repo-c98c2a256a7b.tar.gz
pic_sha256=8cf8edcdb05ddd5a68402773bd43ad8029006ea1bcfebd669b5c17475cc50579
pic_commit=${KVSSINK_PIC_COMMIT:-c98c2a256a7bb3dfc4db41ae26d45e28ac7eec56} # release 1.2.0

# The SDK's shared libraries libgstkvssink.so needs (directly or through
# each other); they go into lib/ of the cache.
sdk_libs=(libKinesisVideoProducer.so libcproducer.so.1 libkvsCommonCurl.so.1)

# Debian/Ubuntu packages the build needs (same names on Debian 12 and
# Ubuntu 22.04/24.04); gstreamer1.0-tools checks that the result loads.
packages=(
  cmake make g++ pkg-config git ca-certificates libcurl4-openssl-dev libssl-dev liblog4cplus-dev
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools
)

# Every object gets RPATH $ORIGIN/../lib: from plugin/ that is lib/, from
# lib/ it is lib/ itself. BUILD_WITH_INSTALL_RPATH puts it in at link time,
# so the build tree's files can be copied as they are (no patchelf). One
# build tree (add_subdirectory), so these flags reach producer-c and PIC too.
cmake_flags=(-DBUILD_GSTREAMER_PLUGIN=ON -DBUILD_DEPENDENCIES=OFF -DCMAKE_BUILD_TYPE=Release
  '-DCMAKE_INSTALL_RPATH=$ORIGIN/../lib' -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON)
recipe=1 # bump when the steps below change what ends up in the cache

# --- settings ------------------------------------------------------------------

mode=line
case ${1:-} in
  '') ;;
  --plugin-dir) mode=dir ;;
  --if-sources) mode=if-sources ;;
  *) echo "usage: $0 [--plugin-dir | --if-sources]" >&2; exit 2 ;;
esac

sources_default=$(cd "$repo/.." && pwd)/shared/third_party
sources=${KVSSINK_SOURCES:-$sources_default}
upstream=${KVSSINK_UPSTREAM:-https://github.com/awslabs}
upstream=${upstream%/}
cache_root=${KVSSINK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kvsrelay}
jobs=${KVSSINK_JOBS:-$(nproc 2>/dev/null || echo 2)}
skip_deps=${KVSSINK_SKIP_DEPS:-}
[ "$skip_deps" = 0 ] && skip_deps=
os_release=${KVSSINK_OS_RELEASE:-/etc/os-release}
dry_run=${DRY_RUN:-}
[ "$dry_run" = 0 ] && dry_run=

say() { echo "kvssink: $*" >&2; }
die() { echo "kvssink: $*" >&2; exit 1; }
root_hint="make kvssink (or this script)"
# shellcheck source=lib-apt.sh
. "$here/lib-apt.sh"

# os_field NAME prints NAME's value from the os-release file ("" when absent).
os_field() {
  [ -r "$os_release" ] || return 0
  sed -n "s/^$1=//p" "$os_release" | head -n 1 | tr -d '"'"'"
}
os_id=$(os_field ID)
os_like=$(os_field ID_LIKE)
os_version=$(os_field VERSION_ID)
os_name=$(os_field PRETTY_NAME)
os_name=${os_name:-${os_id:-an unknown distribution (no $os_release)}}

# The cache key: everything that decides what the build produces.
key=$(
  {
    echo "recipe $recipe"
    echo "cpp $cpp_archive $cpp_sha256 $cpp_commit"
    echo "c $c_archive $c_sha256 $c_commit"
    echo "pic $pic_archive $pic_sha256 $pic_commit"
    echo "cmake ${cmake_flags[*]}"
    echo "os $os_id $os_version $(uname -m)"
  } | sha256sum | cut -c1-12
)
cache=$cache_root/kvssink-$kvssink_version-$key

# print_result prints what the mode asks for, on stdout.
print_result() {
  if [ "$mode" = line ]; then
    say "kvssink $kvssink_version is in $cache/plugin; to use it in this shell (or add it to your profile):"
    printf 'export GST_PLUGIN_PATH=%s${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}\n' "$cache/plugin"
  else
    echo "$cache/plugin"
  fi
}

# loads DIR: GStreamer can load DIR/plugin/libgstkvssink.so and it provides
# kvssink. A registry of its own, no other plugin folders: fast and
# independent of what else is installed. Prints gst-inspect's output when not.
loads() {
  local scratch out
  scratch=$(mktemp -d)
  if out=$(GST_REGISTRY=$scratch/registry.bin GST_PLUGIN_SYSTEM_PATH=$scratch GST_PLUGIN_PATH= \
    gst-inspect-1.0 "$1/plugin/libgstkvssink.so" 2>&1) && grep -qw kvssink <<<"$out"; then
    rm -rf "$scratch"
    return 0
  fi
  rm -rf "$scratch"
  printf '%s\n' "$out" | tail -n 5 >&2
  return 1
}

# --- the cache -------------------------------------------------------------------

if [ -f "$cache/plugin/libgstkvssink.so" ]; then
  if ! command -v gst-inspect-1.0 >/dev/null 2>&1 || loads "$cache"; then
    say "reusing the build in $cache"
    print_result
    exit 0
  fi
  say "the cached build in $cache no longer loads (above; the system's libraries changed?): building it again"
  [ -n "$dry_run" ] || rm -rf "$cache"
fi

if [ -d "$sources" ]; then
  from=local
elif [ -n "${KVSSINK_SOURCES:-}" ]; then
  die "KVSSINK_SOURCES=$sources is not a folder: point it at the folder holding $cpp_archive, $c_archive and $pic_archive, or unset it to download them."
elif [ "$mode" = if-sources ]; then
  echo "real-kvssink tests skipped: no kvssink sources in $sources (set KVSSINK_SOURCES) and no make kvssink build in $cache_root" >&2
  exit 3
else
  from=download
fi

# --- build dependencies -----------------------------------------------------------

if [ -z "$skip_deps" ]; then
  case " $os_id $os_like " in
    *" debian "* | *" ubuntu "*) ;;
    *) die "this script installs kvssink's build dependencies on Debian and Ubuntu only, and this is $os_name: install cmake, make, a C++ compiler, pkg-config, git and the development files of curl, OpenSSL, log4cplus, GStreamer and GStreamer's base plugins yourself, then run it again with KVSSINK_SKIP_DEPS=1." ;;
  esac
  mapfile -t missing < <(missing_packages "${packages[@]}")
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    install_packages "${missing[@]}"
  fi
fi

if [ -n "$dry_run" ]; then
  if [ $from = local ]; then
    say "would check $cpp_archive, $c_archive and $pic_archive in $sources against their pinned SHA-256"
  else
    say "would fetch $upstream/{$cpp_repo,$c_repo,$pic_repo}.git at the pinned commits"
  fi
  say "would build kvssink $kvssink_version with $jobs jobs into $cache"
  exit 0
fi

tools=(cmake make c++ tar gzip sha256sum gst-inspect-1.0)
[ $from = download ] && tools+=(git)
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null 2>&1 ||
    die "building kvssink needs $tool, which is not installed: install it (on Debian and Ubuntu, this script installs it unless KVSSINK_SKIP_DEPS is set) and run this again."
done

# --- sources ----------------------------------------------------------------------

tmp=$(mktemp -d)
staging=
cleanup() {
  rm -rf "$tmp"
  if [ -n "$staging" ]; then rm -rf "$staging"; fi
}
trap cleanup EXIT

# Where the C++ SDK's build expects producer-c, and producer-c's build
# expects PIC (their ExternalProject steps would clone them there).
cpp_src=$tmp/src
c_src=$cpp_src/dependency/libkvscproducer/kvscproducer-src
pic_src=$c_src/dependency/libkvspic/kvspic-src

# unpack ARCHIVE SHA256 DIR: the archive's top folder becomes DIR.
unpack() {
  local archive=$sources/$1
  [ -f "$archive" ] || die "$sources has no $1: put the three archives there (see SHA256SUMS), or point KVSSINK_SOURCES at the folder holding them."
  echo "$2  $archive" | sha256sum -c --status - ||
    die "$archive does not match its pinned SHA-256 ($2): not built; replace it with the release archive."
  mkdir -p "$3"
  tar -C "$3" --strip-components=1 -xzf "$archive" || die "could not unpack $archive: not built."
}

# fetch REPO COMMIT DIR: the repository's tree at COMMIT (fetched by its id)
# in DIR, checked to be that commit.
fetch() {
  local url=$upstream/$1.git head
  mkdir -p "$3"
  git init -q "$3"
  git -C "$3" fetch -q --depth 1 "$url" "$2" 2>"$tmp/git.log" ||
    die "could not fetch $url at commit $2 ($(tail -n 1 "$tmp/git.log")): check the network, or put the release archives into $sources_default."
  git -C "$3" -c advice.detachedHead=false checkout -q FETCH_HEAD
  head=$(git -C "$3" rev-parse HEAD)
  [ "$head" = "$2" ] || die "$url gave commit $head, not the pinned $2: not built."
}

if [ $from = local ]; then
  say "unpacking the sources from $sources (SHA-256 checked)"
  unpack "$cpp_archive" "$cpp_sha256" "$cpp_src"
  unpack "$c_archive" "$c_sha256" "$c_src"
  unpack "$pic_archive" "$pic_sha256" "$pic_src"
else
  say "fetching the sources from $upstream at the pinned commits"
  fetch "$cpp_repo" "$cpp_commit" "$cpp_src"
  fetch "$c_repo" "$c_commit" "$c_src"
  fetch "$pic_repo" "$pic_commit" "$pic_src"
fi

# The two ExternalProject steps would clone producer-c and PIC; they are in
# place already, so their GIT_* lines become DOWNLOAD_COMMAND "" (an empty
# download step).
for f in "$cpp_src/CMake/Dependencies/libkvscproducer-CMakeLists.txt" "$c_src/CMake/Dependencies/libkvspic-CMakeLists.txt"; do
  [ -f "$f" ] && grep -q '^[[:space:]]*GIT_REPOSITORY' "$f" ||
    die "${f#"$tmp/"} is missing or has no GIT_REPOSITORY line: the sources are not laid out as this script expects."
  sed -i -e '/^[[:space:]]*GIT_[A-Z_]*[[:space:]]/d' -e 's/^\([[:space:]]*ExternalProject_Add(.*\)$/\1\n\tDOWNLOAD_COMMAND  ""/' "$f"
  grep -q 'DOWNLOAD_COMMAND  ""' "$f" || die "${f#"$tmp/"} has no ExternalProject_Add line: the sources are not laid out as this script expects."
done

# --- build --------------------------------------------------------------------------

log=$tmp/build.log
# failed STEP: the log's last lines, kept in full beside the cache, and one sentence.
failed() {
  mkdir -p "$cache_root"
  cp "$log" "$cache_root/kvssink-build.log"
  tail -n 25 "$log" >&2
  die "building kvssink failed while $1 (the last lines are above; the whole log is $cache_root/kvssink-build.log): nothing was cached."
}

say "building kvssink $kvssink_version with $jobs jobs (a minute or two of CPU); log in $log"
start=$SECONDS
# Run from make (make kvssink, make test), the outer make's flags would reach
# the build's own make through the environment: -n would turn it into a dry
# run, -j into a warning about the jobserver.
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES
cmake -S "$cpp_src" -B "$tmp/build" "${cmake_flags[@]}" >"$log" 2>&1 || failed "configuring (cmake)"
cmake --build "$tmp/build" --target gstkvssink -j "$jobs" >>"$log" 2>&1 || failed "compiling (cmake --build)"

# --- cache ----------------------------------------------------------------------------

mkdir -p "$cache_root"
staging=$(mktemp -d "$cache_root/.kvssink-$kvssink_version-$key.XXXXXX")
mkdir -p "$staging/plugin" "$staging/lib" "$staging/licenses"
# copy_built NAME DIR: copies the one built file of that name into DIR (a
# symlink's target, under the link's name).
copy_built() {
  local found
  found=$(find "$tmp/build" -name "$1" \( -type f -o -type l \) | head -n 1)
  [ -n "$found" ] || failed "collecting the result ($1 was not built)"
  cp -L "$found" "$2/$1"
}
copy_built libgstkvssink.so "$staging/plugin"
for lib in "${sdk_libs[@]}"; do copy_built "$lib" "$staging/lib"; done
for p in cpp:"$cpp_src" producer-c:"$c_src" pic:"$pic_src"; do
  for f in LICENSE NOTICE; do
    if [ -f "${p#*:}/$f" ]; then cp "${p#*:}/$f" "$staging/licenses/${p%%:*}-$f"; fi
  done
done
{
  echo "kvssink $kvssink_version built by kvsrelay's scripts/build-kvssink.sh on $os_name ($(uname -m))"
  if [ $from = local ]; then echo "from the archives in $sources:"; else echo "fetched from $upstream:"; fi
  echo "  $cpp_archive sha256 $cpp_sha256 commit $cpp_commit"
  echo "  $c_archive sha256 $c_sha256 commit $c_commit"
  echo "  $pic_archive sha256 $pic_sha256 commit $pic_commit"
  echo "cmake ${cmake_flags[*]}"
} >"$staging/SOURCES"

if ! loads "$staging"; then
  failed "checking that GStreamer loads the result (gst-inspect-1.0's last lines are above)"
fi

# Renamed into place: a half-written cache never has the final name. When
# another run got there first, its cache is as good as ours.
if ! mv -T "$staging" "$cache" 2>/dev/null; then
  [ -f "$cache/plugin/libgstkvssink.so" ] || die "could not move the build into $cache: nothing was cached."
fi
staging=
say "built in $((SECONDS - start)) s"
print_result
