"""Parts of the web console without a server: the event hub, the plots, object specs, access rules, config."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from bab import config
from bab.schema import ConfigError
from bab.web.events import EventHub
from bab.web.objects import ObjectSpecError, object_request, object_requests
from bab.web.security import AccessPolicy, ListenError, is_loopback, parse_listen, presented_token
from bab.web.svg import plot


async def test_a_full_client_queue_drops_and_counts_and_publish_never_waits():
    hub = EventHub(queue_size=4, history=10)
    slow = hub.subscribe()
    fast = hub.subscribe(kinds=frozenset({"reading"}))
    for i in range(10):
        hub.publish("reading" if i % 2 else "presence", n=i)
    assert slow.queue.qsize() == 4 and slow.dropped == 6
    assert fast.queue.qsize() == 4 and fast.dropped == 1  # 5 readings, room for 4
    assert hub.counters.dropped == 7 and hub.counters.published == 10
    assert [slow.queue.get_nowait().data["n"] for _ in range(4)] == [0, 1, 2, 3]
    late = hub.subscribe(since=7)
    assert [late.queue.get_nowait().seq for _ in range(late.queue.qsize())] == [8, 9, 10]
    hub.unsubscribe(slow)
    assert hub.stats()["subscribers"] == 2
    assert b"event: reading\n" in hub.history[-1].sse() and hub.history[-1].sse().endswith(b"\n\n")


def test_plot_draws_points_band_and_escapes_text():
    svg = plot([(0, 1.0), (1, 2.0), (2, float("nan"))], title="<script>x</script>", x_label="s", y_label="ms",
               style="dots", band=(0.5, 5.5), band_label="reply window")
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert svg.count('class="series"') == 2 and 'class="band"' in svg and "reply window" in svg
    empty = plot([], title="t", x_label="x", y_label="y", empty_text="nothing & more")
    assert 'class="empty"' in empty and "nothing &amp; more" in empty and 'class="series"' not in empty
    with pytest.raises(ValueError):
        plot([], title="t", x_label="x", y_label="y", style="pie")


def test_object_specs():
    r = object_request("1-0:1.8.0*255")
    assert r.name.class_id == 0x8002 and r.attributes == (2, 3, 4, 5)
    assert object_request("1-0:16.7.0*255").name.class_id == 3
    assert object_request("1-0:96.1.0*255").attributes == (2,)
    assert object_request({"obis": "1-0:0.2.0*0", "class": 1, "attributes": [2]}).name.class_id == 1
    for bad, text in ([], "non-empty"), (["1-0:1.8.0*255"] * 33, "at most"), ([{"obis": "1-0:1.8.0*255", "x": 1}],
                                                                              "unknown key"), \
            ([{"obis": "1-0:1.8.0*255", "attributes": [0]}], "attributes"), ([True], "OBIS string"):
        with pytest.raises(ObjectSpecError, match=text):
            object_requests(bad)


def test_access_rules():
    assert parse_listen("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_listen(":9000") == ("127.0.0.1", 9000)
    assert parse_listen("[::1]:80") == ("::1", 80)
    for bad in ("8080", "host:", "h:99999", "h:x"):
        with pytest.raises(ListenError):
            parse_listen(bad)
    assert is_loopback("localhost") and is_loopback("::1") and is_loopback("127.1.2.3")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert presented_token("Bearer abc", None) == "abc" and presented_token(None, "q") == "q"
    assert presented_token("Basic abc", None) is None
    p = AccessPolicy()
    assert p.refusal("GET", "/api/gateway/participants", "127.0.0.1:8080", None, None) is None
    assert p.refusal("POST", "/api/x", "127.0.0.1:8080", None, None)[0] == 401
    assert p.refusal("POST", "/api/x", "localhost:8080", "http://localhost:8080", p.session_token) is None
    assert p.refusal("GET", "/", "attacker.example", None, None) is None  # static page: no data
    assert p.refusal("GET", "/api/session", "attacker.example", None, None)[0] == 403
    t = AccessPolicy("0.0.0.0", "0123456789abcdef0123")
    assert t.refusal("GET", "/api/session", "10.0.0.1:8080", None, None)[0] == 401
    assert t.refusal("GET", "/api/session", "10.0.0.1:8080", None, "0123456789abcdef0123") is None


def test_http_section_of_the_config(tmp_path):
    base = config.DEMO_CONFIG
    assert config.loads(base).http.listen is None
    c = config.loads(base + "http:\n  listen: 127.0.0.1:8080\n")
    assert (c.http.listen, c.http.token_file) == ("127.0.0.1:8080", None)
    with pytest.raises(ConfigError, match=r":12: http.token_file: .*needs an access token"):
        config.loads(base + "http:\n  listen: 0.0.0.0:8080\n")
    with pytest.raises(ConfigError, match="http.listen: expected HOST:PORT"):
        config.loads(base + "http:\n  listen: everywhere\n")
    with pytest.raises(ConfigError, match="unknown key"):
        config.loads(base + "http:\n  listen: 127.0.0.1:1\n  tokn: x\n")
    assert config.loads(base + "http:\n  listen: 0.0.0.0:8080\n  token_file: /etc/bab/http.token\n").http.token_file


def _no_aiohttp_after(argv: list[str], tmp_path) -> subprocess.CompletedProcess:
    script = textwrap.dedent(f"""
        import sys
        from bab import cli
        rc = cli.main({argv!r})
        web = sorted(m for m in sys.modules if m == "aiohttp" or m.startswith(("aiohttp.", "bab.web.server")))
        print("RC", rc, "WEB", web)
    """)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path)


def test_without_http_neither_bab_run_nor_bab_gateway_imports_aiohttp(tmp_path):
    cfg = tmp_path / "bab.yaml"
    cfg.write_text(f"""lmn: {{port: "loop://"}}
state_dir: {tmp_path / 'state'}
status_socket: {tmp_path / 'status.sock'}
meters:
  - id: "1BAB0000000005"
    driver: {{type: simulated}}
""")
    gw = _no_aiohttp_after(["gateway", "--port", "loop://", "--duration", "0.5", "--state-dir",
                            str(tmp_path / "gw")], tmp_path)
    assert "RC 0 WEB []" in gw.stdout, gw.stdout + gw.stderr
    # bab run serves until cancelled: stop it from inside after a moment with SIGINT
    script = textwrap.dedent(f"""
        import os, signal, sys, threading
        from bab import cli
        threading.Timer(1.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        rc = cli.main(["run", "--config", {str(cfg)!r}])
        web = sorted(m for m in sys.modules if m == "aiohttp" or m.startswith(("aiohttp.", "bab.web.server")))
        print("RC", rc, "WEB", web)
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert "RC 0 WEB []" in run.stdout, run.stdout + run.stderr
    assert "LMN port loop:// open" in run.stderr
    # ... and with --http it does
    script = script.replace('"--config"', '"--http", "127.0.0.1:0", "--config"')
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert "web console: http://127.0.0.1:" in run.stdout and "'aiohttp'" in run.stdout, run.stdout + run.stderr


def test_cli_refuses_a_non_loopback_http_address_without_token(tmp_path):
    gw = subprocess.run([sys.executable, "-m", "bab.cli", "gateway", "--port", "loop://", "--http", "0.0.0.0:0",
                         "--duration", "0.1"], capture_output=True, text=True, timeout=60)
    assert gw.returncode == 2 and "needs an access token" in gw.stderr
    short = tmp_path / "token"
    short.write_text("abc\n")
    gw = subprocess.run([sys.executable, "-m", "bab.cli", "gateway", "--port", "loop://", "--http", "0.0.0.0:0",
                         "--http-token-file", str(short), "--duration", "0.1"], capture_output=True, text=True,
                        timeout=60)
    assert gw.returncode == 2 and "at least 16 characters" in gw.stderr


def test_sim_command_errors_are_recognised_by_class_name():
    from bab.web.adapter_console import is_sim_command_error

    class SimCommandError(ValueError):
        pass

    class Specific(SimCommandError):
        pass

    assert is_sim_command_error(SimCommandError("x")) and is_sim_command_error(Specific("y"))
    assert not is_sim_command_error(ValueError("z"))


def test_every_endpoint_is_documented_with_a_curl_example():
    from pathlib import Path

    from bab.web.server import ENDPOINTS

    doc = (Path(__file__).resolve().parents[1] / "docs" / "http-api.md").read_text()
    sections = doc.split("\n#")
    for method, path, _, _ in ENDPOINTS:
        section = next((s for s in sections if s.lstrip("# ").startswith(f"`{method} {path}`")), None)
        assert section is not None, f"{method} {path} has no section in docs/http-api.md"
        example = path.split("{", 1)[0]
        assert "curl" in section and example in section, f"{method} {path}: no curl example"


def test_the_page_loads_nothing_from_elsewhere():
    from importlib import resources

    for name in ("index.html", "app.js", "style.css"):
        text = resources.files("bab.web").joinpath("static", name).read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, name


def test_tick_labels_resolve_small_steps():
    import re

    svg = plot([(0, 12345.6829), (1, 12345.6831)], title="t", x_label="x", y_label="kWh")
    labels = re.findall(r'text-anchor="end">([0-9.]+)</text>', svg)
    assert len(labels) >= 3 and len(set(labels)) == len(labels)  # distinct, not 12345.7 three times


def test_the_gateway_console_keeps_a_bounded_number_of_dropped_meters():
    from bab.hdlc import events as ev
    from bab.meter_id import MeterId
    from bab.web.gateway_console import MAX_DROPPED, GatewayConsole

    console = GatewayConsole(clock=iter(range(10**6)).__next__)
    for i in range(MAX_DROPPED * 3):
        sid = MeterId.parse(f"1BAB{i:010d}").server_id
        console.on_station_event(ev.ParticipantRegistered(5, sid))
        console.on_station_event(ev.ParticipantDropped(5, sid, "silent in the presence check"))
    assert len(console.meters) == MAX_DROPPED
    newest = MeterId.parse(f"1BAB{MAX_DROPPED * 3 - 1:010d}").server_id
    assert console.meters[newest].state == "dropped"
    kinds = [e.kind for e in console.hub.history]
    assert kinds[-2:] == ["registration", "dropped"]


def test_bab_run_with_http_but_without_aiohttp_refuses_to_start(tmp_path):
    """docs/installing.md: on a Debian-package install (no aiohttp) `http:` is a configuration error, exit 78
    (EX_CONFIG, which bab.service does not restart), naming what is missing."""
    cfg = tmp_path / "bab.yaml"
    cfg.write_text(f"""lmn: {{port: "loop://"}}
state_dir: {tmp_path / 'state'}
status_socket: {tmp_path / 'status.sock'}
http: {{listen: "127.0.0.1:0"}}
meters:
  - id: "1BAB0000000005"
    driver: {{type: simulated}}
""")
    script = textwrap.dedent(f"""
        import sys
        sys.modules["aiohttp"] = None  # as if not installed: importing it raises ImportError
        from bab import cli
        print("RC", cli.main(["run", "--config", {str(cfg)!r}]))
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert "RC 78" in run.stdout, run.stdout + run.stderr
    assert "needs aiohttp" in run.stderr
