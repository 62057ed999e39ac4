#!/usr/bin/env bash
# Builds BAB's Debian package for Raspberry Pi OS / Debian 12 (bookworm), on any Debian bookworm machine.
#
#   deploy/build-deb.sh [--arch amd64|arm64|armhf] [--out DIR] [--cache DIR]
#
# Output: DIR/bab_VERSION_ARCH.deb (default DIR: dist/). Its dependencies are Debian's own packages
# (python3-serial, python3-yaml, python3-pyudev, python3-cryptography, python3-cffi-backend, libwolfssl35);
# what it installs: /usr/bin/bab, BAB's Python packages in /usr/lib/python3/dist-packages, the wolfSSL binding
# compiled for ARCH, /lib/systemd/system/bab.service, /lib/udev/rules.d/99-bab.rules,
# /usr/lib/modules-load.d/bab.conf, /usr/share/bab/bab.example.yaml, /usr/share/doc/bab/. Its postinst
# creates the user bab, /etc/bab/bab.yaml from the example (never overwritten), /var/lib/bab (0700), and
# enables + starts bab.service once the configuration is not the example (see deploy/debian/).
#
# How: BAB is built as a pure-Python wheel (BAB_WITHOUT_TLS=1, with this checkout's .venv or $PYTHON), and the
# cffi binding's C source is compiled for ARCH with Debian's cross compiler (gcc-aarch64-linux-gnu,
# gcc-arm-linux-gnueabihf; gcc for the host's own architecture) against ARCH's wolfSSL and Python headers,
# downloaded with apt for ARCH into --cache (no change to the host's dpkg architectures). The module uses
# Python's stable ABI (*.abi3.so). Needs: dpkg-deb, apt-get, the cross compiler (apt packages listed below,
# installed when missing).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=debian/apt-foreign.sh disable=SC1091
. "$here/deploy/debian/apt-foreign.sh"

ARCH=$(dpkg --print-architecture)
OUT="$here/dist"
CACHE="${BAB_PKG_CACHE:-$here/build/deb-cache}"
PYTHON="${PYTHON:-$here/.venv/bin/python}"

log() { printf '[build-deb] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }

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

case "$ARCH" in
    amd64) TRIPLET=x86_64-linux-gnu ;;
    arm64) TRIPLET=aarch64-linux-gnu ;;
    armhf) TRIPLET=arm-linux-gnueabihf ;;
    *) die "unsupported architecture $ARCH (amd64, arm64, armhf)" ;;
esac
if [ "$ARCH" = "$(dpkg --print-architecture)" ]; then CC_PKG=(gcc libc6-dev); else CC_PKG=("gcc-$TRIPLET" "libc6-dev-$ARCH-cross"); fi
CC="$TRIPLET-gcc"
APT_PACKAGES=("${CC_PKG[@]}")

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing build tools: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v "$CC" >/dev/null || die "no $CC"
[ -x "$PYTHON" ] || PYTHON=python3
"$PYTHON" -c 'import setuptools, wheel, cffi' 2>/dev/null || die "$PYTHON needs setuptools, wheel and cffi (deploy/setup.sh env)"

VERSION=$("$PYTHON" -c 'import tomllib; print(tomllib.load(open("'"$here"'/pyproject.toml", "rb"))["project"]["version"])')
mkdir -p "$OUT" "$CACHE"
OUT=$(cd "$OUT" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/bab-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
pkg="$work/pkg"
site="$pkg/usr/lib/python3/dist-packages"

# 1. BAB's Python code and its metadata (entry points: the driver plugins) from a pure-Python wheel.
log "building the wheel (pure Python) of BAB $VERSION"
src="$work/src"
mkdir -p "$src"
tar -C "$here" --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./dist --exclude='*.egg-info' \
    --exclude='__pycache__' --exclude='*.so' --exclude=./tests --exclude=./bench -cf - . | tar -C "$src" -xf -
BAB_WITHOUT_TLS=1 "$PYTHON" -m pip wheel -q --no-deps --no-build-isolation --no-index -w "$work/wheel" "$src" \
    >"$work/wheel.log" 2>&1 || { cat "$work/wheel.log" >&2; die "wheel build failed"; }
mkdir -p "$site"
"$PYTHON" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$work"/wheel/bab-*.whl "$site"
rm -f "$site"/bab-*.dist-info/RECORD
printf 'debian\n' >"$site/bab-$VERSION.dist-info/INSTALLER"

# 2. The wolfSSL binding for ARCH, against ARCH's headers (Debian's libwolfssl-dev, libpython3.11-dev). For the
#    host's own architecture with libwolfssl-dev installed, the installed headers are used (no download).
"$PYTHON" - "$work/_wolfssl_cffi.c" >/dev/null <<PY
import sys
sys.path.insert(0, "$here")
from bab.tls.build_wolfssl import make_ffi
make_ffi().emit_c_code(sys.argv[1])  # prints "generating ..." on stdout
PY
if [ "$ARCH" = "$(dpkg --print-architecture)" ] && [ -f /usr/include/wolfssl/options.h ] && [ -z "${BAB_DEB_SYSROOT:-}" ]; then
    pyinc=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
    cflags=(-I"$pyinc")
    ldflags=()
else
    log "fetching $ARCH headers (libwolfssl-dev, libpython3.11-dev) into $CACHE/apt-$ARCH"
    foreign_apt_init "$ARCH" "$CACHE/apt-$ARCH"
    sysroot="$CACHE/sysroot-$ARCH"
    if [ ! -f "$sysroot/.complete" ]; then
        rm -rf "$sysroot" "$work/debs"
        mkdir -p "$sysroot" "$work/debs"
        (cd "$work/debs" && foreign_apt download -qq libwolfssl-dev libwolfssl35 libpython3.11-dev)
        for d in "$work"/debs/*.deb; do dpkg-deb -x "$d" "$sysroot"; done
        touch "$sysroot/.complete"
    fi
    cflags=(-I"$sysroot/usr/include" -I"$sysroot/usr/include/python3.11" -I"$sysroot/usr/include/$TRIPLET/python3.11")
    ldflags=(-L"$sysroot/usr/lib/$TRIPLET")
fi
log "compiling the wolfSSL binding with $CC"
"$CC" -shared -fPIC -O2 -g0 "${cflags[@]}" "${ldflags[@]}" -o "$site/bab/tls/_wolfssl_cffi.abi3.so" \
    "$work/_wolfssl_cffi.c" -lwolfssl
"$TRIPLET-strip" --strip-unneeded "$site/bab/tls/_wolfssl_cffi.abi3.so" 2>/dev/null || true
chmod 0644 "$site/bab/tls/_wolfssl_cffi.abi3.so"

# 3. The command, the unit, udev rules, modules, example config, docs.
install -d "$pkg/usr/bin"
cat >"$pkg/usr/bin/bab" <<'PY'
#!/usr/bin/python3
import sys

from bab.cli import main

sys.exit(main())
PY
chmod 0755 "$pkg/usr/bin/bab"
install -d "$pkg/lib/systemd/system" "$pkg/lib/udev/rules.d" "$pkg/usr/lib/modules-load.d" "$pkg/usr/share/bab" \
    "$pkg/usr/share/doc/bab"
sed -e 's|^ExecStart=/opt/bab/bin/bab |ExecStart=/usr/bin/bab |' \
    -e 's|^Documentation=file:/opt/bab/share/doc/|Documentation=file:/usr/share/doc/bab/|' \
    -e 's|^# Installed by deploy/install.sh .*|# Installed by the Debian package bab (updates replace it).|' \
    "$here/systemd/bab.service" >"$pkg/lib/systemd/system/bab.service"
grep -q '^ExecStart=/usr/bin/bab run' "$pkg/lib/systemd/system/bab.service" || die "unit: ExecStart not rewritten"
install -m 0644 "$here/deploy/udev/99-bab.rules" "$pkg/lib/udev/rules.d/99-bab.rules"
install -m 0644 "$here/deploy/modules-load/bab.conf" "$pkg/usr/lib/modules-load.d/bab.conf"
install -m 0644 "$here/deploy/bab.example.yaml" "$pkg/usr/share/bab/bab.example.yaml"
install -m 0644 "$here/docs/operator-guide.md" "$here/deploy/HARDWARE.md" "$here/docs/installing.md" "$pkg/usr/share/doc/bab/"
{ echo "BAB $VERSION. Copyright: the BAB developers. License: GPL-3.0-or-later,"
  echo "see /usr/share/common-licenses/GPL-3."; } >"$pkg/usr/share/doc/bab/copyright"

# 4. Control data and the package.
install -d "$pkg/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$size/" "$here/deploy/debian/control.in" \
    >"$pkg/DEBIAN/control"
install -m 0755 "$here/deploy/debian/postinst" "$here/deploy/debian/prerm" "$here/deploy/debian/postrm" "$pkg/DEBIAN/"
find "$pkg" -type d -exec chmod 0755 {} +
deb="$OUT/bab_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null
log "built $deb ($(du -k "$deb" | cut -f1) KiB)"
echo "$deb"
