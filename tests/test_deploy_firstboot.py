"""The "flash and go" first-boot hook and prepare-boot.sh against a temporary root and boot partition."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PREPARE = REPO / "deploy/firstboot/prepare-boot.sh"
CMDLINE = ("console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 fsck.repair=yes "
           "rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot")
HOOK_ARGS = ("systemd.run=/boot/firmware/bab-firstboot.sh systemd.run_success_action=reboot "
             "systemd.unit=kernel-command-line.target")
WANTS = "etc/systemd/system/multi-user.target.wants/bab-firstboot.service"


@pytest.fixture
def sd(tmp_path: Path) -> tuple[Path, Path]:
    """A fake SD card: root file system with a boot partition at /boot/firmware, freshly flashed."""
    root = tmp_path / "root"
    boot = root / "boot/firmware"
    boot.mkdir(parents=True)
    (boot / "cmdline.txt").write_text(CMDLINE + "\n")
    return root, boot


def prepare(boot: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(PREPARE), str(boot), *args], capture_output=True, text=True, timeout=120)


def hook(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BAB_FIRSTBOOT_ROOT": str(root)}
    env.pop("BAB_FIRSTBOOT_BOOT", None)
    script = root / "boot/firmware/bab-firstboot.sh"
    if args and args[0] == "install":  # stage 2 runs the copy stage 1 put on the root file system
        script = root / "usr/local/lib/bab-firstboot/bab-firstboot.sh"
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, env=env, timeout=120)


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """prepare-boot.sh output made once (tarring the checkout is the slow part)."""
    boot = tmp_path_factory.mktemp("bundle")
    (boot / "cmdline.txt").write_text(CMDLINE + "\n")
    r = prepare(boot)
    assert r.returncode == 0, r.stderr
    return boot


def copy_bundle(bundle: Path, boot: Path) -> None:
    (boot / "bab").mkdir()
    for name in ("bab-src.tar.gz", "bab-firstboot.service"):
        (boot / "bab" / name).write_bytes((bundle / "bab" / name).read_bytes())
    (boot / "bab-firstboot.sh").write_bytes((bundle / "bab-firstboot.sh").read_bytes())
    (boot / "cmdline.txt").write_text((bundle / "cmdline.txt").read_text())


def test_prepare_boot_writes_bundle_and_arms_cmdline_once(tmp_path: Path, bundle: Path) -> None:
    assert (bundle / "cmdline.txt").read_text() == f"{CMDLINE} {HOOK_ARGS}\n"
    listing = subprocess.run(["tar", "-tzf", str(bundle / "bab/bab-src.tar.gz")], capture_output=True,
                             text=True, check=True).stdout.split()
    assert "./deploy/install.sh" in listing and "./pyproject.toml" in listing
    assert not [n for n in listing if n.startswith(("./.git/", "./.venv/")) or "__pycache__" in n]

    boot = tmp_path / "boot"  # Imager's customisation was used, and prepare-boot runs twice
    boot.mkdir()
    imager = (f"{CMDLINE} systemd.run=/boot/firstrun.sh systemd.run_success_action=reboot "
              "systemd.unit=kernel-command-line.target")
    (boot / "cmdline.txt").write_text(imager + "\n")
    cfg = tmp_path / "my.yaml"
    cfg.write_text("lmn: {port: /dev/bab-lmn}\n")
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "mk.hex").write_text("00" * 16)
    for _ in range(2):
        r = prepare(boot, "--config", str(cfg), "--keys", str(keys), "--no-check")
        assert r.returncode == 0, r.stderr
    assert (boot / "cmdline.txt").read_text() == f"{CMDLINE} {HOOK_ARGS}\n"
    assert (boot / "bab.yaml").read_text() == cfg.read_text()
    assert (boot / "bab-keys/mk.hex").is_file()


def test_prepare_boot_refuses_a_non_boot_dir(tmp_path: Path) -> None:
    r = prepare(tmp_path)
    assert r.returncode != 0 and "cmdline.txt not found" in r.stderr


def test_first_boot_end_to_end(sd: tuple[Path, Path], bundle: Path) -> None:
    root, boot = sd
    copy_bundle(bundle, boot)
    (boot / "bab.yaml").write_text("lmn: {port: /dev/bab-lmn}\nmeters: []\n")
    (boot / "bab-keys").mkdir()
    (boot / "bab-keys/tls-cert.pem").write_text("CERT")
    (boot / "bab-keys/master-key.hex").write_text("00112233445566778899aabbccddeeff")

    # Stage 1: early boot via systemd.run=
    r = hook(root)
    assert r.returncode == 0, (boot / "bab-firstboot.log").read_text()
    assert (boot / "cmdline.txt").read_text() == CMDLINE + "\n"  # disarmed: never runs twice
    unit = root / "etc/systemd/system/bab-firstboot.service"
    assert unit.read_bytes() == (REPO / "deploy/firstboot/bab-firstboot.service").read_bytes()
    assert os.readlink(root / WANTS) == "/etc/systemd/system/bab-firstboot.service"
    assert mode(root / "usr/local/lib/bab-firstboot/bab-firstboot.sh") == 0o755

    # Stage 2: after the reboot, bab-firstboot.service
    r = hook(root, "install")
    log = (boot / "bab-firstboot.log").read_text()
    assert r.returncode == 0, log
    assert "SUCCESS: BAB installed and started" in log
    assert "SUCCESS: BAB installed and started" in r.stdout  # the hook's own messages reach the journal too
    assert "skipped (no system steps)" not in r.stdout  # command output only in the log file
    assert (root / "etc/bab/bab.yaml").read_text() == "lmn: {port: /dev/bab-lmn}\nmeters: []\n"
    assert mode(root / "etc/bab/bab.yaml") == 0o640
    assert not (boot / "bab.yaml").exists() and (boot / "bab.yaml.installed").is_file()
    keys = root / "etc/bab/keys"
    assert mode(keys) == 0o700 and mode(keys / "master-key.hex") == 0o600
    assert (keys / "tls-cert.pem").read_text() == "CERT"
    assert not (boot / "bab-keys").exists(), "secrets must not stay on the boot partition"
    assert (root / "etc/systemd/system/bab.service").is_file() and mode(root / "var/lib/bab") == 0o700
    assert "(test root: not running) systemctl disable bab-firstboot.service" in log
    assert "systemctl enable bab.service" in log  # install.sh --enable (print-only under a test root)
    assert (root / "var/lib/bab-firstboot/done").is_file() and not (root / WANTS).is_symlink()

    # Re-run (e.g. the unit was re-enabled by hand): nothing happens
    (root / "etc/bab/bab.yaml").write_text("# edited on the Pi\n")
    r = hook(root, "install")
    assert r.returncode == 0
    assert "already done" in (boot / "bab-firstboot.log").read_text()
    assert (root / "etc/bab/bab.yaml").read_text() == "# edited on the Pi\n"


def test_first_boot_without_config_installs_but_does_not_start(sd: tuple[Path, Path], bundle: Path) -> None:
    root, boot = sd
    copy_bundle(bundle, boot)
    assert hook(root).returncode == 0
    r = hook(root, "install")
    log = (boot / "bab-firstboot.log").read_text()
    assert r.returncode == 0, log
    assert "no bab.yaml on the boot partition" in log and "NOT enabling bab.service" in log
    assert (root / "etc/bab/bab.yaml").read_bytes() == (REPO / "deploy/bab.example.yaml").read_bytes()


def test_failure_is_logged_and_retried(sd: tuple[Path, Path], bundle: Path) -> None:
    root, boot = sd
    copy_bundle(bundle, boot)
    assert hook(root).returncode == 0
    tarball = boot / "bab/bab-src.tar.gz"
    saved = tarball.read_bytes()
    tarball.write_bytes(b"not a tarball")
    r = hook(root, "install")
    log = (boot / "bab-firstboot.log").read_text()
    assert r.returncode == 1
    assert "FAILED: cannot unpack" in log and "retried on the next boot" in log
    assert (root / WANTS).is_symlink() and not (root / "var/lib/bab-firstboot/done").exists()
    tarball.write_bytes(saved)  # next boot
    r = hook(root, "install")
    assert r.returncode == 0, (boot / "bab-firstboot.log").read_text()
    assert (root / "var/lib/bab-firstboot/done").exists()


def test_stage1_chains_imager_firstrun(sd: tuple[Path, Path], bundle: Path) -> None:
    root, boot = sd
    copy_bundle(bundle, boot)
    (boot / "firstrun.sh").write_text(f'#!/bin/bash\necho imager-ran > "{root}/imager-ran"\nexit 0\n')
    assert hook(root).returncode == 0
    assert (root / "imager-ran").read_text() == "imager-ran\n"
    assert not (boot / "firstrun.sh").exists()


def test_stage1_without_bundle_still_disarms(sd: tuple[Path, Path]) -> None:
    root, boot = sd
    (boot / "bab-firstboot.sh").write_bytes((REPO / "deploy/firstboot/bab-firstboot.sh").read_bytes())
    (boot / "cmdline.txt").write_text(f"{CMDLINE} {HOOK_ARGS}\n")
    r = hook(root)
    assert r.returncode == 0
    assert (boot / "cmdline.txt").read_text() == CMDLINE + "\n"
    assert "ERROR: could not install bab-firstboot.service" in (boot / "bab-firstboot.log").read_text()


def test_first_boot_from_the_offline_bundle(tmp_path: Path, sd: tuple[Path, Path]) -> None:
    """With bab-bundle.tar on the boot partition the hook installs from it (deploy/bundle/install-offline.sh,
    no network, no clock wait) instead of the source; under a test root that command is logged, not run.
    The real offline installation is proven in emulated ARM roots by bench/arm_emulation.sh."""
    root, boot = sd
    content = tmp_path / "content/bab-bundle"
    content.mkdir(parents=True)
    (content / "install-offline.sh").write_bytes((REPO / "deploy/bundle/install-offline.sh").read_bytes())
    (content / "ARCH").write_text("armhf\n")
    tar = tmp_path / "bab-bundle-armhf.tar"
    subprocess.run(["tar", "-C", str(content.parent), "-cf", str(tar), "bab-bundle"], check=True)
    cfg = tmp_path / "my.yaml"
    cfg.write_text("lmn: {port: /dev/bab-lmn}\nmeters: []\n")
    r = prepare(boot, "--bundle", str(tar), "--config", str(cfg), "--no-check")
    assert r.returncode == 0, r.stderr
    assert (boot / "bab-bundle.tar").read_bytes() == tar.read_bytes() and not (boot / "bab/bab-src.tar.gz").exists()
    assert "offline bundle (armhf)" in r.stderr
    assert hook(root).returncode == 0
    r = hook(root, "install")
    log = (boot / "bab-firstboot.log").read_text()
    assert r.returncode == 0, log
    assert "(test root: not running) " in log and f"bab-bundle/install-offline.sh {boot}/bab-bundle.tar" in log
    assert "deploy/install.sh" not in log
    assert (root / "etc/bab/bab.yaml").read_text() == cfg.read_text()
    assert "SUCCESS: BAB installed and started" in log and (root / "var/lib/bab-firstboot/done").is_file()


def test_prepare_boot_refuses_a_file_that_is_no_bundle(tmp_path: Path, sd: tuple[Path, Path]) -> None:
    _, boot = sd
    junk = tmp_path / "junk.tar"
    junk.write_text("not a tar")
    r = prepare(boot, "--bundle", str(junk))
    assert r.returncode != 0 and "not a BAB bundle" in r.stderr
