"""The ``bab`` command line: run the adapter, the demo, the software gateway, check configs, host a bus."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bab import __version__
from bab.schema import ConfigError

log = logging.getLogger("bab")


def setup_logging(level: str = "info") -> None:
    from bab.logs import setup_logging as setup

    setup(level)


def _run_async(main: Callable[[], Awaitable[int]]) -> int:
    """Run ``main`` with SIGINT/SIGTERM cancelling it cleanly; returns its exit code."""

    async def wrapper() -> int:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, task.cancel)
        try:
            return await main()
        except asyncio.CancelledError:
            return 0

    return asyncio.run(wrapper())


# --- bab config ---------------------------------------------------------------------------------------------


def cmd_config(args: argparse.Namespace) -> int:
    from bab import config

    if args.action == "reference":
        print(config.reference())
        return 0
    try:
        cfg = config.load(args.file)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.file}: OK ({len(cfg.meters)} meter(s) on {cfg.lmn.port})")
    return 0


# --- bab run ------------------------------------------------------------------------------------------------


EX_CONFIG = 78  # sysexits.h: the unit's RestartPreventExitStatus, a broken config is not retried


def cmd_run(args: argparse.Namespace) -> int:
    import faulthandler

    from bab import config
    from bab.daemon import Daemon
    from bab.sdnotify import Notifier, watchdog_keepalive
    from bab.status import StatusServer, StatusServerError
    from bab.transport import TransportError
    from legacy_drivers.api import DriverNotFound

    with contextlib.suppress(io.UnsupportedOperation, ValueError):  # no real stderr (e.g. under pytest)
        faulthandler.enable()  # the watchdog's SIGABRT then leaves a traceback of a hung loop in the journal
    try:
        cfg = config.load(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EX_CONFIG
    setup_logging(args.log_level or cfg.log_level)
    notifier = Notifier()

    from bab.security import startup_problems

    problems = startup_problems(cfg)
    for p in problems:
        log.error("refusing to start: %s", p)
    if problems:
        return EX_CONFIG
    http = None
    if args.http or cfg.http.listen:
        try:
            http = _http_settings(args.http or cfg.http.listen, args.http_token_file or cfg.http.token_file)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EX_CONFIG

    async def main() -> int:
        daemon = Daemon(cfg)
        try:
            daemon.build()
        except (DriverNotFound, OSError, ValueError) as exc:
            log.error("cannot set up the meters: %s", exc)
            return EX_CONFIG
        status = StatusServer(daemon.status, cfg.status_socket, commands=daemon.handle_request)
        try:
            await status.start()
        except StatusServerError as exc:
            log.warning("no status socket: %s", exc)
            status = None
        web = None
        if http is not None:
            from bab.web.adapter_console import AdapterConsole

            # Like the status socket: the meters are served even when the console cannot listen.
            web = await _start_http(http, adapter=AdapterConsole(daemon))
        watchdog = asyncio.create_task(watchdog_keepalive(notifier))

        def ready() -> None:
            # Ready once the meters run, whether or not the LMN port is there yet: a missing USB-RS485 adapter
            # is waited for (and reported), not a failed start that systemd would restart in a loop.
            notifier.ready()

        try:
            await daemon.run(ready=ready, on_port=notifier.status)
        except (TransportError, ConnectionError) as exc:
            log.error("%s", exc)
            return 1
        except asyncio.CancelledError:
            notifier.stopping()
            log.info("stopping")
            return 0
        finally:
            watchdog.cancel()
            if status is not None:
                await status.close()
            if web is not None:
                await web.close()
        return 0

    return _run_async(main)


def _http_settings(listen: str, token_file: str | None) -> tuple[str, int, str | None]:
    """Checks ``--http`` / ``http:`` and that aiohttp is there (imported only now); raises ValueError."""
    from bab.web.launch import http_settings, require_aiohttp

    settings = http_settings(listen, token_file)
    require_aiohttp()
    return settings


async def _start_http(settings: tuple[str, int, str | None], **consoles):  # type: ignore[no-untyped-def]
    """Start the web console; None (after saying why) when it cannot listen."""
    from bab.web.server import serve

    host, port, token = settings
    try:
        server = await serve(host, port, token=token, **consoles)
    except OSError as exc:
        print(f"error: no web console: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return None
    print(f"web console: {server.url}", flush=True)
    log.info("web console on %s", server.url)
    return server


def cmd_status(args: argparse.Namespace) -> int:
    from bab.status import status_command

    path = args.socket
    if path is None and args.config:
        from bab import config

        try:
            path = str(config.load(args.config).status_socket)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    return status_command(path, args.json)


# --- bab demo -----------------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from bab import config
    from bab.daemon import Daemon
    from bab.gateway.app import SoftwareGateway
    from bab.gateway.readers import default_reader
    from bab.lmn.asyncbus import AsyncBus, BusLink
    from bab.lmn.node import LinkNode
    from bab.lmn.runner import NodeRunner

    setup_logging(args.log_level)
    http = None
    if args.http:
        try:
            http = _http_settings(args.http, args.http_token_file)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    cfg = config.loads(config.DEMO_CONFIG, "<embedded demo config>")
    state = Path(tempfile.mkdtemp(prefix="bab-demo-"))
    cfg = config.Config(cfg.lmn, cfg.meters, state, state / "status.sock", cfg.log_level, cfg.source)
    t0 = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - t0:7.2f}s] gateway: {text}", flush=True)

    async def main() -> int:
        bus = AsyncBus()
        daemon = Daemon(cfg)
        daemon.build()
        console = None
        if http is not None:
            from bab.web.gateway_console import GatewayConsole

            console = GatewayConsole()
        hooks = {"on_result": console.on_result} if console else {}
        reader = default_reader(say, **hooks)
        if not args.plain:
            from bab.tls import wolfssl_binding

            if wolfssl_binding.available():
                # Commissioning as a gateway does it: the meter's master key is known to the gateway, which
                # pairs it (SYM, selector 6) and from then on reads it through TLS (selector 1).
                from bab.gateway.readers import secure_reader
                from bab.gateway.security import GatewaySecurity

                mk = os.urandom(16)
                for m in daemon.meters:
                    m.security.store.set_master_key(mk)
                security = GatewaySecurity(state / "gateway")
                if console is not None:
                    console.security = security
                    hooks["on_outcome"] = console.on_outcome
                reader = secure_reader(say, security, {m.server_id: mk for m in daemon.meters}, **hooks)
            else:
                print("(wolfSSL binding not built: reading in plain SML; run deploy/setup.sh to build it)")
        status = None
        if args.socket:  # bab status / bab sim against the demo
            from bab.status import StatusServer, StatusServerError

            status = StatusServer(daemon.status, args.socket, commands=daemon.handle_request)
            try:
                await status.start()
            except StatusServerError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
        if args.scenario:
            from bab.sim.control import SimCommandError

            try:
                started = daemon.sim.scenario(args.scenario)
            except SimCommandError as exc:
                print(f"error: {exc}", file=sys.stderr)
                if status is not None:
                    await status.close()
                return 2
            print(f"scenario {started['scenario']}: {started['steps']} steps over {started['duration_s']:g} s",
                  flush=True)
        gateway = SoftwareGateway(cfg.lmn.gateway_timing(), reader=reader, poll_interval=args.poll_interval,
                                  report=say, on_event=console.on_station_event if console else None)
        node = LinkNode([gateway])
        web = None
        if console is not None:
            from bab.web.adapter_console import AdapterConsole

            console.attach(gateway)
            node = LinkNode([console])
            console.receiver_counters = node.receiver.counters
        gw_runner = NodeRunner(node, lambda data: gw_port.write(data))
        gw_port = bus.attach("gateway", gw_runner.feed)
        if console is not None:
            console.poke = gw_runner.poke
            web = await _start_http(http, gateway=console, adapter=AdapterConsole(daemon, hub=console.hub))
            if web is None:
                return 1
        link = BusLink(bus, "bab")
        print(f"BAB demo: {len(cfg.meters)} simulated meter(s) ({', '.join(str(m.id) for m in cfg.meters)}) "
              "and the software gateway on an in-memory RS-485 bus at 921600 bit/s. Ctrl-C stops.", flush=True)
        tasks = [asyncio.create_task(daemon.run(link)), asyncio.create_task(gw_runner.run())]
        try:
            if args.duration:
                await asyncio.sleep(args.duration)
            else:
                await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if web is not None:
                await web.close()
            if status is not None:
                await status.close()
        print(f"demo finished: {len(gateway.station.participants)} participant(s), {gateway.polls_done} poll(s)")
        return 0 if gateway.station.participants else 1

    return _run_async(main)


# --- bab gateway --------------------------------------------------------------------------------------------


def cmd_gateway(args: argparse.Namespace) -> int:
    from bab.gateway.app import SoftwareGateway
    from bab.hdlc.timing import GatewayTiming
    from bab.lmn.node import LinkNode
    from bab.lmn.runner import NodeRunner
    from bab.transport import PortTransport, TransportError

    setup_logging(args.log_level)
    t0 = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - t0:8.2f}s] {text}", flush=True)

    console = None
    try:
        if args.http:
            http = _http_settings(args.http, args.http_token_file)
            from bab.web.gateway_console import GatewayConsole

            console = GatewayConsole()
        reader = _gateway_reader(args, say, console)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    async def main() -> int:
        timing = GatewayTiming(broadcast_period=args.broadcast_period, check_period=args.check_period)
        gateway = SoftwareGateway(timing, reader=reader, poll_interval=args.poll_interval, report=say,
                                  on_event=console.on_station_event if console else None)
        port = PortTransport(args.port, args.baudrate)
        node = LinkNode([gateway])
        if console is not None:
            console.attach(gateway)
            node = LinkNode([console])
            console.receiver_counters = node.receiver.counters
        runner = NodeRunner(node, port.write)
        web = None
        if console is not None:
            console.poke = runner.poke
            web = await _start_http(http, gateway=console)
            if web is None:
                return 1
        lost: asyncio.Future = asyncio.get_running_loop().create_future()
        try:
            port.open(runner.feed, lambda exc: lost.done() or lost.set_result(exc))
        except TransportError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        say(f"software gateway on {args.port} at {args.baudrate} bit/s")
        task = asyncio.create_task(runner.run())
        try:
            if args.duration:
                done, _ = await asyncio.wait([lost], timeout=args.duration)
            else:
                await lost
                done = {lost}
            if done:
                print(f"error: port lost: {lost.result()}", file=sys.stderr)
                return 1
            return 0
        finally:
            task.cancel()
            port.close()
            if web is not None:
                await web.close()

    return _run_async(main)


def _gateway_reader(args: argparse.Namespace, say: Callable[[str], None], console=None):  # type: ignore[no-untyped-def]
    """The reader of `bab gateway`: plain SML, or pairing + TLS for meters whose master key is given (with the web
    console: always able to pair, since a master key may come in over HTTP)."""
    from bab.gateway.readers import default_reader, secure_reader
    from bab.meter_id import MeterId
    from bab.sym import read_master_key

    if not args.master_key and not args.crypto_reset and console is None:
        return default_reader(say)
    from bab.gateway.security import GatewaySecurity

    keys = {}
    for item in args.master_key:
        meter, sep, path = item.partition("=")
        if not sep:
            raise ValueError(f"--master-key takes METER_ID=FILE, got {item!r}")
        keys[MeterId.parse(meter).server_id] = read_master_key(path)
    resets = [MeterId.parse(m).server_id for m in args.crypto_reset]
    from bab.sym.profile2015 import Profile2015

    profiles = {MeterId.parse(m).server_id: Profile2015(emh_bug=True) for m in args.emh_bug}
    security = GatewaySecurity(args.state_dir, sym_profiles=profiles, inject=args.sym_route == "inject")
    if console is None:
        return secure_reader(say, security, keys, resets)
    console.security = security
    return secure_reader(say, security, keys, resets, on_result=console.on_result, on_outcome=console.on_outcome)


# --- bab bridge ---------------------------------------------------------------------------------------------


def cmd_bridge(args: argparse.Namespace) -> int:
    from bab.gateway.app import SoftwareGateway
    from bab.gateway.bridge import SelectorBridge
    from bab.gateway.bridge_server import serve_bridge
    from bab.hdlc.timing import GatewayTiming
    from bab.lmn.node import LinkNode
    from bab.lmn.runner import NodeRunner
    from bab.meter_id import MeterId
    from bab.transport import PortTransport, TransportError

    setup_logging(args.log_level)
    t0 = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - t0:8.2f}s] {text}", flush=True)

    try:
        meter = MeterId.parse(args.meter).server_id if args.meter else None
        host, sep, port_text = args.listen.rpartition(":")
        if not sep or not port_text.isdigit():
            raise ValueError(f"--listen takes HOST:PORT, got {args.listen!r}")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    async def main() -> int:
        timing = GatewayTiming(broadcast_period=args.broadcast_period, check_period=args.check_period)
        gateway = SoftwareGateway(timing, report=say, report_exchanges=False,
                                  conversation_timeout=args.max_connection_time)
        bridge = SelectorBridge(gateway, meter=meter, connect_timeout=args.connect_timeout, report=say)
        port = PortTransport(args.port, args.baudrate)
        runner = NodeRunner(LinkNode([bridge]), port.write)
        lost: asyncio.Future = asyncio.get_running_loop().create_future()
        try:
            port.open(runner.feed, lambda exc: lost.done() or lost.set_result(exc))
        except TransportError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        task = asyncio.create_task(runner.run())
        try:
            server, _ = await serve_bridge(bridge, runner.poke, host or "127.0.0.1", int(port_text), report=say)
        except OSError as exc:
            print(f"error: cannot listen on {args.listen}: {exc}", file=sys.stderr)
            task.cancel()
            port.close()
            return 1
        addr = server.sockets[0].getsockname()
        say(f"bridge: TCP {addr[0]}:{addr[1]} -> selector 1 of "
            f"{args.meter or 'the meter on the bus'} via the software gateway on {args.port}")
        try:
            async with server:
                if args.duration:
                    done, _ = await asyncio.wait([lost], timeout=args.duration)
                else:
                    await lost
                    done = {lost}
            if done:
                print(f"error: port lost: {lost.result()}", file=sys.stderr)
                return 1
            return 0
        finally:
            task.cancel()
            port.close()

    return _run_async(main)


# --- bab bus ------------------------------------------------------------------------------------------------


def cmd_bus(args: argparse.Namespace) -> int:
    import random

    from bab.lmn.bus import VirtualBus
    from bab.lmn.hub import serve_bus

    host, _, port = args.listen.rpartition(":")
    setup_logging(args.log_level)

    async def main() -> int:
        bus = VirtualBus(rng=random.Random(), bit_error_rate=args.bit_error_rate, drop_rate=args.drop_rate)
        server = await serve_bus(host or "127.0.0.1", int(port), bus)
        addr = server.sockets[0].getsockname()
        print(f"virtual RS-485 bus listening on socket://{addr[0]}:{addr[1]}", flush=True)
        async with server:
            await server.serve_forever()
        return 0

    return _run_async(main)


# --- main ---------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bab", description="BAB: a legacy meter presented as a wired-LMN meter.")
    p.add_argument("--version", action="version", version=f"bab {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the adapter (foreground; logs to stderr/journald)")
    run.add_argument("--config", "-c", default=os.environ.get("BAB_CONFIG", "/etc/bab/bab.yaml"))
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    run.add_argument("--http", metavar="HOST:PORT", help="serve the web console and HTTP API here (docs/http-api.md)")
    run.add_argument("--http-token-file", metavar="FILE",
                    help="access token for the web console (required for a non-loopback --http address)")
    run.set_defaults(func=cmd_run)

    st = sub.add_parser("status", help="show the running daemon's state (LMN, drivers, readings, errors)")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.add_argument("--socket", help="status socket (default: $BAB_STATUS_SOCKET or /run/bab/status.sock)")
    st.add_argument("--config", "-c", help="take the socket path from this config file")
    st.set_defaults(func=cmd_status)

    demo = sub.add_parser("demo", help="adapter + software gateway + simulated meter on an in-memory bus")
    demo.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: Ctrl-C)")
    demo.add_argument("--poll-interval", type=float, default=2.0)
    demo.add_argument("--plain", action="store_true", help="no pairing/TLS: read over plain SML (selector 3)")
    demo.add_argument("--scenario", help="run this lab-meter scenario file against the demo meter (docs/simulator.md)")
    demo.add_argument("--socket", help="serve the status socket here, for bab status and bab sim --socket")
    demo.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    demo.add_argument("--http", metavar="HOST:PORT", help="serve the web console and HTTP API here (docs/http-api.md)")
    demo.add_argument("--http-token-file", metavar="FILE",
                    help="access token for the web console (required for a non-loopback --http address)")
    demo.set_defaults(func=cmd_demo)

    gw = sub.add_parser("gateway", help="the software gateway on a real port or URL")
    gw.add_argument("--port", required=True, help="device path or pyserial URL")
    gw.add_argument("--baudrate", type=int, default=921600)
    gw.add_argument("--poll-interval", type=float, default=5.0)
    gw.add_argument("--broadcast-period", type=float, default=14.0)
    gw.add_argument("--check-period", type=float, default=15.0)
    gw.add_argument("--master-key", action="append", default=[], metavar="METER_ID=FILE",
                    help="pair this meter with its master key (read from FILE), then read it over TLS")
    gw.add_argument("--crypto-reset", action="append", default=[], metavar="METER_ID",
                    help="send a crypto-reset (over TLS) to this paired meter once")
    gw.add_argument("--sym-route", choices=["inject", "meter-key"], default="inject",
                    help="pairing: inject a key and certificate generated for the meter, as the reference gateway "
                         "does (default), or take the meter's own certificate (BAB extension)")
    gw.add_argument("--emh-bug", action="append", default=[], metavar="METER_ID",
                    help="pair this meter with the 2015 EMH firmware variant of SYM (the reference's EMHBUG=1)")
    gw.add_argument("--state-dir", default=os.path.expanduser("~/.local/state/bab-gateway"),
                    help="the gateway's TLS key/certificate and the certificates of paired meters")
    gw.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: Ctrl-C)")
    gw.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    gw.add_argument("--http", metavar="HOST:PORT", help="serve the web console and HTTP API here (docs/http-api.md)")
    gw.add_argument("--http-token-file", metavar="FILE",
                    help="access token for the web console (required for a non-loopback --http address)")
    gw.set_defaults(func=cmd_gateway)

    br = sub.add_parser("bridge", help="a meter's TLS channel (selector 1) as a local TCP port, for TLS tools")
    br.add_argument("--port", required=True, help="LMN port: device path or pyserial URL")
    br.add_argument("--listen", default="127.0.0.1:4433", help="HOST:PORT to listen on (port 0 picks a free one)")
    br.add_argument("--meter", help="meter ID to bridge to (default: the only meter on the bus)")
    br.add_argument("--baudrate", type=int, default=921600)
    br.add_argument("--broadcast-period", type=float, default=14.0)
    br.add_argument("--check-period", type=float, default=15.0)
    br.add_argument("--connect-timeout", type=float, default=30.0,
                    help="how long a TCP connection waits for the meter to register (seconds)")
    br.add_argument("--max-connection-time", type=float, default=3600.0,
                    help="longest HDLC connection the gateway keeps open for one TCP connection (seconds)")
    br.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: Ctrl-C)")
    br.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    br.set_defaults(func=cmd_bridge)

    from bab.sim.cli import add_parser as add_sim_parser

    add_sim_parser(sub)

    cfg = sub.add_parser("config", help="check a configuration file or print the reference")
    cfg.add_argument("action", choices=["check", "reference"])
    cfg.add_argument("file", nargs="?")
    cfg.set_defaults(func=cmd_config)

    from bab.keys_cli import add_keys_parser

    add_keys_parser(sub)

    from bab.conformance.cli import add_parser as add_conformance

    add_conformance(sub)

    bus = sub.add_parser("bus", help="a virtual RS-485 bus over TCP for several processes (tests, labs)")
    bus.add_argument("--listen", default="127.0.0.1:7485", help="HOST:PORT (port 0 picks a free one)")
    bus.add_argument("--bit-error-rate", type=float, default=0.0)
    bus.add_argument("--drop-rate", type=float, default=0.0)
    bus.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    bus.set_defaults(func=cmd_bus)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "config" and args.action == "check" and not args.file:
        print("error: bab config check FILE", file=sys.stderr)
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
