"""deploy/install.sh and the first-boot hook for real (system steps on), in a throwaway overlay.

Slow (apt, a virtualenv, pip from the package index: 30-60 s) and needs root, unshare(1) and overlayfs:
``pytest -m slow tests/test_deploy_system.py``. /etc, /opt, /usr and /var are overlaid with temporary upper
layers inside a private mount namespace, so the user, the packages and the files the installer creates
vanish when the test ends. systemd is not running here (as in an image build), so reloads are skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare"),
]

SCRIPT = r"""
set -e
base="$1"
for d in etc opt var usr; do
  mkdir -p "$base/$d.up" "$base/$d.work"
  mount -n -t overlay overlay -o "lowerdir=/$d,upperdir=$base/$d.up,workdir=$base/$d.work" "/$d"
done
export PIP_NO_CACHE_DIR=1
boot="$base/boot"; mkdir -p "$boot"
echo "console=tty1 root=PARTUUID=x rootwait" > "$boot/cmdline.txt"
bash "$REPO/deploy/firstboot/prepare-boot.sh" "$boot" --config "$REPO/deploy/bab.example.yaml" --no-check
sed -i 's/1BAB0012345678/1BAB0000000099/' "$boot/bab.yaml"
mkdir "$boot/bab-keys"; echo secret > "$boot/bab-keys/mk.hex"
export BAB_FIRSTBOOT_BOOT="$boot"
bash "$boot/bab-firstboot.sh"
/usr/local/lib/bab-firstboot/bab-firstboot.sh install
echo "RESULT firstboot=$(tail -n 1 "$boot/bab-firstboot.log" | sed 's/.*bab-firstboot: //')"
echo "RESULT perms=$(stat -c '%a:%U:%G' /etc/bab /etc/bab/bab.yaml /etc/bab/keys /etc/bab/keys/mk.hex \
    /var/lib/bab | tr '\n' ' ')"
echo "RESULT groups=$(id -nG bab)"
echo "RESULT enabled=$(readlink /etc/systemd/system/multi-user.target.wants/bab.service)"
/opt/bab/bin/python -c 'import bab.status, bab.sdnotify' && echo "RESULT venv=ok"
bash "$REPO/deploy/install.sh" >/dev/null 2>&1 && echo "RESULT rerun=ok"
echo "RESULT config=$(grep -c 1BAB0000000099 /etc/bab/bab.yaml)"
bash "$REPO/deploy/install.sh" --uninstall >/dev/null 2>&1
echo "RESULT after-uninstall=$(ls /etc/bab | tr '\n' ' ')|$(test -e /opt/bab && echo opt-left)"
bash "$REPO/deploy/install.sh" --uninstall --purge >/dev/null 2>&1
left=""
test -e /etc/bab && left="$left etc"
test -e /var/lib/bab && left="$left state"
id bab >/dev/null 2>&1 && left="$left user"
echo "RESULT after-purge=$left"
"""


def test_real_install_firstboot_uninstall(tmp_path: Path) -> None:
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-c", SCRIPT, "x",
                        str(tmp_path)], capture_output=True, text=True, timeout=900,
                       env={**os.environ, "REPO": str(REPO)})
    results = dict(line[7:].split("=", 1) for line in r.stdout.splitlines() if line.startswith("RESULT "))
    if "firstboot" not in results and "overlay" in r.stderr:
        pytest.skip(f"overlayfs not usable here: {r.stderr[-300:]}")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert results["firstboot"].startswith("SUCCESS"), results
    assert results["perms"].split() == ["750:root:bab", "640:root:bab", "700:bab:bab", "600:bab:bab",
                                        "700:bab:bab"]
    assert set(results["groups"].split()) == {"bab", "dialout", "gpio"}
    assert results["enabled"] == "/etc/systemd/system/bab.service"
    assert results["venv"] == "ok" and results["rerun"] == "ok" and results["config"] == "1"
    assert results["after-uninstall"] == "bab.yaml keys |"
    assert results["after-purge"] == ""
