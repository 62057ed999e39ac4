# shellcheck shell=bash
# Sourced by deploy/build-deb.sh and deploy/build-bundle.sh: apt-get for another architecture (arm64, armhf)
# with its own package lists and an empty (or given) dpkg status, so nothing of the host's dpkg/apt state
# changes (no `dpkg --add-architecture`). The sources are the host's own Debian sources
# (/etc/apt/sources.list, /etc/apt/sources.list.d/): any Debian bookworm machine can build for the Pi.
#
#   foreign_apt_init ARCH DIR [STATUS]   create DIR (lists, cache, status) and run `apt-get update` for ARCH
#   foreign_apt ARGS...                  apt-get with that configuration (after foreign_apt_init)

FOREIGN_APT_OPTS=()

foreign_apt_init() {
    local arch="$1" dir="$2" status="${3:-}"
    mkdir -p "$dir/lists/partial" "$dir/archives/partial"
    if [ -n "$status" ]; then cp "$status" "$dir/status"; else : >"$dir/status"; fi
    FOREIGN_APT_OPTS=(
        -o "APT::Architecture=$arch" -o "APT::Architectures::=$arch"
        -o "Dir::State::Lists=$dir/lists" -o "Dir::State::status=$dir/status"
        -o "Dir::Cache::archives=$dir/archives" -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache="
        -o "Debug::NoLocking=1" -o "APT::Install-Recommends=false" -o "APT::Sandbox::User=root"
        -o "Acquire::Languages=none"
    )
    # Package lists are refreshed at most every 6 hours (they are large; the build may run often).
    if [ -z "$(find "$dir/lists" -maxdepth 1 -name '*Packages*' -mmin -360 2>/dev/null | head -n 1)" ]; then
        apt-get "${FOREIGN_APT_OPTS[@]}" -qq update
    fi
}

foreign_apt() { apt-get "${FOREIGN_APT_OPTS[@]}" "$@"; }
