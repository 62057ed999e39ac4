"""deploy/build-deb.sh: BAB's Debian package, built for this machine's architecture and inspected with
dpkg-deb (control data, files, the unit), its code unpacked and run (the wolfSSL binding loads, the driver
plugins are found through the packaged entry points, the example configuration passes `bab config check`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEBIAN_DEPENDS = ("python3-serial", "python3-yaml", "python3-pyudev", "python3-cryptography",
                  "python3-cffi-backend", "libwolfssl35")


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("dpkg-deb") is None or not Path("/usr/include/wolfssl/options.h").exists():
        pytest.skip("needs dpkg-deb and libwolfssl-dev")
    out = tmp_path_factory.mktemp("deb")
    r = subprocess.run(["bash", str(REPO / "deploy/build-deb.sh"), "--out", str(out)], capture_output=True,
                       text=True, timeout=300, env={**os.environ, "PYTHON": sys.executable})
    assert r.returncode == 0, r.stderr
    (path,) = out.glob("bab_*.deb")
    assert r.stdout.strip() == str(path)
    return path


def _field(deb: Path, name: str) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_control_data(deb: Path) -> None:
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip()
    assert _field(deb, "Package") == "bab" and _field(deb, "Architecture") == arch
    depends = [d.split()[0] for d in _field(deb, "Depends").split(", ")]
    for d in DEBIAN_DEPENDS:
        assert d in depends
    info = subprocess.run(["dpkg-deb", "-I", str(deb)], capture_output=True, text=True, check=True).stdout
    for script in ("postinst", "prerm", "postrm"):
        assert script in info


def test_files_and_unit(deb: Path, tmp_path: Path) -> None:
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    for path in ("./usr/bin/bab", "./lib/systemd/system/bab.service", "./lib/udev/rules.d/99-bab.rules",
                 "./usr/lib/modules-load.d/bab.conf", "./usr/share/bab/bab.example.yaml",
                 "./usr/lib/python3/dist-packages/bab/tls/_wolfssl_cffi.abi3.so",
                 "./usr/lib/python3/dist-packages/bab-0.1.0.dist-info/entry_points.txt",
                 "./usr/share/doc/bab/installing.md"):
        assert path in listing, path
    assert "root/root" in listing and "./etc/" not in listing  # /etc/bab is made by postinst, never shipped
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp_path)], check=True)
    unit = (tmp_path / "lib/systemd/system/bab.service").read_text()
    assert "ExecStart=/usr/bin/bab run --config /etc/bab/bab.yaml" in unit and "/opt/bab" not in unit
    assert unit.replace("/usr/bin/bab", "/opt/bab/bin/bab").split("[Service]")[1] == \
        (REPO / "systemd/bab.service").read_text().split("[Service]")[1]


def test_packaged_code_runs(deb: Path, tmp_path: Path) -> None:
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp_path)], check=True)
    site = tmp_path / "usr/lib/python3/dist-packages"
    env = {**os.environ, "PYTHONPATH": str(site)}
    probe = ("import bab, bab.tls.wolfssl_binding as w; w.require(); "
             "from legacy_drivers.api import available_drivers; "
             "print(bab.__file__); print(sorted(available_drivers()))")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                       env=env)
    assert r.returncode == 0, r.stderr
    where, drivers = r.stdout.splitlines()
    assert where.startswith(str(site))
    assert all(d in drivers for d in ("d0", "edl", "mbus", "s0", "simulated"))
    check = subprocess.run([sys.executable, str(tmp_path / "usr/bin/bab"), "config", "check",
                            str(tmp_path / "usr/share/bab/bab.example.yaml")], capture_output=True, text=True,
                           timeout=60, cwd=tmp_path, env=env)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("script", ["postinst", "prerm", "postrm"])
def test_maintainer_scripts_pass_shellcheck(script: str) -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed")
    r = subprocess.run([shellcheck, "-s", "sh", str(REPO / "deploy/debian" / script)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout
