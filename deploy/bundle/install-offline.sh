#!/bin/bash
# Installs BAB from an offline bundle (made by deploy/build-bundle.sh), with no network at all.
#
#   install-offline.sh BUNDLE      BUNDLE: the bundle file (bab-bundle.tar) or its unpacked directory
#
# The bundle is a flat apt repository: BAB's .deb and every package it needs that Raspberry Pi OS Lite
# (bookworm) does not have. apt installs `bab` from it alone (the system's own package lists are not used
# or changed), so packages already on the system stay as they are and only the missing ones are installed.
# The package's postinst then creates the user, /etc/bab and /var/lib/bab, and enables and starts
# bab.service when /etc/bab/bab.yaml is a real configuration. Exit status: 0 installed, 1 failed.
set -euo pipefail

log() { printf 'install-offline: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ $# -eq 1 ] || { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
src="$1"
work="${BAB_BUNDLE_WORK:-/var/cache/bab-bundle}"
if [ -f "$src" ]; then
    rm -rf "$work" && mkdir -p "$work"
    tar -xf "$src" -C "$work" --no-same-owner || die "cannot unpack $src"
    dir="$work/bab-bundle"
else
    dir="$src"
fi
if [ ! -f "$dir/ARCH" ] || [ ! -f "$dir/Packages" ]; then die "$src is not a BAB bundle (no ARCH/Packages)"; fi
arch=$(dpkg --print-architecture)
[ "$(cat "$dir/ARCH")" = "$arch" ] || die "the bundle is for $(cat "$dir/ARCH"), this system is $arch"
(cd "$dir" && sha256sum --quiet -c SHA256SUMS) || die "the bundle is damaged (checksums differ)"
dir=$(cd "$dir" && pwd)

mkdir -p "$dir/apt/lists/partial" "$dir/apt/sources.list.d" "$dir/apt/archives/partial"
printf 'deb [trusted=yes] file:%s ./\n' "$dir" >"$dir/apt/sources.list"
opts=(-o "Dir::Etc::SourceList=$dir/apt/sources.list" -o "Dir::Etc::SourceParts=$dir/apt/sources.list.d"
      -o "Dir::State::Lists=$dir/apt/lists" -o "Dir::Cache::archives=$dir/apt/archives"
      -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=" -o "Acquire::Languages=none"
      -o "APT::Sandbox::User=root" -o "APT::Install-Recommends=false")
log "installing BAB $(sed -n 's/^Version: //p' "$dir/VERSION" 2>/dev/null || true) from $src ($arch, $(find "$dir/debs" -name '*.deb' | wc -l) packages, offline)"
apt-get "${opts[@]}" -qq update || die "apt cannot read the bundle"
DEBIAN_FRONTEND=noninteractive apt-get "${opts[@]}" install -y -q bab || die "apt could not install bab from the bundle"
dpkg-query -W -f='${Status} ${Version}\n' bab | grep -q "install ok installed" || die "bab is not installed"
log "installed: bab $(dpkg-query -W -f='${Version}' bab)"
[ -f "$src" ] && rm -rf "$work"
exit 0
