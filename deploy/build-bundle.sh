#!/usr/bin/env bash
# Builds BAB's offline bundle for Raspberry Pi OS Lite (bookworm): one file to copy to the boot partition.
#
#   deploy/build-bundle.sh --arch arm64|armhf [--out DIR] [--cache DIR]
#
# Output: DIR/bab-bundle-ARCH.tar (default DIR: dist/), holding bab-bundle/:
#   debs/*.deb          BAB's package (deploy/build-deb.sh) and every package it needs that is not part of the
#                       base system (Debian's Priority required + important packages and their dependencies,
#                       which Raspberry Pi OS Lite has): python3 itself, python3-serial, python3-yaml,
#                       python3-pyudev, python3-cryptography, python3-cffi-backend, libwolfssl35 ...
#   Packages            the index that makes debs/ a flat apt repository
#   install-offline.sh  the installer (deploy/bundle/install-offline.sh); the first-boot hook runs it
#   ARCH, VERSION, SHA256SUMS
# Everything comes from Debian's own archive for ARCH (the host's apt sources, with a private apt state: the
# host's dpkg architectures are not changed); no Raspberry Pi repository is needed. Runs on any Debian
# bookworm machine. deploy/firstboot/prepare-boot.sh --bundle FILE puts it onto the SD card.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=debian/apt-foreign.sh disable=SC1091
. "$here/deploy/debian/apt-foreign.sh"

ARCH=""
OUT="$here/dist"
CACHE="${BAB_PKG_CACHE:-$here/build/deb-cache}"

log() { printf '[build-bundle] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --arch) ARCH="$2"; shift ;;
        --out) OUT="$2"; shift ;;
        --cache) CACHE="$2"; shift ;;
        -h|--help) usage 0 ;;
        *) log "unknown option: $1"; usage 2 ;;
    esac
    shift
done
[ -n "$ARCH" ] || usage 2
if ! command -v dpkg-scanpackages >/dev/null; then
    log "installing dpkg-dev (dpkg-scanpackages)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dpkg-dev >/dev/null
fi
mkdir -p "$OUT" "$CACHE"
OUT=$(cd "$OUT" && pwd)
CACHE=$(cd "$CACHE" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/bab-bundle.XXXXXX")
trap 'rm -rf "$work"' EXIT
b="$work/bab-bundle"
mkdir -p "$b/debs"

deb=$("$here/deploy/build-deb.sh" --arch "$ARCH" --out "$work/deb" --cache "$CACHE" | tail -n 1)
cp "$deb" "$b/debs/"

foreign_apt_init "$ARCH" "$CACHE/apt-$ARCH"
# The base system: every Priority required/important package and what it depends on.
apt-cache "${FOREIGN_APT_OPTS[@]}" dumpavail >"$work/avail"
mapfile -t base_pkgs < <(awk 'BEGIN { RS = ""; FS = "\n" }
    /\nPriority: (required|important)(\n|$)/ { for (i = 1; i <= NF; i++) if ($i ~ /^Package: /) { sub(/^Package: /, "", $i); print $i } }' \
    "$work/avail" | sort -u)
closure() { foreign_apt install -s "$@" 2>&1 | awk '/^Inst / { print $2 }' | sort -u; }
closure "${base_pkgs[@]}" >"$work/base"
[ -s "$work/base" ] || die "cannot resolve the base system for $ARCH"
# What BAB needs: its Depends (without versions), resolved the same way.
mapfile -t deps < <(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed -e 's/(.*)//' -e 's/|.*//' -e 's/ //g' | grep -v '^$')
foreign_apt install -s "${deps[@]}" >"$work/sim" 2>&1 || { cat "$work/sim" >&2; die "BAB's dependencies cannot be resolved for $ARCH"; }
awk '/^Inst / { print $2 }' "$work/sim" | sort -u >"$work/needed"
mapfile -t extra < <(comm -23 "$work/needed" "$work/base")
log "packages beyond the base system: ${extra[*]}"
(cd "$b/debs" && foreign_apt download -qq "${extra[@]}")

(cd "$b" && dpkg-scanpackages --multiversion debs /dev/null 2>/dev/null >Packages)
grep -q '^Package: bab$' "$b/Packages" || die "the index does not list bab"
install -m 0755 "$here/deploy/bundle/install-offline.sh" "$b/install-offline.sh"
echo "$ARCH" >"$b/ARCH"
dpkg-deb -f "$deb" Version | sed 's/^/Version: /' >"$b/VERSION"
(cd "$b" && find . -type f -printf '%P\n' | sort | xargs sha256sum >"$work/SHA256SUMS")
mv "$work/SHA256SUMS" "$b/SHA256SUMS"
out="$OUT/bab-bundle-$ARCH.tar"
tar -C "$work" --owner=0 --group=0 -cf "$out.tmp" bab-bundle
mv -f "$out.tmp" "$out"
log "built $out: $(find "$b/debs" -name '*.deb' | wc -l) packages, $(du -k "$out" | cut -f1) KiB"
echo "$out"
