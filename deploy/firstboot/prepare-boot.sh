#!/usr/bin/env bash
# Puts BAB's first-boot hook onto a freshly flashed Raspberry Pi OS Lite (bookworm) SD card.
#
#   deploy/firstboot/prepare-boot.sh BOOT_DIR [--bundle FILE] [--config bab.yaml] [--keys DIR] [--no-cmdline] [--no-check]
#
# BOOT_DIR is the mounted boot partition ("bootfs", e.g. /media/$USER/bootfs). It writes:
#   BOOT_DIR/bab-firstboot.sh             the hook
#   BOOT_DIR/bab-bundle.tar               with --bundle FILE (deploy/build-bundle.sh --arch arm64|armhf): the
#                                         offline bundle, installed on first boot with no network
#   BOOT_DIR/bab/bab-src.tar.gz           without --bundle: this BAB checkout (without .git, .venv, caches),
#                                         installed on first boot with deploy/install.sh (needs the network)
#   BOOT_DIR/bab/bab-firstboot.service    the stage-2 unit
#   BOOT_DIR/bab.yaml                     from --config (else copy your own there later)
#   BOOT_DIR/bab-keys/                    the files of --keys DIR (moved to /etc/bab/keys on first boot)
# and appends to BOOT_DIR/cmdline.txt (one line; re-running does not add twice):
#   systemd.run=/boot/firmware/bab-firstboot.sh systemd.run_success_action=reboot systemd.unit=kernel-command-line.target
# If Raspberry Pi Imager's OS customisation wrote firstrun.sh, its systemd.run= parameter is replaced by
# ours and the hook runs firstrun.sh for it (a kernel command line can only carry one systemd.run=).
# --no-cmdline leaves cmdline.txt alone (e.g. when the image already has bab-firstboot.service enabled).
# --config is checked with `bab config check` from this checkout's .venv when there is one (--no-check: not).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
log() { printf '[prepare-boot] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ $# -ge 1 ] || { sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
BOOT="$1"; shift
CONFIG=""
KEYS=""
BUNDLE=""
CMDLINE=1
CHECK=1
while [ $# -gt 0 ]; do
    case "$1" in
        --config) CONFIG="$2"; shift ;;
        --bundle) BUNDLE="$2"; shift ;;
        --keys) KEYS="$2"; shift ;;
        --no-cmdline) CMDLINE=0 ;;
        --no-check) CHECK=0 ;;
        *) die "unknown option $1" ;;
    esac
    shift
done
[ -d "$BOOT" ] || die "$BOOT is not a directory (mount the SD card's boot partition)"
if [ "$CMDLINE" = 1 ] && [ ! -f "$BOOT/cmdline.txt" ]; then
    die "$BOOT/cmdline.txt not found: is this the boot partition of Raspberry Pi OS?"
fi

mkdir -p "$BOOT/bab"
cp "$here/deploy/firstboot/bab-firstboot.sh" "$BOOT/bab-firstboot.sh"
cp "$here/deploy/firstboot/bab-firstboot.service" "$BOOT/bab/bab-firstboot.service"
if [ -n "$BUNDLE" ]; then
    [ -f "$BUNDLE" ] || die "no such bundle: $BUNDLE"
    tar -tf "$BUNDLE" bab-bundle/install-offline.sh >/dev/null 2>&1 || die "$BUNDLE is not a BAB bundle"
    cp "$BUNDLE" "$BOOT/bab-bundle.tar.tmp" && mv -f "$BOOT/bab-bundle.tar.tmp" "$BOOT/bab-bundle.tar"
    rm -f "$BOOT/bab/bab-src.tar.gz"
    log "hook and offline bundle ($(tar -xOf "$BUNDLE" bab-bundle/ARCH)) written to $BOOT"
else
    tar -czf "$BOOT/bab/bab-src.tar.gz.tmp" -C "$here" \
        --exclude=./.git --exclude=./.venv --exclude='__pycache__' --exclude='*.pyc' --exclude=./.pytest_cache \
        --exclude=./.ruff_cache --exclude=./.hypothesis --exclude='*.egg-info' --exclude=./build --exclude=./dist .
    mv -f "$BOOT/bab/bab-src.tar.gz.tmp" "$BOOT/bab/bab-src.tar.gz"
    log "hook and BAB source written to $BOOT"
fi

if [ -n "$CONFIG" ]; then
    [ -f "$CONFIG" ] || die "no such config file: $CONFIG"
    if [ "$CHECK" = 1 ] && "$here/.venv/bin/python" -c 'import bab.cli' 2>/dev/null; then
        "$here/.venv/bin/bab" config check "$CONFIG" || die "$CONFIG does not pass 'bab config check' (--no-check skips this)"
    fi
    cp "$CONFIG" "$BOOT/bab.yaml"
    log "config: $CONFIG -> $BOOT/bab.yaml"
fi
if [ -n "$KEYS" ]; then
    [ -d "$KEYS" ] || die "no such directory: $KEYS"
    mkdir -p "$BOOT/bab-keys"
    cp "$KEYS"/* "$BOOT/bab-keys/"
    log "keys: $(cd "$KEYS" && printf '%s ' *)-> $BOOT/bab-keys/"
fi

if [ "$CMDLINE" = 1 ]; then
    f="$BOOT/cmdline.txt"
    line=$(head -n 1 "$f")
    kept=$(printf '%s\n' "$line" | tr ' ' '\n' | grep -v -E '^(systemd\.run=.*|systemd\.run_(success|failure)_action=.*|systemd\.unit=kernel-command-line\.target)$' | grep -v '^$' | tr '\n' ' ' || true)
    new="${kept% } systemd.run=/boot/firmware/bab-firstboot.sh systemd.run_success_action=reboot systemd.unit=kernel-command-line.target"
    printf '%s\n' "$new" >"$f.tmp" && mv -f "$f.tmp" "$f"
    log "cmdline.txt: first-boot hook armed"
fi
sync
log "done: put the card into the Pi and power it on; the log appears as bab-firstboot.log on this partition"
