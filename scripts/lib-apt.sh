# Sourced by install-deps.sh and build-kvssink.sh: installing Debian/Ubuntu
# packages as root, through sudo when we are not root. The sourcing script
# defines say and die (its own prefix) and sets:
#   dry_run     non-empty: print the root commands instead of running them
#   root_hint   what to run as root instead, e.g. "make deps (or this script)"

# as_root runs a command as root: directly when we are root, else through
# sudo (which resets the environment: pass variables with env VAR=...).
# With DRY_RUN it only prints the command.
as_root() {
  if [ -n "$dry_run" ]; then
    say "would run: ${sudo:+$sudo }$*"
    return 0
  fi
  ${sudo:+"$sudo"} "$@"
}

# need_root sets sudo for as_root, or stops with a sentence when neither
# root nor sudo is at hand. $1 says what is being installed.
sudo=
need_root() {
  [ "$(id -u)" -eq 0 ] && return 0
  command -v sudo >/dev/null 2>&1 ||
    die "installing $1 needs root, and sudo is not installed: run $root_hint as root, or install sudo first."
  sudo=sudo
}

# missing_packages prints, one a line, those of the given packages that
# dpkg does not report as installed.
missing_packages() {
  local installed p
  installed=$(dpkg-query -W -f='${Package} ${Status}\n' "$@" 2>/dev/null || true)
  for p in "$@"; do
    grep -qx "$p install ok installed" <<<"$installed" || echo "$p"
  done
}

# install_packages installs the given packages with apt-get (as root).
install_packages() {
  command -v apt-get >/dev/null 2>&1 ||
    die "no apt-get here: this script installs on Debian 12 and Ubuntu 22.04/24.04; install $* yourself."
  need_root "$*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}
