"""The real meter runtime behind the LMN: SML/COSEM carried in TLS on selector 1, paired by SYM on selector 6.

Uses :class:`bab.meter.MeterRuntime` (what the daemon runs: COSEM model, SML server, MeterSecurity, the
crypto-reset hook) on the virtual bus in virtual time, against the software gateway's TLS (OpenSSL) and SML
client. Covers the TLS matrix followed by a GetProcParameter of 1.8.0 through the channel, and the whole
commissioning: address -> SYM pairing -> TLS -> SML reads -> crypto-reset by SetProcParameter over TLS ->
re-pairing with a new gateway certificate.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from test_tls_hdlc_support import Link, identity

from bab import config
from bab.cosem.objects import CosemClass, ObjectName
from bab.gateway.security import GatewaySecurity
from bab.hdlc import events as ev
from bab.hdlc.frame import Selector
from bab.meter import MeterRuntime
from bab.obis import Obis
from bab.reading import Reading
from bab.sml.client import DEFAULT_OBJECTS, SmlClient
from bab.tls import GatewayTlsContext, wolfssl_binding
from bab.tls.hdlc_layer import InlineExecutor, TlsClientLayer
from bab.tls.keys import Curve
from bab.tls.policy import CIPHER_SUITES

pytestmark = pytest.mark.skipif(not wolfssl_binding.available(), reason="wolfSSL binding not built")

METER = "1BAB0000000042"
MK = bytes.fromhex("00112233445566778899aabbccddeeff")
CRYPTO_RESET = ObjectName(Obis(1, 0, 94, 49, 0, 7), CosemClass.DATA)


def runtime(tmp_path, tls_yaml: str = "") -> MeterRuntime:
    cfg = config.loads(f"""lmn: {{port: x}}
state_dir: {tmp_path}
meters:
  - id: "{METER}"
    driver: {{type: simulated}}
{tls_yaml}""")
    # Virtual time: the expensive TLS/SYM steps run inline (the daemon runs them on a worker thread).
    m = MeterRuntime(cfg.meters[0], cfg.lmn, cfg.state_dir, clock=lambda: 1000.0, executor=InlineExecutor())
    m.values.publish([Reading.from_text("1-0:1.8.0", "12345.678", "kWh"), Reading.from_text("1-0:16.7.0", "7", "W")])
    return m


def sml_read(link: Link, selector: int, wrap=lambda inner: inner):
    client = SmlClient.read_objects(link.station.server_id, DEFAULT_OBJECTS[:1])
    result = link.converse(selector, wrap(client))
    return result, client.result


def energy(result) -> Decimal | None:
    r = result.reading("1-0:1.8.0") if result is not None else None
    return r.decimal if r is not None else None


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """Per curve: the meter's key/cert and the gateway's, as files (the 'provisioned elsewhere' route)."""
    d = tmp_path_factory.mktemp("tls")
    out = {}
    for curve in Curve:
        mk, mc = identity(METER, curve)
        gk, gc = identity("SMGW", curve)
        files = {}
        for name, data in (("meter.key", mk), ("meter.crt", mc), ("gw.crt", gc)):
            p = d / f"{curve.value}-{name}"
            p.write_bytes(data)
            p.chmod(0o600)
            files[name] = p
        out[curve] = (files, gk, gc, mc)
    return out


@pytest.mark.parametrize("suite", CIPHER_SUITES)
@pytest.mark.parametrize("curve", list(Curve))
def test_tls_matrix_then_sml_get_1_8_0(tmp_path, tls_files, suite, curve):
    files, gk, gc, mc = tls_files[curve]
    m = runtime(tmp_path, f"""    tls: {{key_file: {files['meter.key']}, cert_file: {files['meter.crt']},
           gateway_cert_file: {files['gw.crt']}}}
""")
    link = Link(m._layer_for)
    gctx = GatewayTlsContext(key_pem=gk, cert_pem=gc, peer_cert_pem=mc, groups=[curve], ciphers=suite)
    tls = []
    result, sml = sml_read(link, Selector.TLS_SML_COSEM, lambda inner: tls.append(
        TlsClientLayer(gctx.new_connection(), inner)) or tls[0])
    assert isinstance(result, ev.ConversationDone), result
    assert energy(sml) == Decimal("12345678") and sml.ok
    info = tls[0].tls.info
    assert info.cipher_suite == suite and info.group is curve
    # A gateway certificate is provisioned: plain SML/COSEM is refused with DM.
    result, _ = sml_read(link, Selector.SML_COSEM)
    assert isinstance(result, ev.ExchangeFailed) and result.reason == "refused (DM)"


def test_commissioning_pair_read_crypto_reset_repair(tmp_path):
    m = runtime(tmp_path / "meter")
    m.security.store.set_master_key(MK)
    link = Link(m._layer_for)
    sid = m.server_id

    # Unpaired: plain SML works, and a crypto-reset outside TLS is refused (FE 0A), nothing changes.
    result, sml = sml_read(link, Selector.SML_COSEM)
    assert energy(sml) == Decimal("12345678")
    reset = SmlClient.set_parameter(sid, CRYPTO_RESET, True)
    link.converse(Selector.SML_COSEM, reset)
    assert not reset.result.ok and m.security.master_key_provisioned

    # SYM pairing on selector 6 with the master key, then SML over TLS on selector 1.
    gw1 = GatewaySecurity(tmp_path / "gw1")
    paired = []
    assert isinstance(link.converse(Selector.SYM_HDLC, gw1.pairing_client(sid, MK, on_result=paired.append)),
                      ev.ConversationDone)
    assert paired[0].ok and m.security.paired
    result, sml = sml_read(link, Selector.TLS_SML_COSEM, lambda inner: gw1.tls_client(sid, inner))
    assert isinstance(result, ev.ConversationDone) and energy(sml) == Decimal("12345678")
    result, _ = sml_read(link, Selector.SML_COSEM)
    assert isinstance(result, ev.ExchangeFailed)  # paired: plain SML refused with DM

    # Crypto-reset: SetProcParameter 1-0:94.49.0*7 = TRUE over TLS -> Attention OK, meter unpaired.
    resets = []
    job = gw1.crypto_reset_job(sid, lambda: resets.append(SmlClient.set_parameter(sid, CRYPTO_RESET, True))
                               or resets[-1], confirm=lambda inner: inner.result is not None and inner.result.ok)
    assert isinstance(link.converse(job.selector, job.layer), ev.ConversationDone)
    assert resets[0].result.ok, resets[0].result
    assert not m.security.paired and m.counters.get("crypto_resets") == 1
    assert gw1.meter_certificate(sid) is None

    # The old gateway can no longer talk TLS; a new gateway certificate pairs again and reads.
    result = link.converse(Selector.TLS_SML_COSEM, TlsClientLayer(
        GatewayTlsContext(key_pem=gw1.credentials()[0], cert_pem=gw1.credentials()[1],
                          peer_cert_pem=m.security.own_identity()[1]).new_connection(),
        SmlClient.read_objects(sid, DEFAULT_OBJECTS[:1])))
    assert isinstance(result, ev.ExchangeFailed)
    gw2 = GatewaySecurity(tmp_path / "gw2")
    paired.clear()
    link.converse(Selector.SYM_HDLC, gw2.pairing_client(sid, MK, on_result=paired.append))
    assert paired[0].ok and m.security.gateway_certificate()[0] == gw2.certificate_der()
    result, sml = sml_read(link, Selector.TLS_SML_COSEM, lambda inner: gw2.tls_client(sid, inner))
    assert energy(sml) == Decimal("12345678")
