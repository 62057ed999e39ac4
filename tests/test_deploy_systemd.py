"""systemd units: `systemd-analyze verify` passes without a single warning, and the unit keeps its contract.

``verify`` needs the ExecStart binary to exist, and /opt/bab/bin/bab does not exist on a dev machine or in
CI. So the test verifies a copy in a temp dir where only the ExecStart executable path is replaced by an
existing one (/bin/true); every other line is identical. A negative control proves the check can fail.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "systemd" / "bab.service"
FIRSTBOOT_UNIT = REPO / "deploy" / "firstboot" / "bab-firstboot.service"

needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze is not installed (apt-get install systemd)")


def verifiable_copy(unit: Path, tmp_path: Path) -> Path:
    text = unit.read_text()
    new, n = re.subn(r"^(ExecStart=)(/\S+)", lambda m: m.group(1) + shutil.which("true"), text, flags=re.M)
    assert n == 1, "expected exactly one ExecStart= with an absolute path"
    assert new.splitlines()[:5] == text.splitlines()[:5]
    out = tmp_path / unit.name
    out.write_text(new)
    return out


def verify(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60)


def unit_lines(path: Path) -> dict[str, list[str]]:
    """key -> values (a key may repeat) of a unit file, ignoring comments."""
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            k, v = line.split("=", 1)
            out.setdefault(k.strip(), []).append(v.strip())
    return out


@needs_analyze
@pytest.mark.parametrize("unit", [UNIT, FIRSTBOOT_UNIT], ids=lambda p: p.name)
def test_systemd_analyze_verify_is_clean(unit: Path, tmp_path: Path) -> None:
    r = verify(verifiable_copy(unit, tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "" and r.stderr.strip() == "", r.stdout + r.stderr


@needs_analyze
def test_verify_catches_a_typo(tmp_path: Path) -> None:
    """Negative control: verify exits 0 on unknown keys, so the test above must (and does) check output."""
    bad = tmp_path / "bab.service"
    bad.write_text(verifiable_copy(UNIT, tmp_path).read_text().replace("ProtectHome=", "ProtectHomes="))
    r = verify(bad)
    assert "Unknown key" in r.stderr + r.stdout


@needs_analyze
def test_security_exposure_stays_low(tmp_path: Path) -> None:
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager",
                        str(verifiable_copy(UNIT, tmp_path))], capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout + r.stderr)
    if r.returncode != 0 and m is None:
        pytest.skip(f"this systemd-analyze has no offline security check: {r.stderr.strip()[:200]}")
    assert m is not None and float(m.group(1)) <= 2.5, r.stdout[-2000:]


def test_unit_contract() -> None:
    u = unit_lines(UNIT)
    assert u["Type"] == ["notify"]
    assert u["ExecStart"] == ["/opt/bab/bin/bab run --config /etc/bab/bab.yaml"]
    assert u["User"] == ["bab"] and set(u["SupplementaryGroups"][0].split()) == {"dialout", "gpio"}
    assert u["StateDirectory"] == ["bab"] and u["StateDirectoryMode"] == ["0700"]
    assert u["RuntimeDirectory"] == ["bab"]  # /run/bab/status.sock (bab.status.DEFAULT_SOCKET)
    assert u["DevicePolicy"] == ["closed"]
    allowed = {v.split()[0] for v in u["DeviceAllow"]}
    assert {"char-ttyUSB", "char-ttyAMA", "char-gpiochip"} <= allowed
    assert "AF_NETLINK" in u["RestrictAddressFamilies"][0] and "AF_UNIX" in u["RestrictAddressFamilies"][0]
    assert u["WatchdogSec"] and u["Restart"] == ["on-failure"]
    for key in ("ProtectSystem", "NoNewPrivileges", "MemoryDenyWriteExecute", "PrivateTmp", "ProtectHome"):
        assert key in u
