#!/usr/bin/env bash
# Installs (or upgrades, or removes) BAB as a system service on Raspberry Pi OS / Debian 12 (bookworm).
#
#   sudo deploy/install.sh                 install or upgrade from this checkout (re-run = upgrade)
#   sudo deploy/install.sh --enable        ... and enable + (re)start bab.service
#   sudo deploy/install.sh --uninstall     remove BAB; keep /etc/bab (config, keys) and /var/lib/bab (state)
#   sudo deploy/install.sh --uninstall --purge   ... and remove config, state and the user `bab` too
#
# Options:
#   --root DIR     install into DIR as the file system root (image building, tests). Implies --no-system
#                  and --no-venv: nothing outside DIR is touched. DESTDIR=DIR in the environment is the same.
#   --no-system    do not run apt-get, groupadd/useradd/usermod, chown, systemctl or udevadm; print them
#   --no-venv      do not create/update the virtualenv /opt/bab (print it)
#   --enable       enable bab.service and (re)start it (refused while /etc/bab/bab.yaml is still the example)
#   --source DIR   the BAB checkout to install (default: the one this script is in)
#   -n, --dry-run  same as --no-system --no-venv, and prints what it would do (files are still written
#                  under --root only; without --root nothing is written)
#
# What it installs (paths under the root):
#   apt packages      python3 python3-venv python3-dev gcc libffi-dev libwolfssl-dev gpiod
#   user/groups       system user `bab` (groups dialout, gpio); group gpio is created if missing
#   /opt/bab/         virtualenv with BAB pip-installed from the checkout; /opt/bab/bin/bab
#   /usr/local/bin/bab   symlink to /opt/bab/bin/bab
#   /opt/bab/share/   bab.example.yaml, operator-guide.md, HARDWARE.md (replaced on upgrade)
#   /etc/bab/         0750 root:bab; bab.yaml (0640) from the example, NEVER overwritten once there
#   /etc/bab/keys/    if present (first-boot key files): made 0700 bab:bab, files 0600
#   /var/lib/bab/     0700 bab:bab (state)
#   /etc/systemd/system/bab.service, /etc/udev/rules.d/99-bab.rules,
#   /etc/modules-load.d/bab.conf (usbserial, cdc_acm: see the file)   (0644, replaced on upgrade)
# then systemctl daemon-reload, udevadm control --reload, udevadm trigger (only when systemd is running:
# inside a chroot/image build, `systemctl enable` still works, the rest is skipped).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SRC="$here"
ROOT="${DESTDIR:-}"
SYSTEM=1
VENV=1
ENABLE=0
UNINSTALL=0
PURGE=0
DRY=0

# gcc + python3-dev: the cffi wolfSSL binding and the gpiod (libgpiod v2) wheel are compiled on the Pi;
# libffi-dev: cffi itself has no wheel for 32-bit ARM (armv7l) and compiles against ffi.h there;
# gpiod: gpioinfo/gpiomon for finding S0 lines.
APT_PACKAGES=(python3 python3-venv python3-dev gcc libffi-dev libwolfssl-dev gpiod)
USER_NAME=bab
USER_GROUPS=(dialout gpio)

log() { printf '[install] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# usage [STATUS]: the header above as help; to stdout with status 0 (a help request), else to stderr.
usage() {
    local status="${1:-2}"
    if [ "$status" = 0 ]; then sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    else sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    fi
    exit "$status"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --root) [ $# -ge 2 ] || usage; ROOT="$2"; shift ;;
        --root=*) ROOT="${1#--root=}" ;;
        --no-system) SYSTEM=0 ;;
        --no-venv) VENV=0 ;;
        --enable) ENABLE=1 ;;
        --uninstall) UNINSTALL=1 ;;
        --purge) PURGE=1 ;;
        --source) [ $# -ge 2 ] || usage; SRC="$2"; shift ;;
        -n|--dry-run) DRY=1; SYSTEM=0; VENV=0 ;;
        -h|--help) usage 0 ;;
        *) log "unknown option: $1"; usage ;;
    esac
    shift
done

ROOT="${ROOT%/}"
if [ -n "$ROOT" ]; then
    mkdir -p "$ROOT"
    ROOT=$(cd "$ROOT" && pwd)
    [ "$ROOT" = / ] && ROOT=""
fi
if [ -n "$ROOT" ]; then SYSTEM=0; VENV=0; fi
[ "$PURGE" = 1 ] && [ "$UNINSTALL" = 0 ] && die "--purge goes with --uninstall"
if [ "$SYSTEM" = 1 ] && [ "$(id -u)" != 0 ]; then die "run as root (sudo $0 $*), or use --root DIR / --no-system"; fi
if [ "$DRY" = 1 ] && [ -z "$ROOT" ]; then
    log "dry run: nothing is written"
fi

# Paths on the target system (without the root prefix) ------------------------------------------------
OPT=/opt/bab
ETC=/etc/bab
STATE=/var/lib/bab
UNIT=/etc/systemd/system/bab.service
FIRSTBOOT_UNIT=/etc/systemd/system/bab-firstboot.service
UDEV_RULE=/etc/udev/rules.d/99-bab.rules
MODULES_CONF=/etc/modules-load.d/bab.conf
CLI_LINK=/usr/local/bin/bab
CONFIG=$ETC/bab.yaml
EXAMPLE=$OPT/share/bab.example.yaml

# Helpers -----------------------------------------------------------------------------------------------
# sys CMD...: a system step (package manager, users, ownership, service manager): run it, or print it.
sys() {
    if [ "$SYSTEM" = 1 ]; then "$@"; else log "skipped (no system steps): $*"; fi
}
# fs CMD...: a file step under the root: run it unless this is a dry run without --root.
fs() {
    if [ "$DRY" = 1 ] && [ -z "$ROOT" ]; then log "would run: $*"; else "$@"; fi
}
systemd_running() { [ "$SYSTEM" = 1 ] && [ -d /run/systemd/system ]; }
# live CMD...: a step that needs the running service manager / udev daemon (reload, restart, trigger):
# run it when systemd runs; skip it in a chroot or image build; print it with --no-system.
live() {
    if systemd_running; then "$@"
    elif [ "$SYSTEM" = 1 ]; then log "systemd is not running (chroot/image build): skipped $*"
    else sys "$@"
    fi
}
# put MODE SRC DST: replace DST (under the root) atomically with SRC.
put() {
    local mode="$1" src="$2" dst="$ROOT$3"
    [ -f "$src" ] || die "missing file in the checkout: $src"
    fs mkdir -p "$(dirname "$dst")"
    fs install -m "$mode" "$src" "$dst.tmp.$$"
    fs mv -f "$dst.tmp.$$" "$dst"
}
mkdir_mode() {  # mkdir_mode MODE DIR: create DIR under the root and (re)set its mode
    fs mkdir -p "$ROOT$2"
    fs chmod "$1" "$ROOT$2"
}

install_apt_packages() {
    if [ "$SYSTEM" = 0 ]; then sys apt-get install -y "${APT_PACKAGES[@]}"; return; fi
    local missing=() p
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && { log "apt packages present"; return; }
    log "installing apt packages: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

create_user() {
    local g
    for g in "${USER_GROUPS[@]}"; do
        if [ "$SYSTEM" = 0 ] || ! getent group "$g" >/dev/null; then sys groupadd --system "$g"; fi
    done
    if [ "$SYSTEM" = 0 ] || ! getent passwd "$USER_NAME" >/dev/null; then
        sys useradd --system --user-group --home-dir "$STATE" --no-create-home \
            --shell /usr/sbin/nologin --comment "BAB meter adapter" "$USER_NAME"
    fi
    sys usermod -a -G "$(IFS=,; echo "${USER_GROUPS[*]}")" "$USER_NAME"
}

python_bin() {
    local py
    for py in /usr/bin/python3 python3; do
        if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import sys, venv, ensurepip; assert sys.version_info >= (3, 11)' 2>/dev/null; then
            echo "$py"; return 0
        fi
    done
    die "need Python >= 3.11 with venv (apt-get install python3-venv)"
}

install_venv() {
    if [ "$VENV" = 0 ]; then
        log "skipped (no venv): python3 -m venv $OPT && $OPT/bin/pip install --upgrade $SRC"
        return
    fi
    if [ ! -x "$OPT/bin/python" ]; then
        log "creating virtualenv $OPT"
        "$(python_bin)" -m venv "$OPT"
    fi
    log "installing BAB from $SRC into $OPT (a local directory is always rebuilt and reinstalled)"
    "$OPT/bin/python" -m pip install -q --upgrade pip
    "$OPT/bin/python" -m pip install -q --upgrade "$SRC"
    # pip compiled the wolfSSL binding as part of the package build (it fails naming libwolfssl-dev if it
    # cannot); check that it loads, as `bab run` refuses to start without it.
    "$OPT/bin/python" -c 'from bab.tls import wolfssl_binding as w; w.require()' \
        || die "BAB's wolfSSL binding does not load (see above)"
}

restart_service() {
    # A service that does not come up (adapter unplugged, ...) is not an installation failure: systemd keeps
    # restarting it (Restart=on-failure), and the operator sees why in `systemctl status bab`.
    if ! systemd_running; then live systemctl restart bab.service; return; fi
    systemctl restart bab.service || log "warning: bab.service did not start yet; see: journalctl -u bab -e"
}

config_is_example() {
    [ -f "$ROOT$CONFIG" ] && [ -f "$SRC/deploy/bab.example.yaml" ] && cmp -s "$ROOT$CONFIG" "$SRC/deploy/bab.example.yaml"
}

do_install() {
    if [ ! -f "$SRC/pyproject.toml" ] || [ ! -d "$SRC/bab" ]; then
        die "$SRC is not a BAB checkout (use --source DIR)"
    fi
    log "installing BAB from $SRC into ${ROOT:-/}"
    install_apt_packages
    create_user

    # /opt/bab: virtualenv and shared files
    mkdir_mode 0755 "$OPT"
    install_venv
    put 0644 "$SRC/deploy/bab.example.yaml" "$EXAMPLE"
    local doc
    for doc in docs/operator-guide.md deploy/HARDWARE.md; do
        [ -f "$SRC/$doc" ] && put 0644 "$SRC/$doc" "$OPT/share/doc/$(basename "$doc")"
    done

    # /etc/bab: the configuration, never overwritten
    mkdir_mode 0750 "$ETC"
    sys chown root:"$USER_NAME" "$ETC"
    if [ -e "$ROOT$CONFIG" ]; then
        log "keeping existing $CONFIG"
    else
        log "creating $CONFIG from the example: edit it (meters, port), then: systemctl enable --now bab"
        put 0640 "$SRC/deploy/bab.example.yaml" "$CONFIG"
    fi
    # The only working permissions: readable by the service's group, not by others (e.g. after first boot
    # copied it as root:root, or an editor changed the mode).
    fs chmod 0640 "$ROOT$CONFIG"
    sys chown root:"$USER_NAME" "$CONFIG"
    if [ -d "$ROOT$ETC/keys" ]; then
        fs chmod 0700 "$ROOT$ETC/keys"
        fs find "$ROOT$ETC/keys" -type f -exec chmod 0600 {} +
        sys chown -R "$USER_NAME:$USER_NAME" "$ETC/keys"
    fi

    # /var/lib/bab: state (systemd's StateDirectory= would create it too; here it exists before first start)
    mkdir_mode 0700 "$STATE"
    sys chown "$USER_NAME:$USER_NAME" "$STATE"

    # `bab` on the PATH of the operator (bab status, bab keys, bab config check)
    fs mkdir -p "$ROOT/usr/local/bin"
    fs ln -sfn "$OPT/bin/bab" "$ROOT$CLI_LINK"

    put 0644 "$SRC/systemd/bab.service" "$UNIT"
    put 0644 "$SRC/deploy/udev/99-bab.rules" "$UDEV_RULE"
    put 0644 "$SRC/deploy/modules-load/bab.conf" "$MODULES_CONF"

    if [ "$SYSTEM" = 1 ]; then
        modprobe -a usbserial cdc_acm 2>/dev/null || log "note: usbserial/cdc_acm not loaded now (loaded at boot)"
    else
        sys modprobe -a usbserial cdc_acm
    fi
    live systemctl daemon-reload
    live udevadm control --reload
    if systemd_running; then
        udevadm trigger --action=change --subsystem-match=tty --subsystem-match=gpio || true
    else
        live udevadm trigger --action=change --subsystem-match=tty --subsystem-match=gpio
    fi

    if [ "$VENV" = 1 ] && [ -x "$OPT/bin/bab" ]; then
        "$OPT/bin/bab" config check "$CONFIG" || log "warning: $CONFIG does not pass 'bab config check'"
    fi

    if [ "$ENABLE" = 1 ]; then
        if config_is_example; then
            log "NOT enabling bab.service: $CONFIG is still the unedited example (it would present a"
            log "simulated meter to the gateway). Edit it, then: systemctl enable --now bab"
        else
            sys systemctl enable bab.service
            restart_service
            log "bab.service enabled; check with: bab status   (or: systemctl status bab)"
        fi
    elif systemd_running && systemctl is-active --quiet bab.service; then
        log "restarting the running bab.service (upgrade)"
        restart_service
    fi
    log "done"
}

do_uninstall() {
    log "uninstalling BAB from ${ROOT:-/}$([ "$PURGE" = 1 ] && echo ' (purge: config and state too)')"
    local unit
    for unit in bab.service bab-firstboot.service; do
        if [ "$SYSTEM" = 0 ]; then
            sys systemctl disable --now "$unit"
        elif [ -e "$ROOT/etc/systemd/system/$unit" ]; then
            # without a running systemd (chroot), `disable` still removes the symlinks; `--now` needs systemd
            if systemd_running; then systemctl disable --now "$unit" || true; else systemctl disable "$unit" 2>/dev/null || true; fi
        fi
    done
    fs rm -f "$ROOT$UNIT" "$ROOT$FIRSTBOOT_UNIT" "$ROOT$UDEV_RULE" "$ROOT$CLI_LINK" "$ROOT$MODULES_CONF" \
        "$ROOT/etc/systemd/system/multi-user.target.wants/bab.service" \
        "$ROOT/etc/systemd/system/multi-user.target.wants/bab-firstboot.service"
    fs rm -rf "$ROOT$OPT" "$ROOT/usr/local/lib/bab-firstboot"
    live systemctl daemon-reload
    live udevadm control --reload
    if [ "$PURGE" = 1 ]; then
        fs rm -rf "$ROOT$ETC" "$ROOT$STATE" "$ROOT/var/lib/bab-firstboot"
        if [ "$SYSTEM" = 0 ] || getent passwd "$USER_NAME" >/dev/null; then sys userdel "$USER_NAME"; fi
        log "removed config ($ETC), state ($STATE) and user $USER_NAME"
    else
        log "kept config ($ETC) and state ($STATE); --purge removes them"
    fi
    log "done"
}

if [ "$UNINSTALL" = 1 ]; then do_uninstall; else do_install; fi
