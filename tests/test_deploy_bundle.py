"""deploy/build-bundle.sh: the offline bundle for a Raspberry Pi (armhf) built from Debian's archive and checked:
a flat apt repository holding bab and every package its dependencies need beyond the base system, the
offline installer, intact checksums. Downloads about 8 MB from Debian's archive: `pytest -m slow`.
Installing it, offline, in emulated arm64/armhf roots: bench/arm_emulation.sh."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _stanzas(text: str) -> dict[str, dict[str, str]]:
    out = {}
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and line[0] != " ")
        out[fields["Package"]] = fields
    return out


def test_armhf_bundle(tmp_path: Path) -> None:
    if shutil.which("dpkg-deb") is None or shutil.which("apt-get") is None:
        pytest.skip("needs a Debian machine")
    r = subprocess.run(["bash", str(REPO / "deploy/build-bundle.sh"), "--arch", "armhf", "--out", str(tmp_path),
                        "--cache", os.environ.get("BAB_PKG_CACHE", str(REPO / "build/deb-cache"))],
                       capture_output=True, text=True, timeout=900, env={**os.environ, "PYTHON": sys.executable})
    assert r.returncode == 0, r.stderr
    path = Path(r.stdout.strip().splitlines()[-1])
    assert path == tmp_path / "bab-bundle-armhf.tar"
    with tarfile.open(path) as t:
        t.extractall(tmp_path / "x", filter="data")
    b = tmp_path / "x/bab-bundle"
    assert (b / "ARCH").read_text().strip() == "armhf"
    assert os.access(b / "install-offline.sh", os.X_OK)
    subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=b, check=True)
    index = _stanzas((b / "Packages").read_text())
    assert index["bab"]["Architecture"] == "armhf"
    for name, fields in index.items():
        assert fields["Architecture"] in ("armhf", "all"), name
        assert (b / fields["Filename"]).is_file()
    for needed in ("python3-serial", "python3-yaml", "python3-pyudev", "python3-cryptography",
                   "python3-cffi-backend", "libwolfssl35", "python3"):
        assert needed in index, needed
    # the base system (libc6, systemd, udev, passwd ...) is not carried along
    for base in ("libc6", "systemd", "udev", "passwd", "libssl3"):
        assert base not in index, base
