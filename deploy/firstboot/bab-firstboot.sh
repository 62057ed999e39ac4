#!/bin/bash
# shellcheck disable=SC2015  # `a && b || fail ...` is meant: fail when any step of the chain fails
# BAB "flash and go" first-boot hook for Raspberry Pi OS Lite (bookworm). See docs/operator-guide.md.
#
# It lives on the boot partition (/boot/firmware/bab-firstboot.sh) next to:
#   bab-bundle.tar              the offline bundle (deploy/build-bundle.sh): BAB's Debian package and every
#                               package it needs; installed with NO network (the meter cabinet). Or else:
#   bab/bab-src.tar.gz          the BAB source (made by deploy/firstboot/prepare-boot.sh), installed with
#                               deploy/install.sh (needs the network: apt and PyPI)
#   bab/bab-firstboot.service   the stage-2 unit
#   bab.yaml                    YOUR configuration (optional; without it BAB is installed but not started)
#   bab-keys/                   optional key/certificate files: moved to /etc/bab/keys (0600, user bab)
#                               and removed from the boot partition
# and logs what it does to /boot/firmware/bab-firstboot.log.
#
# Stage 1 (no argument): run once, early, by the kernel command line
#     systemd.run=/boot/firmware/bab-firstboot.sh systemd.run_success_action=reboot systemd.unit=kernel-command-line.target
#   (the mechanism Raspberry Pi Imager's firstrun.sh uses). No network here, so it only removes those
#   parameters from cmdline.txt (first, so a failure can never loop), installs and enables
#   bab-firstboot.service, runs an Imager-written firstrun.sh if there is one, and exits; systemd reboots.
# Stage 2 (`install`): run by bab-firstboot.service on the next boots, after network-online.target, until
#   it succeeds once: installs BAB with deploy/install.sh --enable, then writes the marker
#   /var/lib/bab-firstboot/done and disables itself. Re-running is safe (marker; install.sh is idempotent).
#   To run it again: sudo rm /var/lib/bab-firstboot/done && sudo /usr/local/lib/bab-firstboot/bab-firstboot.sh install
#
# For tests: BAB_FIRSTBOOT_ROOT=DIR prefixes every path (then no system command runs for real: they are
# logged, and install.sh gets --root DIR); BAB_FIRSTBOOT_BOOT overrides the boot partition's path;
# BAB_FIRSTBOOT_INSTALL_ARGS adds install.sh options.
set -uo pipefail

ROOT="${BAB_FIRSTBOOT_ROOT:-}"
ROOT="${ROOT%/}"
if [ -n "${BAB_FIRSTBOOT_BOOT:-}" ]; then BOOT="$BAB_FIRSTBOOT_BOOT"
elif [ -d "$ROOT/boot/firmware" ]; then BOOT="$ROOT/boot/firmware"
else BOOT="$ROOT/boot"
fi
LOG="$BOOT/bab-firstboot.log"
LIB=/usr/local/lib/bab-firstboot
UNIT=/etc/systemd/system/bab-firstboot.service
WANTS=/etc/systemd/system/multi-user.target.wants/bab-firstboot.service
MARKER=/var/lib/bab-firstboot/done
SYSTEM=1
[ -n "$ROOT" ] && SYSTEM=0

# Everything goes to the log on the boot partition; our own messages also to the original stdout (the
# journal and console under systemd), through fd 3.
exec 3>&1 >>"$LOG" 2>&1
log() {
    local line
    line="$(date -u '+%Y-%m-%dT%H:%M:%SZ') bab-firstboot: $*"
    printf '%s\n' "$line"
    printf '%s\n' "$line" >&3 2>/dev/null || true
}
sys() { if [ "$SYSTEM" = 1 ]; then "$@"; else log "(test root: not running) $*"; fi; }
fail() { log "FAILED: $*"; log "BAB is not installed yet; this is retried on the next boot."; sync; exit 1; }

clean_cmdline() {
    local f="$BOOT/cmdline.txt"
    [ -f "$f" ] || { log "no $f"; return 0; }
    # Drop our (and an Imager firstrun's) one-shot parameters; keep everything else on the one line.
    local line new
    line=$(head -n 1 "$f")
    new=$(printf '%s\n' "$line" | tr ' ' '\n' | grep -v -E '^(systemd\.run=.*|systemd\.run_(success|failure)_action=.*|systemd\.unit=kernel-command-line\.target)$' | grep -v '^$' | tr '\n' ' ')
    new="${new% }"
    if [ "$new" != "$line" ]; then
        printf '%s\n' "$new" >"$f.bab-tmp" && mv -f "$f.bab-tmp" "$f" || return 1
        log "removed the first-boot parameters from cmdline.txt"
    fi
}

stage1() {
    log "stage 1 (early boot): preparing the BAB installation"
    clean_cmdline || log "warning: could not edit cmdline.txt"
    local self="$BOOT/bab-firstboot.sh"
    [ -f "$self" ] || self="$0"
    mkdir -p "$ROOT$LIB" "$ROOT/etc/systemd/system/multi-user.target.wants" \
        && install -m 0755 "$self" "$ROOT$LIB/bab-firstboot.sh" \
        && install -m 0644 "$BOOT/bab/bab-firstboot.service" "$ROOT$UNIT" \
        && ln -sfn "$UNIT" "$ROOT$WANTS" \
        && log "installed and enabled bab-firstboot.service; it runs after the reboot, once the network is up" \
        || log "ERROR: could not install bab-firstboot.service (is bab/ complete on the boot partition?)"
    if [ -f "$BOOT/firstrun.sh" ]; then
        log "running Raspberry Pi Imager's firstrun.sh (user, network, ssh settings)"
        bash "$BOOT/firstrun.sh" || log "warning: firstrun.sh exited with $?"
        rm -f "$BOOT/firstrun.sh"
    fi
    sync
    log "stage 1 done; rebooting"
    exit 0
}

wait_for_clock() {
    # apt rejects repository data "not valid yet" while the Pi (no RTC) still has the image's date.
    [ "$SYSTEM" = 1 ] && [ -d /run/systemd/system ] || return 0
    command -v timedatectl >/dev/null || return 0
    local _
    for _ in $(seq 1 60); do
        [ "$(timedatectl show -p NTPSynchronized --value 2>/dev/null)" = yes ] && return 0
        sleep 2
    done
    log "warning: the clock is not NTP-synchronised after 120 s; going on"
}

install_keys() {
    local src="$BOOT/bab-keys" dst="$ROOT/etc/bab/keys" f name
    [ -d "$src" ] || return 0
    mkdir -p "$dst" && chmod 0700 "$dst" || return 1
    for f in "$src"/*; do
        [ -f "$f" ] || continue
        name=$(basename "$f")
        install -m 0600 "$f" "$dst/$name.tmp" && mv -f "$dst/$name.tmp" "$dst/$name" || return 1
        log "key file $name -> /etc/bab/keys/$name (0600)"
    done
    # Secrets do not stay on the (FAT, world-readable, removable) boot partition.
    for f in "$src"/*; do
        [ -f "$f" ] || continue
        if command -v shred >/dev/null; then shred -u "$f"; else rm -f "$f"; fi
    done
    rmdir "$src" 2>/dev/null || log "warning: $src is not empty (subdirectories are not copied)"
}

stage2() {
    log "stage 2: installing BAB"
    if [ -e "$ROOT$MARKER" ]; then
        log "already done ($MARKER exists); nothing to do"
        rm -f "$ROOT$WANTS"
        exit 0
    fi
    local bundle="$BOOT/bab-bundle.tar" src="$ROOT$LIB/src"
    # The offline bundle needs neither network nor a correct clock (a local, trusted repository).
    [ -f "$bundle" ] || wait_for_clock
    if [ -f "$bundle" ]; then
        :
    elif [ -f "$BOOT/bab/bab-src.tar.gz" ]; then
        rm -rf "$src.new" && mkdir -p "$src.new" \
            && tar -xzf "$BOOT/bab/bab-src.tar.gz" -C "$src.new" --no-same-owner \
            || fail "cannot unpack $BOOT/bab/bab-src.tar.gz"
        rm -rf "$src" && mv "$src.new" "$src" || fail "cannot move the BAB source into place"
        log "unpacked the BAB source to $LIB/src"
    fi
    [ -f "$bundle" ] || [ -x "$src/deploy/install.sh" ] \
        || fail "no BAB on the boot partition: neither bab-bundle.tar nor bab/bab-src.tar.gz"

    mkdir -p "$ROOT/etc/bab" || fail "cannot create /etc/bab"
    local started=1
    if [ -f "$BOOT/bab.yaml" ]; then
        if [ -f "$ROOT/etc/bab/bab.yaml" ] && ! cmp -s "$BOOT/bab.yaml" "$ROOT/etc/bab/bab.yaml"; then
            local bak
            bak="/etc/bab/bab.yaml.bak-$(date -u +%Y%m%dT%H%M%SZ)"
            cp -p "$ROOT/etc/bab/bab.yaml" "$ROOT$bak" && log "kept the previous config as $bak"
        fi
        install -m 0640 "$BOOT/bab.yaml" "$ROOT/etc/bab/bab.yaml.tmp" \
            && mv -f "$ROOT/etc/bab/bab.yaml.tmp" "$ROOT/etc/bab/bab.yaml" \
            || fail "cannot install bab.yaml"
        log "bab.yaml from the boot partition -> /etc/bab/bab.yaml"
    else
        log "no bab.yaml on the boot partition: BAB gets the example config and is NOT started"
        started=0
    fi
    install_keys || fail "cannot install the key files"

    if [ -f "$bundle" ]; then
        # The package's postinst enables and starts bab.service when /etc/bab/bab.yaml is a real configuration.
        local installer
        installer=$(mktemp -d) && tar -xf "$bundle" -C "$installer" bab-bundle/install-offline.sh \
            || fail "cannot read $bundle"
        log "installing from the offline bundle (no network needed): install-offline.sh $bundle"
        sys "$installer/bab-bundle/install-offline.sh" "$bundle" || fail "the offline installation failed (see above)"
        rm -rf "$installer"
    else
        local args extra
        read -r -a extra <<<"${BAB_FIRSTBOOT_INSTALL_ARGS:-}"
        args=(--enable "${extra[@]}")
        [ -n "$ROOT" ] && args+=(--root "$ROOT")
        log "running: deploy/install.sh ${args[*]}"
        "$src/deploy/install.sh" "${args[@]}" || fail "deploy/install.sh failed (see above)"
    fi

    if [ -f "$BOOT/bab.yaml" ]; then
        mv -f "$BOOT/bab.yaml" "$BOOT/bab.yaml.installed" \
            && log "renamed bab.yaml on the boot partition to bab.yaml.installed"
    fi
    mkdir -p "$(dirname "$ROOT$MARKER")" && date -u '+%Y-%m-%dT%H:%M:%SZ' >"$ROOT$MARKER" \
        || fail "cannot write $MARKER"
    rm -f "$ROOT$WANTS"
    sys systemctl disable bab-firstboot.service
    if [ "$started" = 1 ]; then
        sys systemctl --no-pager --lines=20 status bab.service
        log "SUCCESS: BAB installed and started (check: bab status)"
    else
        log "SUCCESS: BAB installed; put your config into /etc/bab/bab.yaml, then: systemctl enable --now bab"
    fi
    sync
}

case "${1:-stage1}" in
    stage1|early) stage1 ;;
    install|stage2) stage2 ;;
    *) log "usage: $0 [stage1|install]"; exit 2 ;;
esac
