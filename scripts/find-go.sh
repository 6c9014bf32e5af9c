#!/usr/bin/env bash
# Finds the Go that kvsrelay builds with. Go >= 1.21 is enough: it fetches
# the Go version go.mod asks for on its own.
#
#   scripts/find-go.sh               print the go command to use: the go on
#                                    PATH when it is >= 1.21, else
#                                    $KVSRELAY_GO_DIR/bin/go (/usr/local/go/bin/go,
#                                    where make deps installs Go), existing or not
#   scripts/find-go.sh --check GO    exit 0 when GO runs and is >= 1.21, else
#                                    print one sentence saying what to do, exit 1
#   scripts/find-go.sh --version GO  print GO's version (1.22.3), exit 1 when
#                                    it does not run
set -u

min_major=1
min_minor=21
go_dir=${KVSRELAY_GO_DIR:-/usr/local/go}

# go_version prints the version of the go command $1 ("1.22.3", or "devel"
# for a development build). It runs outside any module and with
# GOTOOLCHAIN=local, so that a go >= 1.21 reports itself instead of
# switching to (and perhaps downloading) the toolchain go.mod asks for.
go_version() {
  local out
  out=$(cd / && GOTOOLCHAIN=local "$1" version 2>/dev/null) || return 1
  case $out in
    "go version go"[0-9]*) out=${out#go version go}; echo "${out%% *}" ;;
    "go version devel"*) echo devel ;;
    *) return 1 ;;
  esac
}

# new_enough says whether version $1 is at least min_major.min_minor.
new_enough() {
  [ "$1" = devel ] && return 0
  local major=${1%%.*} rest=${1#*.} minor
  minor=${rest%%[!0-9]*}
  case $major$minor in '' | *[!0-9]*) return 1 ;; esac
  [ "$major" -gt "$min_major" ] || { [ "$major" -eq "$min_major" ] && [ "$minor" -ge "$min_minor" ]; }
}

find_go() {
  local p v
  if p=$(command -v go) && v=$(go_version "$p") && new_enough "$v"; then
    echo "$p"
  else
    echo "$go_dir/bin/go"
  fi
}

check_go() {
  local want=$1 p v= old
  if ! p=$(command -v -- "$want") || [ ! -x "$p" ]; then
    if old=$(command -v go) && v=$(go_version "$old") && new_enough "$v"; then
      echo "There is no Go at $want, but Go $v at $old would do: leave GO unset (make finds it on PATH)." >&2
    elif [ -n "$v" ]; then
      echo "Go $v at $old is too old for kvsrelay (it needs Go >= $min_major.$min_minor) and there is no $want: run make deps, which installs a current Go into $go_dir." >&2
    else
      echo "Go is not installed (no go on PATH, no $want): run make deps, which installs it into $go_dir, or install Go >= $min_major.$min_minor from https://go.dev/dl/." >&2
    fi
    return 1
  fi
  if ! v=$(go_version "$p"); then
    echo "$p does not run ('$p version' failed): remove it and run make deps, which installs a current Go into $go_dir." >&2
    return 1
  fi
  if ! new_enough "$v"; then
    echo "Go $v at $p is too old: kvsrelay needs Go >= $min_major.$min_minor (which fetches the Go version go.mod asks for); run make deps, which installs a current Go into $go_dir." >&2
    return 1
  fi
}

case ${1:-} in
  "") find_go ;;
  --check) check_go "${2:-go}" ;;
  --version) go_version "${2:-go}" ;;
  *) echo "usage: $0 [--check GO | --version GO]" >&2; exit 2 ;;
esac
