"""MeterSecurity's state decisions and the `bab keys` commands (key generation, gateway import, master key,
show), the file-mode start check and the `tls` config section."""

from __future__ import annotations

import argparse
import io
import json
import os
import stat
from types import SimpleNamespace

import pytest
from test_tls_hdlc_support import METER_ID, MK, SERVER_ID

from bab import config as config_mod
from bab.hdlc.frame import Selector
from bab.keys_cli import add_keys_parser, keys_generate, keys_import_gateway, keys_set_master_key, keys_show
from bab.meter_id import MeterId
from bab.schema import ConfigError, Map, load_yaml
from bab.security import TLS, MeterSecurity, SecurityError, TlsOptions, security_for, startup_problems
from bab.sym.state import PairingState
from bab.tls import keys
from bab.tls.keys import Curve
from bab.tls.policy import ValidityPolicy

CONFIG = """\
lmn: {{port: "loop://"}}
state_dir: {state}
meters:
  - id: "{meter}"
    driver: {{type: simulated}}
"""


@pytest.fixture
def cfg(tmp_path):
    path = tmp_path / "bab.yaml"
    path.write_text(CONFIG.format(state=tmp_path / "state", meter=METER_ID))
    return config_mod.load(path)


def sec_of(cfg) -> MeterSecurity:
    return security_for(cfg, cfg.meters[0])


def mk_file(tmp_path, data: bytes = MK.hex().encode()) -> str:
    p = tmp_path / "mk.txt"
    p.write_bytes(data)
    return str(p)


def pair_directly(sec: MeterSecurity, gateway_cert_der: bytes) -> None:
    """Persist a paired state as a completed SYM pairing would."""
    state = sec.pairing_state() or PairingState(master_key=MK)
    sec.store.save(PairingState(master_key=state.master_key, counter=state.counter + 5, paired=True,
                                peer_certificate=gateway_cert_der))


def gw_cert() -> bytes:
    return keys.certificate_der(keys.generate_identity("SMGW", Curve.SECP256R1)[1])


# --- set-master-key -------------------------------------------------------------------------------------


def test_set_master_key_from_file_and_stdin(cfg, tmp_path, capsys) -> None:
    assert keys_set_master_key(cfg, METER_ID, mk_file(tmp_path)) == 0
    sec = sec_of(cfg)
    assert sec.pairing_state().master_key == MK
    assert stat.S_IMODE(sec.store.path.stat().st_mode) == 0o600
    other = bytes(range(1, 17))
    assert keys_set_master_key(cfg, METER_ID, "-", stdin=io.BytesIO(other)) == 0
    assert sec.pairing_state().master_key == other  # the cache notices the file changed
    out = capsys.readouterr()
    assert MK.hex() not in out.out + out.err and other.hex() not in out.out + out.err
    assert sec.selectors() == {Selector.SML_COSEM, Selector.SYM_HDLC}


def test_set_master_key_refuses_bad_input_without_echoing_it(cfg, tmp_path, capsys) -> None:
    assert keys_set_master_key(cfg, METER_ID, mk_file(tmp_path, b"00112233 not hex at all 0011")) == 1
    err = capsys.readouterr().err
    assert "master key" in err and "not hex" not in err
    assert keys_set_master_key(cfg, METER_ID, mk_file(tmp_path, b"00" * 16)) == 1
    assert sec_of(cfg).pairing_state() is None


def test_set_master_key_refused_while_paired(cfg, tmp_path, capsys) -> None:
    keys_set_master_key(cfg, METER_ID, mk_file(tmp_path))
    pair_directly(sec_of(cfg), gw_cert())
    assert keys_set_master_key(cfg, METER_ID, "-", stdin=io.BytesIO(bytes(range(1, 17)))) == 1
    assert "crypto-reset" in capsys.readouterr().err
    assert sec_of(cfg).pairing_state().master_key == MK


def test_unknown_meter(cfg, capsys) -> None:
    assert keys_show(cfg, "1BAB9999999999") == 1
    assert "not in" in capsys.readouterr().err


# --- generate / import-gateway / show ---------------------------------------------------------------------


def test_generate_writes_key_0600_and_refuses_to_overwrite(cfg, capsys) -> None:
    assert keys_generate(cfg, METER_ID, "brainpoolP384r1") == 0
    sec = sec_of(cfg)
    assert stat.S_IMODE(sec.key_path.stat().st_mode) == 0o600
    info = keys.describe_certificate(sec.cert_path.read_bytes())
    assert info.curve is Curve.BRAINPOOL_P384R1 and info.subject_cn == METER_ID
    assert info.fingerprint_sha256 in capsys.readouterr().out
    assert keys_generate(cfg, METER_ID) == 1
    assert "--force" in capsys.readouterr().err
    assert keys_generate(cfg, METER_ID, "secp256r1", force=True) == 0
    assert keys.describe_certificate(sec.cert_path.read_bytes()).curve is Curve.SECP256R1


def test_generate_refused_while_paired(cfg, tmp_path, capsys) -> None:
    keys_set_master_key(cfg, METER_ID, mk_file(tmp_path))
    pair_directly(sec_of(cfg), gw_cert())
    assert keys_generate(cfg, METER_ID, force=True) == 1
    assert "paired" in capsys.readouterr().err


def test_identity_generated_on_first_use_with_configured_curve(tmp_path) -> None:
    sec = MeterSecurity(tmp_path, SERVER_ID, METER_ID, TlsOptions(curve=Curve.BRAINPOOL_P512R1))
    assert sec.own_identity(create=False) is None
    key, cert, source = sec.own_identity()
    assert source == "generated" and keys.describe_certificate(cert).curve is Curve.BRAINPOOL_P512R1
    assert sec.own_identity()[1] == cert  # stable across calls
    assert stat.S_IMODE(sec.tls_dir.stat().st_mode) == 0o700


def test_import_gateway_requires_tls_and_show_reports_it(cfg, tmp_path, capsys) -> None:
    gk, gc = keys.generate_identity("SMGW", Curve.BRAINPOOL_P256R1)
    (tmp_path / "gw.pem").write_bytes(gc)
    keys_set_master_key(cfg, METER_ID, mk_file(tmp_path))
    assert keys_import_gateway(cfg, METER_ID, str(tmp_path / "gw.pem")) == 0
    fp = keys.fingerprint_sha256(gc)
    assert fp in capsys.readouterr().out
    sec = sec_of(cfg)
    assert sec.selectors() == {Selector.TLS_SML_COSEM, Selector.SYM_HDLC}
    assert sec.gateway_certificate() == (keys.certificate_der(gc), "imported")
    assert keys_show(cfg, METER_ID) == 0
    text = capsys.readouterr().out
    assert fp in text and "gateway certificate (imported)" in text and "paired: no" in text
    assert "brainpoolP256r1" in text and MK.hex() not in text
    assert keys_show(cfg, as_json=True) == 0
    (info,) = json.loads(capsys.readouterr().out)
    assert info["gateway_certificate"]["fingerprint_sha256"] == fp and info["selectors"] == [1, 6]
    assert info["master_key"] == "provisioned" and MK.hex() not in json.dumps(info)


def test_import_gateway_refuses_non_lmn_certificates(cfg, tmp_path, capsys) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "RSA")])
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    (tmp_path / "rsa.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    assert keys_import_gateway(cfg, METER_ID, str(tmp_path / "rsa.pem")) == 1
    assert "not ECDSA on an LMN curve" in capsys.readouterr().err
    assert sec_of(cfg).gateway_certificate() is None


def test_import_gateway_refused_while_paired(cfg, tmp_path, capsys) -> None:
    keys_set_master_key(cfg, METER_ID, mk_file(tmp_path))
    pair_directly(sec_of(cfg), gw_cert())
    (tmp_path / "gw.pem").write_bytes(keys.generate_identity("OTHER")[1])
    assert keys_import_gateway(cfg, METER_ID, str(tmp_path / "gw.pem")) == 1
    assert "crypto-reset" in capsys.readouterr().err


# --- the service decision -------------------------------------------------------------------------------


def test_selectors_follow_the_state(tmp_path) -> None:
    sec = MeterSecurity(tmp_path, SERVER_ID, METER_ID)
    assert sec.selectors() == {Selector.SML_COSEM}  # no MK: plain SML only
    sec.store.set_master_key(MK)
    assert sec.selectors() == {Selector.SML_COSEM, Selector.SYM_HDLC}
    cert = gw_cert()
    pair_directly(sec, cert)
    assert sec.selectors() == {Selector.TLS_SML_COSEM} and sec.paired and sec.tls_required()
    sec.crypto_reset()
    assert sec.selectors() == {Selector.SML_COSEM, Selector.SYM_HDLC} and not sec.paired
    assert sec.pairing_state().counter == 5  # the counter survives a crypto-reset


def test_services_are_evaluated_at_each_snrm(tmp_path) -> None:
    sec = MeterSecurity(tmp_path, SERVER_ID, METER_ID)
    sec.store.set_master_key(MK)
    made: list[str] = []
    services = sec.services(lambda: made.append("inner") or object())
    assert services[Selector.SML_COSEM]() is not None and made == ["inner"]
    sec.own_identity()  # generated before pairing (the SYM layer sends it in route b)
    pair_directly(sec, gw_cert())
    assert services[Selector.SML_COSEM]() is None and services[Selector.SYM_HDLC]() is None
    layer = services[Selector.TLS_SML_COSEM]()
    assert type(layer).__name__ == "TlsServerLayer" and made == ["inner"]  # inner made after the handshake


def test_another_process_changing_the_state_is_noticed(tmp_path) -> None:
    daemon = MeterSecurity(tmp_path, SERVER_ID, METER_ID)
    cli = MeterSecurity(tmp_path, SERVER_ID, METER_ID)
    assert Selector.SYM_HDLC not in daemon.selectors()
    cli.store.set_master_key(MK)
    assert Selector.SYM_HDLC in daemon.selectors()


def test_corrupt_state_refuses_every_selector_and_says_why(tmp_path, caplog) -> None:
    sec = MeterSecurity(tmp_path, SERVER_ID, METER_ID)
    sec.store.path.parent.mkdir(parents=True)
    sec.store.path.write_text("{broken")
    assert sec.layer_for(Selector.SML_COSEM, object) is None
    assert "corrupt" in caplog.text
    assert "sym_error" in sec.describe()


def test_option_combinations_are_checked(tmp_path) -> None:
    with pytest.raises(SecurityError, match="together"):
        MeterSecurity(tmp_path, SERVER_ID, METER_ID, TlsOptions(key_file=tmp_path / "k.pem"))
    with pytest.raises(SecurityError, match="given-time"):
        MeterSecurity(tmp_path, SERVER_ID, METER_ID, TlsOptions(validity=ValidityPolicy.GIVEN_TIME))


# --- start check ----------------------------------------------------------------------------------------


def test_world_readable_private_key_prevents_start(cfg, tmp_path) -> None:
    assert startup_problems(cfg) == []
    keys_generate(cfg, METER_ID)
    sec = sec_of(cfg)
    assert startup_problems(cfg) == []
    os.chmod(sec.key_path, 0o644)
    (problem,) = startup_problems(cfg)
    assert str(sec.key_path) in problem and "chmod 600" in problem and "0644" in problem
    os.chmod(sec.key_path, 0o600)
    keys_set_master_key(cfg, METER_ID, mk_file(tmp_path))
    os.chmod(sec.store.path, 0o640)
    (problem,) = startup_problems(cfg)
    assert str(sec.store.path) in problem


def test_yaml_key_file_mode_is_checked(tmp_path) -> None:
    key, cert = keys.generate_identity(METER_ID)
    (tmp_path / "k.pem").write_bytes(key)
    os.chmod(tmp_path / "k.pem", 0o604)
    (tmp_path / "c.pem").write_bytes(cert)
    meter = SimpleNamespace(id=MeterId.parse(METER_ID), tls=TlsOptions(tmp_path / "k.pem", tmp_path / "c.pem"))
    cfg = SimpleNamespace(state_dir=tmp_path / "state", meters=[meter], source="x.yaml")
    (problem,) = startup_problems(cfg)
    assert "k.pem" in problem
    assert sec_of(cfg).layer_for(Selector.TLS_SML_COSEM, object) is None  # no gateway cert anyway


# --- config section and argparse ------------------------------------------------------------------------


def test_tls_schema_section() -> None:
    schema = Map(fields={"tls": TLS})
    raw = load_yaml("tls: {gateway_cert_file: /etc/bab/gw.pem, curve: secp384r1, validity: system-clock}", schema)
    opts = TlsOptions.from_mapping(raw["tls"])
    assert opts.gateway_cert_file is not None and opts.gateway_cert_file.name == "gw.pem"
    assert opts.curve is Curve.SECP384R1 and opts.validity is ValidityPolicy.SYSTEM_CLOCK
    default = TlsOptions.from_mapping(load_yaml("{}", schema)["tls"])
    assert default == TlsOptions() and default.validity is ValidityPolicy.IGNORE
    assert default.curve is Curve.BRAINPOOL_P256R1
    with pytest.raises(ConfigError, match="validity"):
        load_yaml("tls: {validity: sometimes}", schema)


def test_argparse_wiring(cfg, tmp_path, capsys) -> None:
    parser = argparse.ArgumentParser(prog="bab")
    add_keys_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["keys", "-c", cfg.source, "set-master-key", "--meter", METER_ID, mk_file(tmp_path)])
    assert args.func(args) == 0
    args = parser.parse_args(["keys", "-c", cfg.source, "generate", "--meter", METER_ID, "--curve", "secp384r1"])
    assert args.func(args) == 0
    args = parser.parse_args(["keys", "-c", cfg.source, "show"])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "master key: provisioned" in text and "secp384r1" in text
    with pytest.raises(SystemExit):
        parser.parse_args(["keys", "-c", cfg.source, "set-master-key", "--meter", METER_ID])  # no FILE|-
    args = parser.parse_args(["keys", "-c", str(tmp_path / "missing.yaml"), "show"])
    assert args.func(args) == 78
