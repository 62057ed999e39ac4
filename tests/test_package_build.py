"""BAB's package build compiles the wolfSSL binding (setup.py ``cffi_modules``): a wheel built from the
checkout carries a binding that loads, and a missing wolfSSL fails the build naming the Debian package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
IGNORE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "*.so", "*.pyc",
                                ".pytest_cache", ".ruff_cache", ".hypothesis", "tests", "bench", "docs")


def _source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=IGNORE)
    return src


def _wheel(src: Path, out: Path, **env: str) -> subprocess.CompletedProcess[str]:
    e = {**os.environ, **env}
    e.pop("BAB_WITHOUT_TLS", None)
    return subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "--no-index", "-w", str(out), str(src)], capture_output=True, text=True, env=e,
                          timeout=300)


def test_wheel_carries_a_binding_that_loads(tmp_path: Path) -> None:
    from bab.tls import build_wolfssl

    if build_wolfssl._preflight() is not None:
        pytest.skip(f"cannot build here: {build_wolfssl._preflight()}")
    r = _wheel(_source(tmp_path), tmp_path / "wheels")
    assert r.returncode == 0, r.stdout + r.stderr
    (wheel,) = (tmp_path / "wheels").glob("bab-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        assert any(n.startswith("bab/tls/_wolfssl_cffi") and n.endswith(".so") for n in z.namelist())
        z.extractall(site)
    probe = ("import bab, bab.tls.wolfssl_binding as w; w.require(); "
             "print(bab.__file__); print(w.library_version()); print(w.error_string(-313))")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=site,
                         env={**os.environ, "PYTHONPATH": str(site)})
    assert run.returncode == 0, run.stderr
    where, version, text = run.stdout.splitlines()
    assert where.startswith(str(site))  # the wheel's copy, not the checkout's
    assert version.startswith("5.") and "alert" in text


def test_build_without_wolfssl_fails_naming_the_debian_package(tmp_path: Path) -> None:
    empty = tmp_path / "no-headers"
    empty.mkdir()
    r = _wheel(_source(tmp_path), tmp_path / "wheels", BAB_WOLFSSL_INCLUDE=str(empty))
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "BAB's TLS binding cannot be built: wolfSSL headers not found" in out, out[-3000:]
    assert "libwolfssl-dev" in out
    assert not list((tmp_path / "wheels").glob("*.whl")) if (tmp_path / "wheels").exists() else True


def test_run_refuses_to_start_without_the_binding(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                 capfd: pytest.CaptureFixture[str]) -> None:
    """Not a silent "TLS disabled": `bab run` names the missing piece and exits 78 (no systemd restart loop)."""
    from bab import cli
    from bab.tls import wolfssl_binding

    monkeypatch.setattr(wolfssl_binding, "lib", None)
    monkeypatch.setattr(wolfssl_binding, "_IMPORT_ERROR", "libwolfssl.so.35: cannot open shared object file")
    cfg = tmp_path / "bab.yaml"
    cfg.write_text(f"""\
lmn:
  port: socket://127.0.0.1:9
state_dir: {tmp_path / 'state'}
status_socket: {tmp_path / 'status.sock'}
meters:
  - id: 1BAB0000000011
    driver: {{type: simulated}}
""")
    assert cli.main(["run", "--config", str(cfg)]) == 78
    err = capfd.readouterr().err  # bab run logs to stderr (the journal under systemd)
    assert "refusing to start: TLS (selector 1) is unavailable" in err and "libwolfssl35" in err, err
