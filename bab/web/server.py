"""The HTTP server of the web console (aiohttp): the JSON API, the event stream and the static page.

:func:`build_app` makes the aiohttp application for a :class:`~bab.web.gateway_console.GatewayConsole`, an
:class:`~bab.web.adapter_console.AdapterConsole` or both (``bab demo``); :class:`HttpServer` runs it on the
process's own event loop. Every error is a JSON object ``{"error": "...", "status": N}``; request bodies are
JSON objects of at most :data:`MAX_BODY` bytes; a request that fails validation changes nothing. The access
log names method, path and status only (never a query string, which may carry the token, nor a body, which may
carry a master key). Endpoints: ``docs/http-api.md`` and ``GET /api``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from importlib import resources
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from bab.meter_id import MeterId

from .adapter_console import AdapterConsole
from .events import EventHub
from .gateway_console import ConsoleError, GatewayConsole
from .objects import ObjectSpecError, object_requests, parse_obis
from .security import AccessPolicy, presented_token

log = logging.getLogger("bab.web")

MAX_BODY = 16 * 1024
KEEPALIVE = 15.0
_HEX32 = re.compile(r"[0-9a-fA-F]{32}")
_STATIC = {"app.js": "text/javascript", "style.css": "text/css"}

GATEWAY = web.AppKey("gateway", GatewayConsole)
ADAPTER = web.AppKey("adapter", AdapterConsole)
HUB = web.AppKey("hub", EventHub)
POLICY = web.AppKey("policy", AccessPolicy)

#: (method, path, what it does): served at GET /api and checked against docs/http-api.md by the tests.
ENDPOINTS: list[tuple[str, str, str, str]] = [
    ("GET", "/api", "any", "this list of endpoints"),
    ("GET", "/api/session", "any", "which consoles this process serves, and the session token for writes"),
    ("GET", "/api/events", "any", "the live event stream (Server-Sent Events)"),
    ("GET", "/api/events/recent", "any", "the last events as JSON"),
    ("GET", "/api/gateway/participants", "gateway", "the participants on the bus"),
    ("GET", "/api/gateway/participants/{meter}", "gateway", "one participant: values, identification, diagnostics"),
    ("GET", "/api/gateway/participants/{meter}/plots/{plot}.svg", "gateway",
     "plots: slots (slot offsets against the reply window), latency, energy, profile"),
    ("POST", "/api/gateway/participants/{meter}/read", "gateway", "read objects now (plain SML or TLS)"),
    ("POST", "/api/gateway/participants/{meter}/profile", "gateway", "read the load profile now (GetProfileList)"),
    ("POST", "/api/gateway/participants/{meter}/pair", "gateway", "pair the meter with its master key (SYM)"),
    ("POST", "/api/gateway/participants/{meter}/crypto-reset", "gateway", "crypto-reset a paired meter"),
    ("GET", "/api/gateway/link", "gateway", "bus-wide counters (frames, timeouts, bad frames, event stream)"),
    ("GET", "/api/adapter/status", "adapter", "what `bab status --json` shows"),
    ("GET", "/api/adapter/meters/{meter}", "adapter", "one presented meter: status, objects, load profile"),
    ("GET", "/api/adapter/meters/{meter}/profile.svg", "adapter", "plot of the load profile (?obis=)"),
    ("GET", "/api/adapter/sim", "adapter", "the lab meter's simulator state (?meter=)"),
    ("POST", "/api/adapter/sim/value", "adapter", "set a simulated value"),
    ("POST", "/api/adapter/sim/status", "adapter", "set or clear a status bit"),
    ("POST", "/api/adapter/sim/fault", "adapter", "inject a fault"),
    ("POST", "/api/adapter/sim/clear", "adapter", "clear a fault (or all)"),
    ("POST", "/api/adapter/sim/scenario", "adapter", "run a scenario"),
]


class _AccessLogger(AbstractAccessLogger):
    """Method, path (without the query) and status: nothing secret."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info("%s %s %s %.1f ms", request.method, request.path, response.status, time * 1000)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message, "status": status}, status=status)


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except ConsoleError as exc:
        return _error(exc.status, str(exc))
    except ObjectSpecError as exc:
        return _error(400, str(exc))
    except web.HTTPRequestEntityTooLarge:
        return _error(413, f"request body too large (at most {MAX_BODY} bytes)")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 404:
            return _error(404, f"no such endpoint: {request.method} {request.path} (see GET /api)")
        if exc.status == 405:
            return _error(405, f"method {request.method} is not allowed on {request.path}")
        return _error(exc.status, exc.reason)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("web request %s %s failed", request.method, request.path)
        return _error(500, "internal error (see the log)")


@web.middleware
async def _access(request: web.Request, handler: Any) -> web.StreamResponse:
    policy = request.app[POLICY]
    refused = policy.refusal(request.method, request.path, request.headers.get("Host"), request.headers.get("Origin"),
                             presented_token(request.headers.get("Authorization"), request.query.get("token")))
    if refused is not None:
        return _error(*refused)
    response = await handler(request)
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


async def _body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ConsoleError(413, f"request body too large (at most {MAX_BODY} bytes)")
    raw = await request.read()
    if not raw.strip():
        return {}
    ctype = request.content_type
    if ctype != "application/json":
        raise ConsoleError(415, f"the body must be JSON (Content-Type: application/json), got {ctype}")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConsoleError(400, f"the body is not valid JSON ({type(exc).__name__} at {getattr(exc, 'pos', '?')})") \
            from None
    if not isinstance(data, dict):
        raise ConsoleError(400, f"the body must be a JSON object, got {type(data).__name__}")
    return data


def _only(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(body) - allowed
    if unknown:
        raise ConsoleError(400, f"unknown key(s): {', '.join(sorted(map(str, unknown)))}; "
                                f"expected: {', '.join(sorted(allowed)) or 'none'}")


def _meter(text: str) -> MeterId:
    try:
        return MeterId.parse(text)
    except ValueError as exc:
        raise ConsoleError(400, f"malformed meter ID {text!r}: {exc}") from None


# --- common ---------------------------------------------------------------------------------------------


async def _index(request: web.Request) -> web.Response:
    return web.Response(body=_static_file("index.html"), content_type="text/html", charset="utf-8")


async def _static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in _STATIC:
        raise ConsoleError(404, f"no static file {name!r}")
    return web.Response(body=_static_file(name), content_type=_STATIC[name], charset="utf-8")


def _static_file(name: str) -> bytes:
    return resources.files("bab.web").joinpath("static", name).read_bytes()


async def _api_index(request: web.Request) -> web.Response:
    roles = _roles(request.app)
    return web.json_response({"endpoints": [{"method": m, "path": p, "doc": d} for m, p, r, d in ENDPOINTS
                                            if r == "any" or r in roles]})


def _roles(app: web.Application) -> list[str]:
    return [r for r, k in (("gateway", GATEWAY), ("adapter", ADAPTER)) if k in app]


async def _session(request: web.Request) -> web.Response:
    policy = request.app[POLICY]
    out: dict[str, Any] = {"roles": _roles(request.app), "token_configured": policy.token_configured}
    if not policy.token_configured:
        out["session_token"] = policy.session_token
    return web.json_response(out)


async def _events(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB]
    since_text = request.headers.get("Last-Event-ID") or request.query.get("since")
    since = None
    if since_text is not None:
        if not since_text.isdigit():
            raise ConsoleError(400, f"'since' / Last-Event-ID must be an event number, got {since_text!r}")
        since = int(since_text)
    kinds = frozenset(k for k in request.query.get("kinds", "").split(",") if k) or None
    sub = hub.subscribe(since=since, kinds=kinds)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                       "X-Accel-Buffering": "no"})
    try:
        await resp.prepare(request)
        await resp.write(b"retry: 2000\n\n")
        reported = 0
        while True:
            try:
                async with asyncio.timeout(KEEPALIVE):
                    event = await sub.queue.get()
            except TimeoutError:
                await resp.write(b": keep-alive\n\n")
                continue
            if sub.dropped != reported:
                reported = sub.dropped
                await resp.write(f"event: dropped\ndata: {{\"dropped\": {reported}}}\n\n".encode())
            await resp.write(event.sse())
            sub.delivered += 1
    except (ConnectionResetError, ConnectionError, RuntimeError):
        pass  # the client went away
    finally:
        hub.unsubscribe(sub)
    return resp


async def _recent(request: web.Request) -> web.Response:
    return web.json_response({"events": request.app[HUB].recent(200)}, dumps=_dumps)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=str)


# --- gateway ----------------------------------------------------------------------------------------------


def _gw(request: web.Request) -> GatewayConsole:
    return request.app[GATEWAY]


async def _participants(request: web.Request) -> web.Response:
    return web.json_response({"participants": _gw(request).participants()}, dumps=_dumps)


async def _participant(request: web.Request) -> web.Response:
    meter = _meter(request.match_info["meter"])
    return web.json_response(_gw(request).detail(meter.server_id), dumps=_dumps)


async def _gw_plot(request: web.Request) -> web.Response:
    meter = _meter(request.match_info["meter"])
    svg = _gw(request).plot(meter.server_id, request.match_info["plot"])
    return web.Response(text=svg, content_type="image/svg+xml")


async def _read(request: web.Request) -> web.Response:
    meter = _meter(request.match_info["meter"])
    body = await _body(request)
    _only(body, {"objects", "channel"})
    objects = object_requests(body["objects"]) if "objects" in body else None
    channel = body.get("channel", "auto")
    if not isinstance(channel, str):
        raise ConsoleError(400, "'channel' must be one of auto, plain, tls")
    result = await _gw(request).read(meter.server_id, objects, channel)
    return web.json_response(result, dumps=_dumps)


async def _profile(request: web.Request) -> web.Response:
    meter = _meter(request.match_info["meter"])
    body = await _body(request)
    _only(body, {"channel"})
    channel = body.get("channel", "auto")
    if not isinstance(channel, str):
        raise ConsoleError(400, "'channel' must be one of auto, plain, tls")
    return web.json_response(await _gw(request).read_profile(meter.server_id, channel), dumps=_dumps)


async def _pair(request: web.Request) -> web.Response:
    meter = _meter(request.match_info["meter"])
    body = await _body(request)
    _only(body, {"master_key"})
    key = body.pop("master_key", None)
    if not isinstance(key, str) or not _HEX32.fullmatch(key.strip()):
        raise ConsoleError(400, "'master_key' must be the meter's master key as 32 hex digits (16 bytes)")
    result = await _gw(request).pair(meter.server_id, bytes.fromhex(key.strip()))
    return web.json_response(result)


async def _crypto_reset(request: web.Request) -> web.Response:
    meter = _meter(request.match_info["meter"])
    body = await _body(request)
    _only(body, set())
    return web.json_response(await _gw(request).crypto_reset(meter.server_id))


async def _link(request: web.Request) -> web.Response:
    return web.json_response(_gw(request).link(), dumps=_dumps)


# --- adapter ----------------------------------------------------------------------------------------------


def _ad(request: web.Request) -> AdapterConsole:
    return request.app[ADAPTER]


async def _status(request: web.Request) -> web.Response:
    return web.json_response(_ad(request).status(), dumps=_dumps)


async def _adapter_meter(request: web.Request) -> web.Response:
    meter = _meter(request.match_info["meter"])
    return web.json_response(_ad(request).meter(str(meter)), dumps=_dumps)


async def _profile_svg(request: web.Request) -> web.Response:
    meter = _meter(request.match_info["meter"])
    obis = str(parse_obis(request.query.get("obis", "1-0:1.8.0*255")))
    return web.Response(text=_ad(request).profile_plot(str(meter), obis), content_type="image/svg+xml")


def _sim_meter(value: Any, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise ConsoleError(400, "'meter' must be a meter ID string such as '1BAB0012345678'")
    return str(_meter(value))


async def _sim_show(request: web.Request) -> web.Response:
    meter = request.query.get("meter")
    ad = _ad(request)
    ad.sim()  # 404 before any validation when there is no simulator
    return web.json_response(ad.sim_call("show", _sim_meter(meter, required=False)), dumps=_dumps)


async def _sim_post(request: web.Request) -> web.Response:
    ad = _ad(request)
    command = request.match_info["command"]
    ad.sim()
    body = await _body(request)
    if command == "value":
        _only(body, {"meter", "obis", "value"})
        value = body.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConsoleError(400, "'value' must be a number (or a decimal string)")
        result = ad.sim_call("set_value", _sim_meter(body.get("meter")), str(parse_obis(body.get("obis"))), value)
    elif command == "status":
        _only(body, {"meter", "bit", "on"})
        bit, on = body.get("bit"), body.get("on")
        if isinstance(bit, bool) or not isinstance(bit, int | str):
            raise ConsoleError(400, "'bit' must be a status bit number or name")
        if not isinstance(on, bool):
            raise ConsoleError(400, "'on' must be true or false")
        result = ad.sim_call("set_status", _sim_meter(body.get("meter")), bit, on)
    elif command == "fault":
        _only(body, {"meter", "kind", "params"})
        kind, params = body.get("kind"), body.get("params", {})
        if not isinstance(kind, str) or not kind:
            raise ConsoleError(400, "'kind' must name a fault")
        if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
            raise ConsoleError(400, "'params' must be a JSON object")
        result = ad.sim_call("fault", _sim_meter(body.get("meter")), kind, **params)
    elif command == "clear":
        _only(body, {"meter", "kind"})
        kind = body.get("kind")
        if kind is not None and not isinstance(kind, str):
            raise ConsoleError(400, "'kind' must name a fault (or be left out: all)")
        result = ad.sim_call("clear", _sim_meter(body.get("meter")), kind)
    elif command == "scenario":
        _only(body, {"scenario"})
        text = body.get("scenario")
        if not isinstance(text, str) or not text.strip():
            raise ConsoleError(400, "'scenario' must be a scenario (YAML text or a file path)")
        result = ad.sim_call("scenario", text)
    else:
        raise ConsoleError(404, f"no simulator command {command!r} (value, status, fault, clear, scenario)")
    return web.json_response(result, dumps=_dumps)


# --- application ------------------------------------------------------------------------------------------


def build_app(policy: AccessPolicy, *, gateway: GatewayConsole | None = None, adapter: AdapterConsole | None = None,
              hub: EventHub | None = None) -> web.Application:
    if gateway is None and adapter is None:
        raise ValueError("the web console needs a gateway or an adapter to show")
    hub = hub or (gateway.hub if gateway is not None else adapter.hub)  # type: ignore[union-attr]
    app = web.Application(middlewares=[_errors, _access], client_max_size=MAX_BODY)
    app[POLICY] = policy
    app[HUB] = hub
    r = app.router
    r.add_get("/", _index)
    r.add_get("/static/{name}", _static)
    r.add_get("/api", _api_index)
    r.add_get("/api/session", _session)
    r.add_get("/api/events", _events)
    r.add_get("/api/events/recent", _recent)
    if gateway is not None:
        app[GATEWAY] = gateway
        r.add_get("/api/gateway/participants", _participants)
        r.add_get("/api/gateway/participants/{meter}", _participant)
        r.add_get("/api/gateway/participants/{meter}/plots/{plot}.svg", _gw_plot)
        r.add_post("/api/gateway/participants/{meter}/read", _read)
        r.add_post("/api/gateway/participants/{meter}/profile", _profile)
        r.add_post("/api/gateway/participants/{meter}/pair", _pair)
        r.add_post("/api/gateway/participants/{meter}/crypto-reset", _crypto_reset)
        r.add_get("/api/gateway/link", _link)
    if adapter is not None:
        app[ADAPTER] = adapter
        r.add_get("/api/adapter/status", _status)
        r.add_get("/api/adapter/meters/{meter}", _adapter_meter)
        r.add_get("/api/adapter/meters/{meter}/profile.svg", _profile_svg)
        r.add_get("/api/adapter/sim", _sim_show)
        r.add_post("/api/adapter/sim/{command}", _sim_post)
    return app


class HttpServer:
    """Runs the web console on the running event loop: ``await start()`` ... ``await close()``."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.app, self.host, self.port = app, host, port
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        runner = web.AppRunner(self.app, access_log_class=_AccessLogger, handle_signals=False,
                               shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        if runner.addresses:
            self.port = runner.addresses[0][1]  # the port the OS chose for port 0
        if ADAPTER in self.app:
            self._tasks.append(asyncio.create_task(self.app[ADAPTER].run(), name="web status"))

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def serve(host: str, port: int, *, token: str | None = None, gateway: GatewayConsole | None = None,
                adapter: AdapterConsole | None = None) -> HttpServer:
    """Build and start the console (raises ListenError for a refused address, OSError when it cannot bind)."""
    policy = AccessPolicy(host, token)
    server = HttpServer(build_app(policy, gateway=gateway, adapter=adapter), host, port)
    await server.start()
    return server
