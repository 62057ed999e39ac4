"""Configuration: the contract of the LMN issue, and a catalogue of broken files with located errors."""

from __future__ import annotations

import textwrap
from decimal import Decimal

import pytest

from bab import config
from bab.cli import main
from bab.obis import Obis
from bab.schema import ConfigError

GOOD = """\
lmn:
  port: /dev/ttyAMA0     # a device path or any pyserial URL
  baudrate: 921600
state_dir: /var/lib/bab
meters:
  - id: "1BAB0012345678"
    driver:
      type: simulated
      registers: {"1-0:1.8.0": 12345.678, "1-0:2.8.0": 0.0, "1-0:16.7.0": 432.1}
"""


def test_issue_contract_loads():
    cfg = config.loads(GOOD, "bab.yaml")
    assert cfg.lmn.port == "/dev/ttyAMA0" and cfg.lmn.baudrate == 921600
    assert str(cfg.state_dir) == "/var/lib/bab"
    (m,) = cfg.meters
    assert str(m.id) == "1BAB0012345678" and m.id.server_id.hex() == "0a01424142" + "00" + "00bc614e"
    assert m.driver_type == "simulated"
    assert m.driver_options["registers"][Obis.parse("1-0:1.8.0")] == Decimal("12345.678")
    assert cfg.lmn.timing.slots.slot_period == 0.010 and cfg.lmn.timing.slots.slot_count == 32


def test_timing_overrides_and_pyserial_urls():
    cfg = config.loads(GOOD.replace("/dev/ttyAMA0", "socket://127.0.0.1:7485").replace(
        "  baudrate: 921600\n", "  baudrate: 921600\n  timing: {slot_period: 0.02, slot_count: 16, "
        "inactivity_timeout: 120}\n"), "x.yaml")
    assert cfg.lmn.port.startswith("socket://")
    assert cfg.lmn.timing.slots.slot_period == 0.02 and cfg.lmn.timing.inactivity_timeout == 120


CATALOGUE = [
    # (description, yaml, line, key path, words in the message)
    ("typo in a top-level key", GOOD.replace("state_dir", "statedir"), 4, "statedir", "did you mean 'state_dir'"),
    ("typo in a nested key", GOOD.replace("baudrate", "baudrat"), 3, "lmn.baudrat", "unknown key"),
    ("wrong type", GOOD.replace("921600", "fast"), 3, "lmn.baudrate", "expected a whole number"),
    ("missing port", GOOD.replace("  port: /dev/ttyAMA0     # a device path or any pyserial URL\n", ""), 2,
     "lmn.port", "missing required key"),
    ("no meters", GOOD.split("meters:")[0] + "meters: []\n", 5, "meters", "at least 1"),
    ("bad meter ID", GOOD.replace("1BAB0012345678", "1BAB00123"), 6, "meters[0].id", "DIN 43863-5"),
    ("unknown driver", GOOD.replace("type: simulated", "type: nosuchdriver"), 8, "meters[0].driver.type",
     "installed drivers: "),
    ("bad OBIS code", GOOD.replace('"1-0:2.8.0"', '"1-0:2.8"'), 9, "meters[0].driver.registers", "OBIS"),
    ("bad register value", GOOD.replace("432.1", "lots"), 9, "meters[0].driver.registers", "a number"),
    ("unknown driver option", GOOD.replace("      registers", "      registerz"), 9, "meters[0].driver.registerz",
     "did you mean 'registers'"),
    ("duplicate meter", GOOD + GOOD.split("meters:\n")[1], 10, "meters[1].id", "duplicate id"),
    ("slot count out of range",
     GOOD.replace("  baudrate: 921600\n", "  baudrate: 921600\n  timing: {slot_count: 64}\n"), 4,
     "lmn.timing.slot_count", "from 1 to 63"),
    ("list instead of mapping", "lmn: [a, b]\nmeters: []\n", 1, "lmn", "expected a mapping"),
    ("not YAML", "lmn: {port: x\nmeters: [", 2, "", "not valid YAML"),
    ("empty file", "", None, "", "empty"),
    ("duplicate key", GOOD.replace("state_dir: /var/lib/bab\n", "state_dir: /a\nstate_dir: /b\n"), 5, "state_dir",
     "duplicate key"),
]


@pytest.mark.parametrize("desc,text,line,path,words", CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_broken_configs_name_file_line_key(desc, text, line, path, words):
    with pytest.raises(ConfigError) as info:
        config.loads(text, "bab.yaml")
    err = info.value
    assert err.file == "bab.yaml"
    assert err.line == line, str(err)
    assert err.path.startswith(path), str(err)
    assert words in str(err)
    assert str(err).startswith("bab.yaml")


def test_cli_config_check(tmp_path, capsys):
    good = tmp_path / "bab.yaml"
    good.write_text(GOOD)
    assert main(["config", "check", str(good)]) == 0
    assert "OK" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("baudrate", "baudrat"))
    assert main(["config", "check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:3: lmn.baudrat: unknown key" in err
    assert main(["config", "check", str(tmp_path / "missing.yaml")]) == 1
    assert "cannot read" in capsys.readouterr().err
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00")
    assert main(["config", "check", str(tmp_path / "bin.yaml")]) == 1


def test_reference_is_generated_from_the_schema():
    ref = config.reference()
    for key in ("lmn.port", "lmn.baudrate", "lmn.timing.slot_period", "state_dir", "meters[].id", "type: simulated"):
        assert key in ref
    assert textwrap.dedent(ref).count("- `") >= 12


def test_demo_config_is_valid():
    cfg = config.loads(config.DEMO_CONFIG)
    assert cfg.meters[0].driver_type == "simulated"


def test_docs_configuration_reference_is_current():
    """docs/configuration.md is generated from the schema: regenerate with `bab config reference`."""
    from pathlib import Path

    doc = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
    assert doc.read_text() == config.reference() + "\n"


def test_profile_depth_and_period_reach_the_meter_model(tmp_path):
    from bab.meter import MeterRuntime

    text = GOOD + "    profile: {period: 300, depth: 12}\n"
    cfg = config.loads(text.replace("/var/lib/bab", str(tmp_path)))
    m = MeterRuntime(cfg.meters[0], cfg.lmn, cfg.state_dir, clock=lambda: 0.0)
    assert (m.sml.model.profile.period, m.sml.model.profile.depth) == (300, 12)


def test_tls_session_lifetime_reaches_the_tls_context_and_the_connection_age(tmp_path):
    """tls.session_lifetime (default 744 h): the wolfSSL session timeout and the TLS layer's connection age."""
    from bab.meter import MeterRuntime
    from bab.tls import keys, wolfssl_binding
    from bab.tls.policy import SESSION_LIFETIME_S

    assert config.loads(GOOD).meters[0].tls.session_lifetime == SESSION_LIFETIME_S == 744 * 3600
    with pytest.raises(ConfigError, match="session_lifetime"):
        config.loads(GOOD + "    tls: {session_lifetime: 0}\n")
    cfg = config.loads((GOOD + "    tls: {session_lifetime: 90}\n").replace("/var/lib/bab", str(tmp_path)))
    now = [5.0]
    m = MeterRuntime(cfg.meters[0], cfg.lmn, cfg.state_dir, clock=lambda: now[0])
    assert m.security.options.session_lifetime == 90
    if not wolfssl_binding.available():
        return
    _, gw = keys.generate_identity("SMGW", keys.Curve.SECP256R1)
    m.security.import_gateway_certificate(gw)
    layer = m.security._tls_layer(lambda: None)
    assert layer.max_age_s == 90 and layer.clock() == 5.0
    assert m.security.tls_context().session_lifetime_s == 90
