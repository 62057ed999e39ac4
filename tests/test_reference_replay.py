"""The reference gateway's sessions, replayed against a real ``bab run`` on a pty (no gateway binary needed).

The traces in ``tests/vectors/reference-smgw`` were recorded between the reference SMGW (Ostfalia, LMN-STACK.md
section 13) and BAB. Played back frame by frame, BAB must answer every frame with exactly the recorded frame:
registration (address allocation and presence check), the plain SML read of 1-0:1.8.0, the whole SYM exchange
byte for byte (profile 2015 is deterministic), the DM for plain SML once paired, and the UA for the TLS
selector; one frame per poll and no stray bytes. TLS records are not replayable (random values); the live
interoperability tests (``pytest -m interop``) cover them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tty
from pathlib import Path

import pytest
from reference_trace import Replayer, TracedExchange, comparable, load_trace

from bab import config
from bab.hdlc.frame import Kind, Selector, decode_frame, kind_of
from bab.security import security_for
from bab.tls import keys

VECTORS = Path(__file__).parent / "vectors" / "reference-smgw"
KEYS = VECTORS / "keys"
METER_ID = "1EMH0004911613"


def _describe(ex: TracedExchange) -> str:
    try:
        return str(decode_frame(ex.request))
    except ValueError:
        return ex.request.hex()


def _start_bab(tmp_path: Path, port: str, emh_bug: bool) -> tuple[subprocess.Popen, Path, config.Config]:
    text = (f"lmn:\n  port: {port}\n  random_seed: 7\n"
            # the reference gateway reads a broadcast's answers once, 900 ms after sending, and checks no slots
            # (LMN-STACK.md 13): a wide reply window keeps a loaded test machine from dropping a slot reply
            "  timing: {reply_window: 0.3}\n"
            f"state_dir: {tmp_path / 'state'}\nstatus_socket: {tmp_path / 'status.sock'}\nlog_level: debug\n"
            f"meters:\n  - id: \"{METER_ID}\"\n    driver: {{type: simulated}}\n"
            f"    sym: {{emh_bug: {'true' if emh_bug else 'false'}}}\n")
    path = tmp_path / "bab.yaml"
    path.write_text(text)
    cfg = config.load(path)
    security_for(cfg, cfg.meters[0]).store.set_master_key(bytes.fromhex((KEYS / "master-key.hex").read_text()))
    log = tmp_path / "bab.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "bab.cli", "run", "--config", str(path)], stdout=out,
                                stderr=subprocess.STDOUT)
    for _ in range(300):
        if "open; presenting" in log.read_text(errors="replace") or proc.poll() is not None:
            break
        time.sleep(0.05)
    return proc, log, cfg


@pytest.mark.parametrize(("trace", "emh_bug"), [("commissioning", False), ("commissioning-emh", True)])
def test_reference_session_replays_byte_for_byte(tmp_path: Path, trace: str, emh_bug: bool) -> None:
    comments, exchanges = load_trace(VECTORS / f"{trace}.trace")
    assert any("successfully transmitted" in c for c in comments)  # the recording paired
    master, slave = os.openpty()
    tty.setraw(master)
    proc, log, cfg = _start_bab(tmp_path, os.ttyname(slave), emh_bug)
    try:
        assert proc.poll() is None, log.read_text()
        result = Replayer(master).play(exchanges, stop_before_selector=Selector.TLS_SML_COSEM)
    finally:
        proc.terminate()
        proc.wait(20)
        os.close(master)
        os.close(slave)
    out = log.read_text(errors="replace")
    assert "Traceback" not in out, out

    mismatches = [
        f"#{i} {_describe(ex)}: recorded {[r.hex() for r in ex.replies] or 'nothing'}, BAB {[a.hex() for a in ans]}"
        for i, (ex, ans) in enumerate(zip(result.exchanges, result.answers, strict=True))
        if [comparable(a) for a in ans] != [comparable(r) for r in ex.replies]
    ]
    assert not mismatches, "\n".join(mismatches)
    assert result.strays == []

    # what the replay covered: both broadcast services, plain SML, the whole SYM exchange, DM, the TLS selector
    played = [(ex.broadcast, ex.selector, kind_of(ex.request[7])) for ex in result.exchanges]
    assert (True, 1, Kind.UI) in played and (True, 2, Kind.UI) in played
    sym_requests = [ex.request for ex in result.exchanges if not ex.broadcast and ex.selector == Selector.SYM_HDLC
                    and kind_of(ex.request[7]) is Kind.I]
    assert [decode_frame(r).info[0] for r in sym_requests] == [1, 2, 3, 4, 5]
    dm = [ex for ex, ans in zip(result.exchanges, result.answers, strict=True)
          if ex.selector == Selector.SML_COSEM and ans and kind_of(ans[0][7]) is Kind.DM]
    assert len(dm) == 1  # plain SML refused once paired
    assert played[-1] == (False, Selector.TLS_SML_COSEM, Kind.SNRM)
    assert max(result.rnr_runs) < 20  # RNR kept short (the reference gateway crashes after ~196)

    # the pairing is persisted with the injected key and the gateway's certificate pinned
    sec = security_for(cfg, cfg.meters[0])
    assert sec.paired
    assert sec.gateway_certificate() == ((KEYS / "gateway-cert.der").read_bytes(), "sym-pairing")
    key, cert, source = sec.own_identity(create=False)
    assert source == "sym-injected" and keys.certificate_der(cert) == (KEYS / "meter-cert.der").read_bytes()


@pytest.mark.parametrize(("trace", "emh_bug"), [("commissioning", False), ("commissioning-emh", True)])
def test_bab_gateway_pairs_exactly_as_the_reference(trace: str, emh_bug: bool) -> None:
    """BAB's own gateway (``bab gateway --master-key``), given the recorded meter answers, sends the reference's
    SYM requests byte for byte: SYNC with CNT 0xFFFFFFFF, then the last answer's counter + 1, the credentials
    ``cert DER || key DER`` and the gateway certificate, padded only to the block boundary."""
    from bab.meter_id import MeterId
    from bab.sym import Credentials, MeterPaired, Profile2015, SymGateway

    _, exchanges = load_trace(VECTORS / f"{trace}.trace")
    requests, answers = [], []  # each SYM request and the meter's answer to it (after any RNR polls)
    for i, ex in enumerate(exchanges):
        if not ex.broadcast and ex.selector == Selector.SYM_HDLC and kind_of(ex.request[7]) is Kind.I:
            j = i
            while kind_of(exchanges[j].replies[0][7]) is Kind.RNR:
                j += 1
            requests.append(decode_frame(ex.request).info)
            answers.append(decode_frame(exchanges[j].replies[0]).info)
    assert len(requests) == 5
    gw = SymGateway(bytes.fromhex((KEYS / "master-key.hex").read_text()), MeterId.parse(METER_ID).server_id,
                    (KEYS / "gateway-cert.der").read_bytes(), profile=Profile2015(emh_bug=emh_bug),
                    meter_credentials=Credentials((KEYS / "meter-cert.der").read_bytes(),
                                                  (KEYS / "meter-key.der").read_bytes()))
    gw.start()
    for request, answer in zip(requests, answers, strict=True):
        assert gw.data_to_send() == request
        gw.receive(answer)
    (paired,) = gw.events()
    assert isinstance(paired, MeterPaired) and paired.meter_cert_der == (KEYS / "meter-cert.der").read_bytes()
