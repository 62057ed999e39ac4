#!/usr/bin/env bash
# shellcheck disable=SC2016  # the single-quoted scripts are run by a shell inside the root
# Proves BAB's offline installation on ARM by emulation, and prints the figures (not part of the CI run).
#
#   bench/arm_emulation.sh [--arch armhf|arm64 ...] [--cache DIR] [--tests "tests/a.py tests/b.py"]
#                          [--demo-seconds N] [--no-tests] [--rebuild-bundle]
#
# Per architecture, one after the other (default: armhf, then arm64):
#   1. a Debian bookworm root for ARCH made with debootstrap (Priority required + important: the base that
#      Raspberry Pi OS Lite has too), second stage under qemu-user-static through binfmt_misc; cached in
#      --cache (default /work/bab-pkg-cache), copied afresh for every run;
#   2. the offline bundle (deploy/build-bundle.sh --arch ARCH) put on the root's boot partition
#      (/boot/firmware/bab-bundle.tar) next to a bab.yaml, and BAB's real first-boot hook run in the root
#      (stage 1, then stage 2) with networking OFF (a new network namespace with only loopback);
#   3. `bab demo` in the root (registration, SYM pairing, TLS reads), offline;
#   4. a named test subset from this checkout run against the installed package, with pytest, hypothesis and
#      pytest-asyncio from Debian installed offline from a second local repository;
# and prints: bundle size, debootstrap time, install time, demo result, test counts.
#
# The emulation runs under `nice -n 15` (the machine is shared). Needs root; apt packages (installed when
# missing): debootstrap qemu-user-static binfmt-support iproute2 dpkg-dev.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../deploy/debian/apt-foreign.sh disable=SC1091
. "$here/deploy/debian/apt-foreign.sh"

ARCHES=()
CACHE="${BAB_EMU_CACHE:-/work/bab-pkg-cache}"
TESTS="tests/test_sdnotify.py tests/test_gateway_readers.py tests/test_tls_handshake.py tests/test_tls_records.py
tests/test_tls_rejections.py tests/test_daemon.py tests/test_lmn_port_loss.py tests/test_e2e_processes.py"
DEMO_SECONDS=40
RUN_TESTS=1
REBUILD=0
NICE=(nice -n 15)
APT_PACKAGES=(debootstrap qemu-user-static binfmt-support iproute2 dpkg-dev)

log() { printf '[arm-emulation] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --arch) ARCHES+=("$2"); shift ;;
        --cache) CACHE="$2"; shift ;;
        --tests) TESTS="$2"; shift ;;
        --demo-seconds) DEMO_SECONDS="$2"; shift ;;
        --no-tests) RUN_TESTS=0 ;;
        --rebuild-bundle) REBUILD=1 ;;
        -h|--help) usage 0 ;;
        *) log "unknown option: $1"; usage 2 ;;
    esac
    shift
done
[ ${#ARCHES[@]} -gt 0 ] || ARCHES=(armhf arm64)
[ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot, namespaces)"
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)

ensure_tools() {
    local missing=() p
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing: ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    update-binfmts --enable qemu-arm >/dev/null 2>&1 || true
    update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
}

# The first Debian mirror of the host's apt sources (deb822 or one-line format).
mirror() {
    local m
    m=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    [ -n "$m" ] || m=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^(http|https|file):/) { print $i; exit } }' /etc/apt/sources.list 2>/dev/null || true)
    [ -n "$m" ] || die "no Debian mirror in the host's apt sources"
    echo "$m"
}

qemu_for() { case "$1" in armhf) echo qemu-arm ;; arm64) echo qemu-aarch64 ;; esac; }

base_root() {  # base_root ARCH: the cached debootstrap root (made once)
    local arch="$1" root start
    root="$CACHE/root-$arch"
    if [ -f "$root/.bab-debootstrap-seconds" ]; then echo "$root"; return; fi
    [ -e "/proc/sys/fs/binfmt_misc/$(qemu_for "$arch")" ] || die "binfmt_misc has no $(qemu_for "$arch") entry"
    log "$arch: debootstrap bookworm (emulated second stage; about 10-20 minutes)"
    rm -rf "$root.tmp"
    start=$(date +%s)
    "${NICE[@]}" debootstrap --arch="$arch" --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
        bookworm "$root.tmp" "$(mirror)" >"$CACHE/debootstrap-$arch.log" 2>&1 \
        || die "debootstrap failed: $CACHE/debootstrap-$arch.log"
    mv "$root.tmp" "$root"
    echo "$(( $(date +%s) - start ))" >"$root/.bab-debootstrap-seconds"
    echo "$root"
}

# in_root ROOT CMD...: run CMD in ROOT under emulation, with no network (new namespace, loopback only) and
# private mounts (proc, sys, dev) that vanish with the namespace.
in_root() {
    local root="$1"; shift
    "${NICE[@]}" unshare --mount --net --propagation private /bin/sh -c '
        root="$1"; shift
        mount -t proc proc "$root/proc" && mount --rbind /sys "$root/sys" && mount --rbind /dev "$root/dev" || exit 97
        ip link set lo up || exit 98
        exec chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
            TERM=dumb TZ=UTC "$@"' in_root "$root" "$@"
}

# test_repo ARCH ROOT: a flat apt repository with pytest, hypothesis, pytest-asyncio and what they need
# beyond ROOT (a second bundle, only for this proof).
test_repo() {
    local arch="$1" root="$2" repo pkgs
    repo="$CACHE/testdebs-$arch"
    if [ ! -f "$repo/Packages" ]; then
        rm -rf "$repo" && mkdir -p "$repo/debs"
        foreign_apt_init "$arch" "$CACHE/apt-$arch-emu" "$root/var/lib/dpkg/status"
        pkgs=$(foreign_apt install -s python3-pytest python3-pytest-asyncio python3-hypothesis 2>&1 | awk '/^Inst / { print $2 }')
        [ -n "$pkgs" ] || die "cannot resolve the test tools for $arch"
        # shellcheck disable=SC2086  # a list of package names
        (cd "$repo/debs" && foreign_apt download -qq $pkgs)
        (cd "$repo" && dpkg-scanpackages --multiversion debs /dev/null 2>/dev/null >Packages)
    fi
    echo "$repo"
}

declare -A FIG

run_arch() {
    local arch="$1" root work bundle start t
    log "=== $arch ==="
    bundle="$here/dist/bab-bundle-$arch.tar"
    if [ "$REBUILD" = 1 ] || [ ! -f "$bundle" ]; then
        "$here/deploy/build-bundle.sh" --arch "$arch" --cache "$CACHE/deb" >/dev/null
    fi
    FIG[$arch.bundle_kib]=$(du -k "$bundle" | cut -f1)
    FIG[$arch.bundle_pkgs]=$(tar -tf "$bundle" | grep -c '\.deb$')
    root=$(base_root "$arch")
    FIG[$arch.debootstrap_s]=$(cat "$root/.bab-debootstrap-seconds")

    work="$CACHE/run-$arch"
    log "$arch: fresh copy of the base root"
    rm -rf "$work" && cp -a "$root" "$work"
    local boot="$work/boot/firmware"
    mkdir -p "$boot/bab"
    echo "console=serial0,115200 root=PARTUUID=0 rootwait systemd.run=/boot/firmware/bab-firstboot.sh systemd.run_success_action=reboot systemd.unit=kernel-command-line.target" >"$boot/cmdline.txt"
    cp "$bundle" "$boot/bab-bundle.tar"
    cp "$here/deploy/firstboot/bab-firstboot.sh" "$boot/bab-firstboot.sh"
    cp "$here/deploy/firstboot/bab-firstboot.service" "$boot/bab/bab-firstboot.service"
    cat >"$boot/bab.yaml" <<'YAML'
lmn:
  port: /dev/bab-lmn
meters:
  - id: 1BAB0012345678
    driver: {type: simulated, advance: true}
YAML

    log "$arch: first boot, stage 1 + 2 (offline bundle, no network)"
    in_root "$work" /bin/bash /boot/firmware/bab-firstboot.sh >/dev/null 2>&1 || true
    start=$(date +%s.%N)
    if in_root "$work" /usr/local/lib/bab-firstboot/bab-firstboot.sh install >"$CACHE/install-$arch.log" 2>&1; then
        FIG[$arch.install]=ok
    else
        FIG[$arch.install]=FAILED
    fi
    t=$(echo "$(date +%s.%N) - $start" | bc)
    FIG[$arch.install_s]=$(printf '%.0f' "$t")
    cat "$boot/bab-firstboot.log" >>"$CACHE/install-$arch.log" 2>/dev/null || true
    FIG[$arch.installed]=$(in_root "$work" dpkg-query -W -f='${Version}' bab 2>/dev/null || echo none)
    FIG[$arch.enabled]=$(in_root "$work" systemctl is-enabled bab.service 2>/dev/null || true)
    FIG[$arch.pkgs_installed]=$(grep -c '^Unpacking ' "$CACHE/install-$arch.log" || true)
    FIG[$arch.user]=$(in_root "$work" id -nG bab 2>/dev/null | tr ' ' ',' || echo none)
    FIG[$arch.modes]=$(in_root "$work" stat -c '%a %U:%G' /etc/bab /etc/bab/bab.yaml /var/lib/bab 2>/dev/null | tr '\n' ';' || true)
    log "$arch: install ${FIG[$arch.install]} in ${FIG[$arch.install_s]} s (log: $CACHE/install-$arch.log)"
    [ "${FIG[$arch.install]}" = ok ] || return 0

    log "$arch: bab demo --duration $DEMO_SECONDS (offline)"
    in_root "$work" timeout $((DEMO_SECONDS + 240)) bab demo --duration "$DEMO_SECONDS" >"$CACHE/demo-$arch.log" 2>&1 \
        && FIG[$arch.demo_rc]=0 || FIG[$arch.demo_rc]=$?
    FIG[$arch.demo_registered]=$(grep -c 'registered at address' "$CACHE/demo-$arch.log" || true)
    FIG[$arch.demo_paired]=$(grep -c 'paired (SYM, selector 6)' "$CACHE/demo-$arch.log" || true)
    FIG[$arch.demo_tls]=$(grep -c 'TLS 1.2 session on selector 1' "$CACHE/demo-$arch.log" || true)
    FIG[$arch.demo_reads]=$(grep -c '1-0:1.8.0\*255 = ' "$CACHE/demo-$arch.log" || true)

    if [ "$RUN_TESTS" = 1 ]; then
        local repo
        repo=$(test_repo "$arch" "$work")
        log "$arch: installing pytest, hypothesis, pytest-asyncio offline; running the subset"
        mkdir -p "$work/opt/bab-tests" "$work/opt/testdebs"
        cp -a "$repo/." "$work/opt/testdebs/"
        mkdir -p "$work/opt/testdebs/apt/lists/partial" "$work/opt/testdebs/apt/parts"
        echo "deb [trusted=yes] file:/opt/testdebs ./" >"$work/opt/testdebs/apt/sources.list"
        in_root "$work" /bin/sh -c 'o="-o Dir::Etc::SourceList=/opt/testdebs/apt/sources.list -o Dir::Etc::SourceParts=/opt/testdebs/apt/parts -o Dir::State::Lists=/opt/testdebs/apt/lists -o APT::Sandbox::User=root -o Acquire::Languages=none"; apt-get $o -qq update && DEBIAN_FRONTEND=noninteractive apt-get $o install -y -qq --no-install-recommends python3-pytest python3-pytest-asyncio python3-hypothesis' \
            >"$CACHE/testtools-$arch.log" 2>&1 || die "test tools not installed: $CACHE/testtools-$arch.log"
        # The tests, the docs they check and pytest's configuration, not BAB's source: the installed package is tested.
        cp -a "$here/tests" "$here/docs" "$here/pyproject.toml" "$work/opt/bab-tests/"
        start=$(date +%s)
        local tests_flat
        tests_flat=$(tr '\n' ' ' <<<"$TESTS")
        in_root "$work" /bin/sh -c "cd /opt/bab-tests && python3 -m pytest -q -p no:cacheprovider --continue-on-collection-errors -o addopts='' -m 'not slow and not interop and not testssl' $tests_flat" \
            >"$CACHE/tests-$arch.log" 2>&1 || true
        FIG[$arch.tests_s]=$(( $(date +%s) - start ))
        FIG[$arch.tests]=$(grep -E '^(=+ )?[0-9]+ (passed|failed)|^[0-9]+ (passed|failed|error)' "$CACHE/tests-$arch.log" | tail -n 1 | tr -d '=' | sed 's/^ *//' || true)
        FIG[$arch.failed]=$(grep -E '^(FAILED|ERROR) ' "$CACHE/tests-$arch.log" | cut -d' ' -f2 | cut -d'[' -f1 | sort | uniq -c | sort -rn | awk '{ printf "%s (%d) ", $2, $1 }' || true)
    fi
}

ensure_tools
for a in "${ARCHES[@]}"; do run_arch "$a"; done

echo
echo "BAB on emulated ARM (qemu-user-static, nice 15, Debian bookworm roots, network off)"
printf '%-28s' ""; for a in "${ARCHES[@]}"; do printf '%-34s' "$a"; done; echo
row() {
    printf '%-28s' "$1"
    for a in "${ARCHES[@]}"; do printf '%-34s' "${FIG[$a.$2]:--}"; done
    echo
}
row "bundle size (KiB)" bundle_kib
row "bundle packages" bundle_pkgs
row "debootstrap (s)" debootstrap_s
row "offline install" install
row "install time (s)" install_s
row "packages unpacked" pkgs_installed
row "bab version installed" installed
row "bab.service" enabled
row "user bab, groups" user
row "modes etc/bab;yaml;var/lib" modes
row "demo exit status" demo_rc
row "demo: registered" demo_registered
row "demo: paired (SYM)" demo_paired
row "demo: TLS sessions" demo_tls
row "demo: 1.8.0 reads" demo_reads
row "tests" tests
row "tests time (s)" tests_s
for a in "${ARCHES[@]}"; do
    [ -n "${FIG[$a.failed]:-}" ] && echo "$a failed: ${FIG[$a.failed]}"
done
echo "logs: $CACHE/{install,demo,tests}-ARCH.log"
