"""A BAB and the software gateway on an in-memory bus with the web console on 127.0.0.1 (port chosen by the OS),
in the test's event loop: what `bab demo --http` runs, with short broadcast periods."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import aiohttp

from bab import config
from bab.daemon import Daemon
from bab.gateway.app import SoftwareGateway
from bab.gateway.readers import secure_reader
from bab.gateway.security import GatewaySecurity
from bab.hdlc.timing import GatewayTiming
from bab.lmn.asyncbus import AsyncBus, BusLink
from bab.lmn.node import LinkNode
from bab.lmn.runner import NodeRunner
from bab.web.adapter_console import AdapterConsole
from bab.web.gateway_console import GatewayConsole
from bab.web.security import AccessPolicy
from bab.web.server import HttpServer, build_app

FAST = GatewayTiming(broadcast_period=1.0, broadcast_period_empty=0.3, check_period=1.0, missed_checks=3)
METER = "1BAB0012345678"


class WebBench:
    """Daemon + gateway + web console; ``await start()``, then ``get``/``post``, ``await close()``."""

    def __init__(self, tmp: Path, *, master_key: bytes | None = None, token: str | None = None,
                 poll_interval: float = 1.0, gateway_on: bool = True) -> None:
        self.tmp = tmp
        self.master_key = master_key
        self.token = token
        self.poll_interval = poll_interval
        self.gateway_on = gateway_on
        self.tasks: list[asyncio.Task] = []
        self.reports: list[str] = []

    async def start(self, delay_meter: bool = False) -> WebBench:
        cfg = config.loads(config.DEMO_CONFIG.replace("/tmp/bab-demo", str(self.tmp / "state")), "<test>")
        self.bus = AsyncBus()
        self.daemon = Daemon(cfg)
        self.daemon.build()
        if self.master_key is not None:
            for m in self.daemon.meters:
                m.security.store.set_master_key(self.master_key)
        self.console = GatewayConsole(security=GatewaySecurity(self.tmp / "gateway"))
        reader = secure_reader(self.reports.append, self.console.security, {}, on_result=self.console.on_result,
                               on_outcome=self.console.on_outcome)
        self.gateway = SoftwareGateway(FAST, reader=reader, poll_interval=self.poll_interval,
                                       report=self.reports.append, on_event=self.console.on_station_event)
        self.console.attach(self.gateway)
        node = LinkNode([self.console])
        self.console.receiver_counters = node.receiver.counters
        self.runner = NodeRunner(node, lambda data: self.gw_port.write(data))
        self.gw_port = self.bus.attach("gateway", self.runner.feed)
        self.console.poke = self.runner.poke
        self.adapter = AdapterConsole(self.daemon, hub=self.console.hub, period=0.2)
        self.policy = AccessPolicy("127.0.0.1", self.token)
        self.server = HttpServer(build_app(self.policy, gateway=self.console, adapter=self.adapter), "127.0.0.1", 0)
        await self.server.start()
        self.session = aiohttp.ClientSession()
        self.tasks.append(asyncio.create_task(self.runner.run()))
        if not delay_meter:
            self.start_meter()
        return self

    def start_meter(self) -> None:
        self.tasks.append(asyncio.create_task(self.daemon.run(BusLink(self.bus, "bab"))))

    @property
    def url(self) -> str:
        return self.server.url.rstrip("/")

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token or self.policy.session_token}"}

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        kw.setdefault("headers", self.auth() if self.token else {})
        async with self.session.get(self.url + path, **kw) as r:
            return r.status, await (r.json() if r.content_type == "application/json" else r.text())

    async def post(self, path: str, body: Any = None, *, auth: bool = True, **kw: Any) -> tuple[int, Any]:
        headers = dict(kw.pop("headers", {}))
        if auth:
            headers.update(self.auth())
        if body is not None and "data" not in kw:
            kw["json"] = body
        async with self.session.post(self.url + path, headers=headers, **kw) as r:
            return r.status, await r.json()

    async def wait_for(self, cond, timeout: float = 20.0) -> bool:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while loop.time() < end:
            if await cond() if asyncio.iscoroutinefunction(cond) else cond():
                return True
            await asyncio.sleep(0.05)
        return False

    async def registered(self, timeout: float = 20.0) -> dict:
        async def ok() -> bool:
            status, data = await self.get("/api/gateway/participants")
            return status == 200 and any(p["state"] == "registered" for p in data["participants"])
        assert await self.wait_for(ok, timeout), "the meter did not register"
        return (await self.get("/api/gateway/participants"))[1]["participants"][0]

    async def close(self) -> None:
        await self.session.close()
        await self.server.close()
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def random_key() -> bytes:
    return os.urandom(16)


class _SimCommandError(Exception):
    pass


_SimCommandError.__name__ = "SimCommandError"


class RecordingSim:
    """Stands in for bab.sim.control.SimControl (the other helper's, not merged yet): records the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def show(self, meter=None):
        self.calls.append(("show", meter))
        return {"meters": [meter or METER]}

    def set_value(self, meter, obis, value):
        self.calls.append(("set_value", meter, obis, value))
        return {"meter": meter, "obis": obis, "value": str(value)}

    def set_status(self, meter, bit, on):
        self.calls.append(("set_status", meter, bit, on))
        return {"bit": bit, "on": on}

    def fault(self, meter, kind, **params):
        if kind == "nonsense":
            raise _SimCommandError("unknown fault 'nonsense' (known: silence, noise)")
        self.calls.append(("fault", meter, kind, params))
        return {"fault": kind, **params}

    def clear(self, meter, kind=None):
        self.calls.append(("clear", meter, kind))
        return {"cleared": kind or "all"}

    def scenario(self, text):
        self.calls.append(("scenario", text))
        return {"steps": 1}
