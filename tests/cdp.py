"""Headless Chromium driven over its DevTools protocol (a websocket, with aiohttp's client): enough for the web
console's browser tests and screenshots. No driver binary, no extra Python package."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import aiohttp


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """One headless Chromium process with one page; ``await Browser.start()``, ``await close()``."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.profile = tempfile.mkdtemp(prefix="bab-chromium-")
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self.events: list[dict[str, Any]] = []
        self.exceptions: list[str] = []

    @classmethod
    async def start(cls, width: int = 1280, height: int = 900) -> Browser:
        b = cls()
        binary = chromium_binary()
        assert binary is not None
        args = [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-extensions", "--disable-background-networking", "--disable-sync",
                "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio", f"--window-size={width},{height}",
                "--remote-debugging-port=0", f"--user-data-dir={b.profile}", "about:blank"]
        b.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(b.profile) / "DevToolsActivePort"
        for _ in range(300):
            if port_file.exists() and port_file.read_text().strip():
                break
            if b.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {b.proc.returncode}")
            await asyncio.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        b.session = aiohttp.ClientSession()
        async with b.session.get(f"http://127.0.0.1:{port}/json/list") as r:
            targets = await r.json()
        page = next(t for t in targets if t["type"] == "page")
        b.ws = await b.session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=64 * 1024 * 1024)
        b._reader = asyncio.create_task(b._read())
        await b.send("Page.enable")
        await b.send("Runtime.enable")
        return b

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if "id" in data:
                fut = self._pending.pop(data["id"], None)
                if fut is not None and not fut.done():
                    if "error" in data:
                        fut.set_exception(RuntimeError(str(data["error"])))
                    else:
                        fut.set_result(data.get("result", {}))
            else:
                self.events.append(data)
                if data.get("method") == "Runtime.exceptionThrown":
                    self.exceptions.append(json.dumps(data["params"]["exceptionDetails"])[:500])

    async def send(self, method: str, params: dict[str, Any] | None = None, timeout: float = 30.0) -> dict:
        i = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[i] = fut
        await self.ws.send_str(json.dumps({"id": i, "method": method, "params": params or {}}))
        async with asyncio.timeout(timeout):
            return await fut

    async def eval(self, expression: str) -> Any:
        r = await self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                 "awaitPromise": True})
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression!r} raised: {r['exceptionDetails']}")
        return r["result"].get("value")

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", {"url": url})

    async def wait_for(self, expression: str, timeout: float = 20.0, interval: float = 0.02) -> Any:
        """Evaluate until truthy; returns the value (raises TimeoutError)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            try:
                value = await self.eval(expression)
            except RuntimeError:
                value = None
            if value:
                return value
            if loop.time() > end:
                page = await self.eval("document.body.innerText.slice(0, 3000)")
                raise TimeoutError(f"not true within {timeout} s: {expression}\n--- page:\n{page}")
            await asyncio.sleep(interval)

    async def screenshot(self, path: Path) -> None:
        r = await self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(r["data"]))

    async def close(self) -> None:
        if getattr(self, "ws", None) is not None:
            await self.ws.close()
        if getattr(self, "_reader", None) is not None:
            self._reader.cancel()
        if getattr(self, "session", None) is not None:
            await self.session.close()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


SCREENSHOTS = os.environ.get("BAB_SCREENSHOTS")  # a directory: the browser tests save their views there
