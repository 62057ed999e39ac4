"""README: `bab demo --http 127.0.0.1:8080` shows the demo bus in a browser (here on a port the OS picks; the
page itself is driven in a browser by test_web_browser.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("aiohttp")


def test_readme_names_the_demo_console():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert re.search(r"`bab demo --http 127\.0\.0\.1:8080` \| .*http://127\.0\.0\.1:8080/ in a browser", readme)


def test_bab_demo_serves_the_console_of_the_demo_bus():
    proc = subprocess.Popen([sys.executable, "-m", "bab.cli", "demo", "--http", "127.0.0.1:0", "--duration", "20"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = None
        for line in proc.stdout:  # type: ignore[union-attr]
            m = re.match(r"web console: (http://127\.0\.0\.1:\d+/)", line)
            if m:
                url = m.group(1)
                break
        assert url, "no web console line"
        with urllib.request.urlopen(url, timeout=10) as r:
            assert r.status == 200 and b"BAB console" in r.read()
        with urllib.request.urlopen(url + "api/session", timeout=10) as r:
            assert json.load(r)["roles"] == ["gateway", "adapter"]
        deadline = time.monotonic() + 20
        participants: list = []
        while time.monotonic() < deadline:
            with urllib.request.urlopen(url + "api/gateway/participants", timeout=10) as r:
                participants = json.load(r)["participants"]
            if participants and participants[0]["readings"]:
                break
            time.sleep(0.2)
        assert participants[0]["id"] == "1BAB0012345678" and participants[0]["readings"]
    finally:
        proc.terminate()
        proc.wait(20)
