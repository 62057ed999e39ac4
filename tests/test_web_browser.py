"""The web console in a real headless browser (Debian's Chromium over its DevTools protocol): the page loads
without any external resource, a registration shows up live, a read-now click shows the value, the adapter's
view shows its objects. Figures (time to first live update, page weight) are printed (``pytest -s``).
With ``BAB_SCREENSHOTS=DIR`` the main views are saved there (docs/images/ holds the committed ones)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytest.importorskip("aiohttp")

from cdp import SCREENSHOTS, Browser, chromium_binary  # noqa: E402
from web_helpers import METER, RecordingSim, WebBench  # noqa: E402

pytestmark = pytest.mark.skipif(chromium_binary() is None, reason="chromium is not installed (deploy/setup.sh)")


@pytest.fixture
async def browser():
    b = await Browser.start()
    yield b
    await b.close()


async def test_page_live_registration_read_now_and_adapter_view(tmp_path, browser):
    bench = await WebBench(tmp_path, poll_interval=30.0).start(delay_meter=True)
    try:
        await browser.goto(bench.server.url)
        await browser.wait_for("document.body.dataset.ready === '1'")
        assert await browser.eval("document.getElementById('bus').tBodies[0].rows.length") == 0
        assert await browser.eval("!document.getElementById('bus-empty').hidden")
        assert await browser.wait_for("document.getElementById('live').textContent === 'live'")
        # a registration shows up live (no reload)
        bench.start_meter()
        row = f"document.querySelector('#bus tr[data-meter=\"{METER}\"]')"
        await browser.wait_for(row + " !== null")
        seen = time.time()
        registered = next(e for e in bench.console.hub.history if e.kind == "registration")
        live_update_ms = (seen - registered.time) * 1000
        assert await browser.eval(row + ".cells[2].textContent") == "registered"
        # read now: the value appears on the page
        await browser.wait_for("!document.getElementById('gw-detail').hidden")
        await browser.eval("document.getElementById('read-objects').value = '1-0:16.7.0*255'")
        await browser.eval("document.getElementById('read-now').click()")
        text = await browser.wait_for("(t => t.includes('432.1 W') && t)(document.getElementById('gw-result')"
                                      ".textContent)")
        assert "read over plain" in text
        await browser.wait_for(f"(r => r && r.cells[5].textContent.includes('432.1'))({row})")
        await browser.wait_for("document.querySelector('#gw-objects tr[data-obis=\"1-0:16.7.0*255\"] .value')"
                               "?.textContent === '432.1'")
        await browser.eval("document.getElementById('read-profile').click()")
        await browser.wait_for("document.getElementById('gw-result').textContent.startsWith('load profile over plain')")
        await browser.wait_for("document.getElementById('plot-slots').complete && "
                               "document.getElementById('plot-slots').naturalWidth > 0")
        # the adapter's side: presented meter, its objects and load profile
        await browser.wait_for(f"document.querySelector('#meters tr[data-meter=\"{METER}\"]')?.cells[1].textContent"
                               " === 'registered'")
        await browser.wait_for("document.querySelectorAll('#ad-objects tbody tr').length > 10")
        # the lab meter's controls drive the real simulator (bab.sim.control.SimControl, daemon.sim)
        await browser.wait_for("!document.getElementById('sim').hidden")
        assert await browser.eval("document.getElementById('no-sim').hidden")
        await browser.eval("document.getElementById('sim-fault').value = 'dm'")
        await browser.eval("document.getElementById('sim-params').value = '{\"selector\": 3, \"count\": 1}'")
        await browser.eval("document.getElementById('sim-fault-on').click()")
        await browser.wait_for("document.getElementById('sim-result').textContent.startsWith('fault:')")
        assert bench.daemon.meters[0].faults.active["dm"].params == {"selector": 3}
        # ... and the gateway sees it: the next read on the gateway's view is refused with DM, the one after
        # (the fault's count used up) reads the value again
        await browser.eval("document.getElementById('gw-result').textContent = ''")
        await browser.eval("document.getElementById('read-now').click()")
        refused = await browser.wait_for("(t => /DM/.test(t) && t)(document.getElementById('gw-result').textContent)")
        assert "432.1" not in refused, refused
        await browser.eval("document.getElementById('read-now').click()")
        await browser.wait_for("document.getElementById('gw-result').textContent.includes('432.1 W')")
        # nothing came from elsewhere, and the page weighs what its three files weigh
        resources = await browser.eval("performance.getEntriesByType('resource').map(e => [e.name, "
                                       "e.encodedBodySize, e.initiatorType])")
        origin = bench.server.url.rstrip("/")
        assert all(name.startswith(origin) for name, _, _ in resources), resources
        static = await browser.eval("performance.getEntriesByType('navigation')[0].encodedBodySize + "
                                    "performance.getEntriesByType('resource').filter(e => e.name.includes('/static/'))"
                                    ".reduce((a, e) => a + e.encodedBodySize, 0)")
        assert browser.exceptions == []
        if SCREENSHOTS:
            await browser.send("Emulation.setDeviceMetricsOverride", {"width": 1280, "height": 1500,
                                                                      "deviceScaleFactor": 1, "mobile": False})
            await browser.screenshot(Path(SCREENSHOTS) / "console-gateway.png")
        print(f"\nbrowser figures: first live update (registration event -> row on the page) {live_update_ms:.0f} ms;"
              f" page weight (HTML + JS + CSS) {static} bytes; {len(resources)} resources, all from the server")
    finally:
        await bench.close()


async def test_the_page_asks_for_a_configured_token(tmp_path, browser):
    token = "a-lab-token-0123456789"
    bench = await WebBench(tmp_path, token=token).start()
    try:
        await browser.goto(bench.server.url)
        await browser.wait_for("!document.getElementById('token-form').hidden")
        assert "access token" in await browser.eval("document.getElementById('roles').textContent")
        await browser.goto(bench.server.url + "#token=" + token)
        # a fragment change commits asynchronously: a reload sent before it reloads the URL without the token
        await browser.wait_for("location.hash.startsWith('#token=')")
        await browser.send("Page.reload")
        await browser.wait_for("document.body.dataset.ready === '1'")
        await browser.wait_for(f"document.querySelector('#bus tr[data-meter=\"{METER}\"]') !== null")
        assert browser.exceptions == []
    finally:
        await bench.close()


async def test_lab_meter_controls_on_the_page(tmp_path, browser):
    """The page's simulator controls send exactly what is typed in (to a recording stand-in, so that every
    argument can be compared; the real simulator and its effect at the gateway are driven from the page in
    test_page_live_registration_read_now_and_adapter_view)."""
    bench = await WebBench(tmp_path).start()
    sim = bench.daemon.sim = RecordingSim()
    try:
        await browser.goto(bench.server.url)
        await browser.wait_for("!document.getElementById('sim').hidden")
        assert METER in await browser.wait_for("document.getElementById('sim-state').textContent")

        def commands(sim: RecordingSim) -> list[tuple]:
            return [c for c in sim.calls if c[0] != "show"]  # the page re-reads the state after each command

        async def fill(**fields: str) -> None:
            for k, v in fields.items():
                await browser.eval(f"document.getElementById({k!r}).value = {v!r}")

        await fill(**{"sim-obis": "1-0:1.8.0*255", "sim-value": "12400.5"})
        await browser.eval("document.getElementById('sim-set').click()")
        await browser.wait_for("document.getElementById('sim-result').textContent.startsWith('value:')")
        assert commands(sim)[-1] == ("set_value", METER, "1-0:1.8.0*255", "12400.5")
        await fill(**{"sim-bit": "8"})
        await browser.eval("document.getElementById('sim-bit-on').click()")
        await browser.wait_for("document.getElementById('sim-result').textContent.startsWith('status:')")
        assert commands(sim)[-1] == ("set_status", METER, 8, True)
        await fill(**{"sim-fault": "noise", "sim-params": '{"rate": 0.2}'})
        await browser.eval("document.getElementById('sim-fault-on').click()")
        await browser.wait_for("document.getElementById('sim-result').textContent.startsWith('fault:')")
        assert commands(sim)[-1] == ("fault", METER, "noise", {"rate": 0.2})
        await fill(**{"sim-fault": "nonsense", "sim-params": ""})
        await browser.eval("document.getElementById('sim-fault-on').click()")
        await browser.wait_for("document.getElementById('sim-result').classList.contains('error')")
        assert "unknown fault" in await browser.eval("document.getElementById('sim-result').textContent")
        await browser.eval("document.getElementById('sim-clear').click()")
        await browser.wait_for("document.getElementById('sim-result').textContent.startsWith('clear:')")
        assert commands(sim)[-1] == ("clear", METER, None)
        assert browser.exceptions == []
    finally:
        await bench.close()
