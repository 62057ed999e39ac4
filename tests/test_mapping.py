"""Legacy values -> LMN objects: defaults for common meters and explicit maps."""

from __future__ import annotations

from bab import config
from bab.mapping import ReadingMap
from bab.obis import Obis
from bab.reading import Reading, ReadingStatus


def r(obis: str, value: int, scaler: int = 0, unit: str = "Wh", status=ReadingStatus.OK) -> Reading:
    from bab.units import Unit

    return Reading(Obis.parse(obis), value, scaler, Unit.parse(unit), status)


def by(readings):
    return {str(x.obis): x for x in readings}


def test_tariff_sum_feeds_missing_total_with_finest_scaler_and_ored_status():
    out = by(ReadingMap().apply([r("1-0:1.8.1", 1479811, -1), r("1-0:1.8.2", 2, 0, status=ReadingStatus.STALE)]))
    total = out["1-0:1.8.0*255"]
    assert (total.value, total.scaler) == (1479831, -1) and total.status == ReadingStatus.STALE
    assert "1-0:1.8.1*255" in out  # the sources are still served


def test_existing_total_is_kept_and_power_defaults():
    out = by(ReadingMap().apply([r("1-0:1.8.0", 5), r("1-0:1.8.1", 7), r("1-0:1.7.0", 144, -1, "W")]))
    assert out["1-0:1.8.0*255"].value == 5
    assert out["1-0:16.7.0*255"].value == 144
    phases = by(ReadingMap().apply([r("1-0:36.7.0", 10, 0, "W"), r("1-0:56.7.0", 20, 0, "W"),
                                    r("1-0:76.7.0", 30, 0, "W")]))
    assert phases["1-0:16.7.0*255"].value == 60


def test_explicit_map_and_serve_list_from_yaml():
    cfg = config.loads("""lmn: {port: x}
meters:
  - id: "1BAB0000000001"
    driver: {type: simulated}
    map: {"1-0:1.8.0": "1-0:1.8.2", "1-0:2.8.0": "1-0:2.8.1 + 1-0:2.8.2"}
    serve: ["1-0:1.8.0", "1-0:2.8.0"]
""")
    mapping = cfg.meters[0].mapping
    out = by(mapping.apply([r("1-0:1.8.1", 100), r("1-0:1.8.2", 3), r("1-0:2.8.1", 1), r("1-0:2.8.2", 2)]))
    assert set(out) == {"1-0:1.8.0*255", "1-0:2.8.0*255"}
    assert out["1-0:1.8.0*255"].value == 3 and out["1-0:2.8.0*255"].value == 3


def test_units_that_do_not_add_are_not_summed():
    out = by(ReadingMap().apply([r("1-0:1.8.1", 1, 0, "Wh"), r("1-0:1.8.2", 1, 0, "varh")]))
    assert "1-0:1.8.0*255" not in out  # never an invented mixed-unit total


def test_factor_scales_exactly_and_bad_factors_are_config_errors():
    cfg = config.loads("""lmn: {port: x}
meters:
  - id: "1BAB0000000001"
    driver: {type: simulated}
    factor: {"1-0:1.8.0": 20, "1-0:16.7.0": 0.5}
""")
    out = by(cfg.meters[0].mapping.apply([r("1-0:1.8.0", 123456, -1), r("1-0:16.7.0", 1001, 0, "W")]))
    assert out["1-0:1.8.0*255"].decimal == 246912  # 12345.6 Wh x 20
    assert str(out["1-0:16.7.0*255"].decimal) == "500.5"
    import pytest

    with pytest.raises(config.ConfigError, match="positive"):
        config.loads('lmn: {port: x}\nmeters:\n  - id: "1BAB0000000001"\n    driver: {type: simulated}\n'
                     '    factor: {"1-0:1.8.0": -2}\n')
