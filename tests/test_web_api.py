"""The web console's HTTP API against a live BAB and software gateway on an in-memory bus (issue 15)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

pytest.importorskip("aiohttp")

from web_helpers import METER, RecordingSim, WebBench, random_key  # noqa: E402

from bab.tls import wolfssl_binding  # noqa: E402

needs_tls = pytest.mark.skipif(not wolfssl_binding.available(), reason="wolfSSL binding not built")


@pytest.fixture
async def bench(tmp_path):
    b = await WebBench(tmp_path).start()
    yield b
    await b.close()


async def test_participants_read_now_and_detail(bench):
    p = await bench.registered()
    assert p["id"] == METER and p["state"] == "registered" and 1 <= p["address"] <= 0x7D and not p["paired"]
    status, r = await bench.post(f"/api/gateway/participants/{METER}/read",
                                 {"objects": ["1-0:1.8.0*255", "1-0:16.7.0*255"], "channel": "plain"})
    assert status == 200, r
    assert r["ok"] and r["channel"] == "plain"
    values = {x["obis"]: (x["value"], x["unit"]) for x in r["readings"]}
    assert values["1-0:16.7.0*255"] == ("432.1", "W")
    assert values["1-0:1.8.0*255"][1] == "kWh" and float(values["1-0:1.8.0*255"][0]) >= 12345.678
    status, d = await bench.get(f"/api/gateway/participants/{METER}")
    assert status == 200
    assert d["counters"]["reads_ok"] >= 1 and any(x["obis"] == "1-0:1.8.0*255" for x in d["readings"])
    assert d["diagnostics"]["slot_window_ms"] == {"start": 0.5, "end": 5.5, "slot_period": 10.0}
    # the registration's slot reply and the unicast answers were timed
    assert d["diagnostics"]["slot_offsets"] and d["diagnostics"]["latency_ms"]
    assert all(s["offset_ms"] > 0 for s in d["diagnostics"]["slot_offsets"])
    for plot in ("slots", "latency", "energy"):
        status, svg = await bench.get(f"/api/gateway/participants/{METER}/plots/{plot}.svg")
        assert status == 200 and svg.startswith("<svg") and 'class="series"' in svg, plot
    # the load profile, read with GetProfileList: a few captures at the next period ends
    model = bench.daemon.meters[0].sml.model
    loop_now, wall = asyncio.get_running_loop().time(), time.time()
    for k in range(1, 4):
        model.tick(loop_now, wall + k * model.profile.period)
    served = list(model.profile.entries)
    assert len(served) >= 3
    status, prof = await bench.post(f"/api/gateway/participants/{METER}/profile", {})
    assert status == 200, prof
    assert prof["ok"] and len(prof["periods"]) == len(served)
    assert [p["time"] for p in prof["periods"]] == [e.time for e in served]
    last = prof["periods"][-1]["values"]["1-0:1.8.0*255"]
    assert last["unit"] == "kWh" and float(last["value"]) >= 12345.678
    status, svg = await bench.get(f"/api/gateway/participants/{METER}/plots/profile.svg")
    assert svg.count('<circle') == len(served)
    _, d = await bench.get(f"/api/gateway/participants/{METER}")
    assert len(d["profile"]["periods"]) == len(served)
    status, link = await bench.get("/api/gateway/link")
    assert status == 200 and link["gateway"]["registrations"] == 1 and "bad_fcs" in link["receiver"]


async def test_presence_results_and_events(bench):
    await bench.registered()
    sub = bench.console.hub.subscribe(since=0)
    kinds: list[str] = []

    async def presence_seen() -> bool:
        while not sub.queue.empty():
            kinds.append((e := sub.queue.get_nowait()).kind)
            if e.kind == "presence":
                assert e.data["results"][0]["meter"] == METER and e.data["results"][0]["answered"]
        return "presence" in kinds and "reading" in kinds
    assert await bench.wait_for(presence_seen, 15), kinds
    assert "registration" in kinds
    _, d = await bench.get(f"/api/gateway/participants/{METER}")
    assert d["counters"]["presence_ok"] >= 1 and d["counters"]["presence_missed"] == 0
    assert any(s["kind"] == "check" for s in d["diagnostics"]["slot_offsets"])


async def test_adapter_status_objects_profile(bench):
    await bench.registered()
    assert await bench.wait_for(lambda: bench.daemon.meters[0].station.state.value == "registered", 10)
    status, st = await bench.get("/api/adapter/status")
    assert status == 200
    assert set(st) >= {"daemon", "lmn", "meters"} and st["meters"][0]["id"] == METER
    assert st["meters"][0]["lmn"]["state"] == "registered"
    status, m = await bench.get(f"/api/adapter/meters/{METER}")
    assert status == 200
    objects = {o["obis"]: o for o in m["objects"]}
    assert objects["1-0:16.7.0*255"]["value"] == "432.1" and objects["1-0:1.8.0*255"]["class"] == 0x8002
    assert m["profile"]["period_s"] == 900 and m["sim"] is True  # every BAB has the lab meter (bab.sim)
    status, svg = await bench.get(f"/api/adapter/meters/{METER}/profile.svg")
    assert status == 200 and svg.startswith("<svg")
    if m["profile"]["entries"]:  # the first capture is due at once (the ring buffer starts at the aligned period)
        assert 'class="series"' in svg and m["profile"]["entries"][-1]["values"][0]["obis"] == "1-0:1.8.0*255"
    else:
        assert "no capture yet" in svg
    # the adapter's LMN changes go out on the event stream
    async def lmn_registered() -> bool:
        return any(e["kind"] == "lmn" and e["data"]["state"] == "registered"
                   for e in (await bench.get("/api/events/recent"))[1]["events"])
    assert await bench.wait_for(lmn_registered, 5)


async def test_bad_requests_answer_4xx_json_and_change_nothing(bench):
    await bench.registered()
    queued: list[object] = []
    original = bench.console._queue
    bench.console._queue = lambda view, job: (queued.append(job), original(view, job))  # type: ignore[method-assign]
    read = f"/api/gateway/participants/{METER}/read"
    cases = [
        ("POST", "/api/gateway/participants/1BAB0000000999/read", {}, 404, "no participant"),
        ("POST", "/api/gateway/participants/not-a-meter/read", {}, 400, "malformed meter ID"),
        ("GET", "/api/gateway/participants/XYZ", None, 400, "malformed meter ID"),
        ("POST", read, {"objects": ["1-0:1.8"]}, 400, "malformed OBIS"),
        ("POST", read, {"objects": [42]}, 400, "OBIS string or a mapping"),
        ("POST", read, {"objects": []}, 400, "non-empty list"),
        ("POST", read, {"objects": [{"obis": "1-0:1.8.0*255", "class": "x"}]}, 400, "'class'"),
        ("POST", read, {"channel": 3}, 400, "'channel'"),
        ("POST", read, {"channel": "carrier-pigeon"}, 400, "channel must be"),
        ("POST", read, {"channel": "tls"}, 409, "not paired"),
        ("POST", read, {"bogus": 1}, 400, "unknown key"),
        ("POST", read, [1, 2], 400, "JSON object"),
        ("POST", f"/api/gateway/participants/{METER}/crypto-reset", {}, 409, "not paired"),
        ("POST", f"/api/gateway/participants/{METER}/pair", {"master_key": "abc"}, 400, "32 hex digits"),
        ("POST", f"/api/gateway/participants/{METER}/pair", {"master_key": 5}, 400, "32 hex digits"),
        ("GET", f"/api/gateway/participants/{METER}/plots/pie.svg", None, 404, "no plot"),
        ("GET", "/api/adapter/meters/1BAB0000000999", None, 404, "no meter"),
        ("GET", f"/api/adapter/meters/{METER}/profile.svg?obis=nonsense", None, 400, "malformed OBIS"),
        ("GET", "/api/adapter/sim?meter=1BAB0000000999", None, 400, "no meter '1BAB0000000999'"),
        ("POST", "/api/adapter/sim/fault", {"meter": METER, "kind": "bad_fc"}, 400, "expected one of"),
        ("GET", "/api/nothing-here", None, 404, "no such endpoint"),
        ("DELETE", "/api/gateway/participants", None, 405, "not allowed"),
        ("GET", "/api/events?since=yesterday", None, 400, "event number"),
    ]
    for method, path, body, want, text in cases:
        async with bench.session.request(method, bench.url + path, json=body, headers=bench.auth()) as r:
            data = await r.json()
            assert (r.status, data["status"]) == (want, want), (method, path, data)
            assert text in data["error"], (path, data)
    # not JSON, wrong content type, oversized
    async with bench.session.post(bench.url + read, data=b"{nope", headers={**bench.auth(),
                                                                             "Content-Type": "application/json"}) as r:
        assert r.status == 400 and "not valid JSON" in (await r.json())["error"]
    async with bench.session.post(bench.url + read, data=b"a=1", headers={
            **bench.auth(), "Content-Type": "application/x-www-form-urlencoded"}) as r:
        assert r.status == 415
    big = b'{"objects": ["' + b"x" * 20000 + b'"]}'
    async with bench.session.post(bench.url + read, data=big, headers={**bench.auth(),
                                                                        "Content-Type": "application/json"}) as r:
        assert r.status == 413 and "too large" in (await r.json())["error"]
    assert queued == []  # no refused request queued a conversation
    assert not bench.daemon.meters[0].faults.active  # nor switched a fault on
    sim, bench.daemon.sim = bench.daemon.sim, None  # a daemon without the lab meter
    try:
        status, data = await bench.get("/api/adapter/sim")
        assert status == 404 and "no simulator" in data["error"]
    finally:
        bench.daemon.sim = sim
    _, d = await bench.get(f"/api/gateway/participants/{METER}")
    assert not d["paired"] and d["state"] == "registered"
    assert bench.gateway.station.counters.conversations_failed == 0


async def test_writes_need_the_session_token_and_a_loopback_host(bench):
    await bench.registered()
    read = f"/api/gateway/participants/{METER}/read"
    status, data = await bench.post(read, {}, auth=False)
    assert status == 401 and "session token" in data["error"]
    status, _ = await bench.post(read, {}, headers={"Authorization": "Bearer wrong-token-wrong-token"}, auth=False)
    assert status == 401
    status, data = await bench.get("/api/gateway/participants", headers={"Host": "evil.example:8080"})
    assert status == 403 and "loopback" in data["error"]
    status, data = await bench.post(read, {}, headers={"Origin": "http://evil.example"})
    assert status == 403 and "cross-origin" in data["error"]
    status, s = await bench.get("/api/session")
    assert s["session_token"] == bench.policy.session_token and s["roles"] == ["gateway", "adapter"]
    status, r = await bench.post(read, {"objects": ["1-0:16.7.0*255"]})
    assert status == 200 and r["ok"]


async def test_a_configured_token_guards_every_api_request(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    token = "s3cret-token-for-the-lab-1234"
    b = await WebBench(tmp_path, token=token).start()
    try:
        async with b.session.get(b.url + "/api/gateway/participants") as r:
            assert r.status == 401
        async with b.session.get(b.url + "/api/session") as r:
            assert r.status == 401 and "session_token" not in await r.json()
        async with b.session.get(b.url + "/") as r:  # the page itself carries no data
            assert r.status == 200 and "BAB console" in await r.text()
        status, s = await b.get("/api/session")
        assert status == 200 and s["token_configured"] and "session_token" not in s
        async with b.session.get(b.url + f"/api/events/recent?token={token}") as r:
            assert r.status == 200
    finally:
        await b.close()
    # the access log names method, path and status, never the query string that carried the token
    assert "GET /api/events/recent 200" in caplog.text and token not in caplog.text


def test_listening_beyond_loopback_needs_a_token():
    from bab.web.security import AccessPolicy, ListenError

    with pytest.raises(ListenError, match="needs an access token"):
        AccessPolicy("0.0.0.0", None)
    with pytest.raises(ListenError, match="at least 16"):
        AccessPolicy("0.0.0.0", "short")
    assert AccessPolicy("0.0.0.0", "a-long-enough-token-123").token_configured


@needs_tls
async def test_pair_read_over_tls_crypto_reset_and_the_master_key_never_shows(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    key = random_key()
    b = await WebBench(tmp_path, master_key=key).start()
    seen: list[str] = []
    try:
        await b.registered()
        status, r = await b.post(f"/api/gateway/participants/{METER}/pair", {"master_key": "00" * 16})
        seen.append(repr(r))
        assert status == 200 and not r["ok"] and not r["paired"]  # a wrong key: the meter's MAC check fails
        status, r = await b.post(f"/api/gateway/participants/{METER}/pair", {"master_key": key.hex().upper()})
        seen.append(repr(r))
        assert status == 200 and r["ok"] and r["paired"], r
        status, r = await b.post(f"/api/gateway/participants/{METER}/pair", {"master_key": key.hex()})
        assert status == 409 and "already paired" in r["error"]
        status, r = await b.post(f"/api/gateway/participants/{METER}/read", {"objects": ["1-0:16.7.0*255"]})
        seen.append(repr(r))
        assert status == 200 and r["ok"] and r["channel"] == "tls"
        status, r = await b.post(f"/api/gateway/participants/{METER}/profile", {"channel": "tls"})
        assert status == 200 and r["channel"] == "tls" and r["error"] is None, r
        status, r = await b.post(f"/api/gateway/participants/{METER}/crypto-reset", {})
        seen.append(repr(r))
        assert status == 200 and r["ok"] and not r["paired"], r
        assert await b.wait_for(lambda: not b.daemon.meters[0].security.paired, 10)
        for path in ("/api/gateway/participants", f"/api/gateway/participants/{METER}", "/api/events/recent",
                     "/api/gateway/link", "/api/adapter/status", f"/api/adapter/meters/{METER}"):
            seen.append(repr((await b.get(path))[1]))
        kinds = [e["kind"] for e in (await b.get("/api/events/recent"))[1]["events"]]
        assert "pairing" in kinds and "crypto-reset" in kinds
    finally:
        await b.close()
    text = "\n".join(seen + [rec.getMessage() for rec in caplog.records] + b.reports + [caplog.text])
    for form in (key.hex(), key.hex().upper(), repr(key), key.hex(" ")):
        assert form not in text


async def test_a_slow_or_vanished_event_client_never_blocks_the_loop(bench):
    await bench.registered()
    hub = bench.console.hub
    host, port = "127.0.0.1", bench.server.port
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET /api/events HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    await writer.drain()
    assert await bench.wait_for(lambda: hub.counters.subscribers == 1, 5)
    # the client never reads: the socket buffers fill, its handler waits, its queue fills, events are dropped
    blob = "x" * 4096
    for i in range(3000):
        hub.publish("noise", n=i, blob=blob)
        if i % 100 == 0:
            await asyncio.sleep(0)
    assert await bench.wait_for(lambda: hub.counters.dropped > 0, 10)
    stats = (await bench.get("/api/gateway/link"))[1]["events"]  # the loop still answers
    assert stats["dropped"] > 0 and stats["clients"][0]["dropped"] > 0
    status, r = await bench.post(f"/api/gateway/participants/{METER}/read", {"objects": ["1-0:16.7.0*255"]})
    assert status == 200 and r["ok"]  # ... and the bus goes on
    writer.transport.abort()  # the client vanishes

    async def gone() -> bool:
        hub.publish("noise", n=-1)
        return hub.counters.subscribers == 0
    assert await bench.wait_for(gone, 10)


async def test_the_event_stream_delivers_registrations_over_http(tmp_path):
    b = await WebBench(tmp_path).start(delay_meter=True)
    try:
        async with b.session.get(b.url + "/api/events") as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
            b.start_meter()
            kinds = []
            async with asyncio.timeout(20):
                async for line in r.content:
                    if line.startswith(b"event: "):
                        kinds.append(line[7:].strip().decode())
                        if "registration" in kinds:
                            break
            assert "registration" in kinds
    finally:
        await b.close()


async def test_lab_meter_controls_drive_the_real_simulator(bench):
    """The HTTP API calls bab.sim.control.SimControl (daemon.sim) in-process: faults, values, status bits."""
    m = bench.daemon.meters[0]
    status, r = await bench.post("/api/adapter/sim/fault", {"meter": METER, "kind": "bad_fcs",
                                                            "params": {"probability": 0.5, "count": 3}})
    assert status == 200 and r["result"]["fault"]["kind"] == "bad_fcs", r
    assert m.faults.active["bad_fcs"].probability == 0.5 and m.faults.active["bad_fcs"].count == 3
    status, r = await bench.get(f"/api/adapter/sim?meter={METER}")
    assert status == 200 and r["result"]["meters"][0]["faults"][0]["kind"] == "bad_fcs"
    status, r = await bench.post("/api/adapter/sim/status", {"meter": METER, "bit": "MAGNETIC", "on": True})
    assert status == 200 and m.sml.model.status_word() & 0x800
    status, r = await bench.post("/api/adapter/sim/value", {"meter": METER, "obis": "1-0:16.7.0", "value": 77})
    assert status == 200 and r["result"]["value"] == "77"
    status, r = await bench.post("/api/adapter/sim/fault", {"meter": METER, "kind": "late_replies"})
    assert status == 400 and "ms: missing required key" in r["error"] and "late_replies" not in m.faults.active
    status, r = await bench.post("/api/adapter/sim/clear", {"meter": METER})
    assert status == 200 and r["result"]["cleared"] == ["bad_fcs"] and not m.faults.active


async def test_lab_meter_controls_reach_the_simulator(bench):
    sim = bench.daemon.sim = RecordingSim()
    status, r = await bench.get(f"/api/adapter/sim?meter={METER}")
    assert status == 200 and r["result"] == {"meters": [METER]}
    ok = [("value", {"meter": METER, "obis": "1-0:1.8.0", "value": 99.5}, ("set_value", METER, "1-0:1.8.0*255", 99.5)),
          ("status", {"meter": METER, "bit": 3, "on": True}, ("set_status", METER, 3, True)),
          ("fault", {"meter": METER, "kind": "noise", "params": {"rate": 0.1}},
           ("fault", METER, "noise", {"rate": 0.1})),
          ("clear", {"meter": METER}, ("clear", METER, None)),
          ("scenario", {"scenario": "steps: []"}, ("scenario", "steps: []"))]
    for command, body, call in ok:
        status, r = await bench.post(f"/api/adapter/sim/{command}", body)
        assert status == 200 and r["ok"], (command, r)
        assert sim.calls[-1] == call
    n = len(sim.calls)
    bad = [("fault", {"meter": METER, "kind": "nonsense"}, "unknown fault"),
           ("value", {"meter": METER, "obis": "1-0:1.8.0*255", "value": True}, "'value'"),
           ("value", {"meter": "nope", "obis": "1-0:1.8.0*255", "value": 1}, "malformed meter ID"),
           ("value", {"meter": METER, "obis": "x", "value": 1}, "malformed OBIS"),
           ("status", {"meter": METER, "bit": 3, "on": "yes"}, "'on'"),
           ("fault", {"meter": METER, "kind": "noise", "params": [1]}, "'params'"),
           ("scenario", {"scenario": ""}, "'scenario'"),
           ("bogus", {}, "no simulator command")]
    for command, body, text in bad:
        status, r = await bench.post(f"/api/adapter/sim/{command}", body)
        assert status in (400, 404) and text in r["error"], (command, r)
    assert len(sim.calls) == n  # refused commands never reached it
    status, _ = await bench.post("/api/adapter/sim/clear", {"meter": METER}, auth=False)
    assert status == 401
    assert any(e["kind"] == "sim" for e in (await bench.get("/api/events/recent"))[1]["events"])
    _, m = await bench.get(f"/api/adapter/meters/{METER}")
    assert m["sim"] is True
