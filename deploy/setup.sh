#!/usr/bin/env bash
# Sets up a development/run environment for BAB on Debian 12 / Raspberry Pi OS (bookworm) and runs it.
#
#   deploy/setup.sh demo [ARGS]   install what is needed, then run `bab demo` (adapter + software gateway)
#   deploy/setup.sh test [ARGS]   install what is needed, then run the whole test suite (pytest ARGS)
#   deploy/setup.sh env           install only; prints the virtualenv path
#
# Works from a clean clone, as root or as a user with sudo. Every system package BAB needs is listed in
# APT_PACKAGES below (the one place where apt packages are installed); a package is only installed when it is
# missing, so a re-run is fast. Python packages go into .venv/ inside the checkout.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
venv="${BAB_VENV:-$here/.venv}"

# System packages: python3 with venv (the runtime), a C compiler and headers (cffi binding to wolfSSL),
# libffi-dev (cffi has no wheel for 32-bit ARM, armv7l, and compiles against ffi.h there), libwolfssl-dev (TLS),
# systemd (systemd-analyze for the unit tests), udev, shellcheck (script tests),
# openssl (the `openssl s_client` tests through `bab bridge`; testssl.sh is optional, `pytest -m testssl`),
# chromium (the web console's browser tests drive it headless over its DevTools protocol; no chromedriver).
APT_PACKAGES=(python3 python3-venv python3-dev gcc libffi-dev libwolfssl-dev systemd udev shellcheck openssl chromium)

log() { printf '[setup] %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else log "need root for: $*  (run as root or install sudo)"; exit 1
    fi
}

install_apt_packages() {
    local missing=()
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        log "not a Debian system and missing: ${missing[*]}; install their equivalents by hand"
        return 0
    fi
    log "installing system packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

python_bin() {
    # Prefer the interpreter on PATH (it may be newer than Debian's), falling back to Debian's.
    for py in python3 /usr/bin/python3; do
        if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import sys, venv, ensurepip; assert sys.version_info >= (3, 11)' 2>/dev/null; then
            echo "$py"; return 0
        fi
    done
    log "need Python >= 3.11 with venv"; exit 1
}

make_venv() {
    local extras="$1"
    if [ ! -x "$venv/bin/python" ]; then
        log "creating virtualenv $venv"
        "$(python_bin)" -m venv "$venv"
    fi
    local stamp="$venv/.bab-installed-$extras"
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        log "installing BAB and its Python dependencies ($extras)"
        "$venv/bin/python" -m pip install -q --upgrade pip >/dev/null
        if [ "$extras" = test ]; then
            "$venv/bin/python" -m pip install -q -e ".[test]"
        else
            "$venv/bin/python" -m pip install -q -e ".[http]"
        fi
        touch "$stamp"
    fi
    # pip install compiles the wolfSSL binding (setup.py cffi_modules); this rebuilds it in place when the
    # binding's source changed since (it is a no-op otherwise). Without it BAB refuses to start.
    if [ -f bab/tls/build_wolfssl.py ]; then
        "$venv/bin/python" -m bab.tls.build_wolfssl >/dev/null || { log "error: the wolfSSL binding cannot be built"; exit 1; }
    fi
}

cmd="${1:-demo}"; shift || true
case "$cmd" in
    demo)
        install_apt_packages; make_venv run
        exec "$venv/bin/bab" demo "$@" ;;
    test)
        install_apt_packages; make_venv test
        exec "$venv/bin/python" -m pytest "$@" ;;
    env)
        install_apt_packages; make_venv test
        echo "$venv" ;;
    *)
        log "usage: deploy/setup.sh {demo|test|env} [ARGS]"; exit 2 ;;
esac
