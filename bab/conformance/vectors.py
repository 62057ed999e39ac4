"""The suite's vectors as a data set (tests/vectors/conformance/, format in its README): HDLC frames, SML
request files, SYM messages under the published test master key and TLS ClientHellos, each with what a
conformant meter must answer; and a runner that plays them against a meter through the tester.

``python -m bab.conformance.vectors DIR`` writes the files; a test keeps them equal to :func:`generate`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bab.hdlc.frame import DISC, GATEWAY_ADDRESS, SNRM, Selector, control_i, control_rr, encode_frame
from bab.meter_id import MeterId
from bab.sml.messages import GetListReq, GetProcParameterReq
from bab.sym.profile import Direction
from bab.sym.profile2015 import Profile2015

from .common import energy_request, sml_request
from .lab import LAB_METER, TEST_MASTER_KEY
from .tls_hello import OTHER_GROUPS, OTHER_SIGALGS, OTHER_SUITES, TR_SUITES, client_hello

EXAMPLE_ADDRESS = 0x10  # the address the example frames are encoded for
_CONTROLS = {"SNRM": SNRM, "DISC": DISC, "RR0": control_rr(0), "I00": control_i(0, 0)}


def _frame(v: dict[str, Any], address: int, server_id: bytes) -> bytes:
    info = bytes.fromhex(v.get("info_hex", ""))
    if v.get("info") == "sml_energy":
        info = sml_request(server_id, energy_request(1), b"VEC1")
    raw = bytearray(encode_frame(address, v["selector"], GATEWAY_ADDRESS, v["selector"], _CONTROLS[v["control"]], info))
    if v.get("corrupt") == "fcs":
        raw[-2] ^= 0x5A
    elif v.get("corrupt") == "hcs":
        raw[9] ^= 0x5A
    return bytes(raw)


def _hdlc() -> list[dict[str, Any]]:
    vs = [
        {"id": "hdlc-snrm-3", "send": {"selector": 3, "control": "SNRM"}, "expect": {"kind": ["UA"]},
         "note": "connect plain SML (an unpaired meter)"},
        {"id": "hdlc-disc-3", "send": {"selector": 3, "control": "DISC"}, "expect": {"kind": ["UA"]},
         "note": "after hdlc-snrm-3: disconnect"},
        {"id": "hdlc-disc-3-again", "send": {"selector": 3, "control": "DISC"}, "expect": {"kind": ["DM"]},
         "note": "DISC in disconnected mode"},
        {"id": "hdlc-snrm-48", "send": {"selector": 48, "control": "SNRM"}, "expect": {"kind": ["DM"]},
         "note": "SNRM on a selector no specification assigns"},
        {"id": "hdlc-rr-unconnected", "send": {"selector": 3, "control": "RR0"}, "expect": {"kind": ["DM"]},
         "note": "RR outside a connection"},
        {"id": "hdlc-snrm-bad-fcs", "send": {"selector": 3, "control": "SNRM", "corrupt": "fcs"},
         "expect": {"kind": []}, "note": "bad FCS: no answer within the 750 ms reply timeout"},
        {"id": "hdlc-i-bad-hcs", "send": {"selector": 3, "control": "I00", "info": "sml_energy", "corrupt": "hcs"},
         "expect": {"kind": []}, "note": "bad HCS: no answer"},
    ]
    sid = MeterId.parse(LAB_METER).server_id
    for v in vs:
        v["example_hex"] = _frame(v["send"], EXAMPLE_ADDRESS, sid).hex()
    return vs


def _sml() -> list[dict[str, Any]]:
    from bab.cosem.objects import CosemClass, ObjectName
    from bab.obis import Obis

    sid = MeterId.parse(LAB_METER).server_id
    unknown = ObjectName(Obis(1, 0, 99, 99, 99, 255), CosemClass.REGISTER).to_bytes()
    files = [
        ("sml-energy", energy_request(1), {"bodies": ["PublicOpenRes", "GetProcParameterRes", "PublicCloseRes"]},
         "GetProcParameter 1-0:1.8.0 class 0x8002, attributes 2..5"),
        ("sml-getlist", [GetListReq(client_id=b"BABCONF", server_id=sid)],
         {"bodies": ["PublicOpenRes", "GetListRes", "PublicCloseRes"]}, "the meter's list"),
        ("sml-unknown-object", [GetProcParameterReq(parameter_tree_path=[unknown, b"\x00\x02"])],
         {"bodies": ["PublicOpenRes", "AttentionRes", "PublicCloseRes"], "attention_error": True},
         "an object the meter does not have: an error attention (81 81 C7 C7 FE xx)"),
        ("sml-empty-path", [GetProcParameterReq(parameter_tree_path=[])],
         {"bodies": ["PublicOpenRes", "AttentionRes", "PublicCloseRes"], "attention_error": True},
         "a request with an empty parameter path"),
    ]
    return [{"id": i, "meter": LAB_METER, "request_hex": sml_request(sid, b, b"VEC1").hex(), "expect": e, "note": n}
            for i, b, e, n in files]


def _sym() -> list[dict[str, Any]]:
    p = Profile2015()
    sid = MeterId.parse(LAB_METER).server_id
    key = p.session_key(TEST_MASTER_KEY, {})
    sync = p.seal(key, sid, Direction.GATEWAY_TO_METER, 0x01, p.sync_counter, b"")
    bad_mac = sync[:-1] + bytes((sync[-1] ^ 1,))
    bad_len = sync[:1] + (int.from_bytes(sync[1:5], "big") + 1).to_bytes(4, "big") + sync[5:]
    return [
        {"id": "sym-sync", "hex": sync.hex(), "expect": "answer 0x81 that verifies under the master key",
         "note": "SYNC with the start counter 0xFFFFFFFF"},
        {"id": "sym-sync-bad-mac", "hex": bad_mac.hex(), "expect": "refused: a rejection notice (FF, 25 bytes, zero "
         "MAC) or no verifying answer", "note": "SYNC with its last MAC byte flipped"},
        {"id": "sym-sync-bad-length", "hex": bad_len.hex(), "expect": "refused", "note": "length field + 1 "
         "(not header + whole blocks + MAC)"},
    ]


def _tls() -> list[dict[str, Any]]:
    r = bytes(32)
    one = (next(iter(TR_SUITES)),)

    def refused(id: str, hello: bytes, alert: str, task: str, note: str) -> dict[str, Any]:
        return {"id": id, "hex": hello.hex(), "expect": {"alert": alert}, "task": task, "note": note}

    return [
        {"id": "tls-hello-tr", "hex": client_hello(random=r).hex(), "expect": {"server_hello": True},
         "task": "TLS_B2_GP_01_T", "note": "the TR suites, groups and signature algorithms"},
        {"id": "tls-hello-deflate", "hex": client_hello(compression=(1, 0), random=r).hex(),
         "expect": {"server_hello": True, "compression": 0}, "task": "TLS_B2_FR_12",
         "note": "DEFLATE and null offered: null chosen"},
        refused("tls-hello-ssl30", client_hello(version=0x0300, record_version=0x0300, random=r), "protocol_version",
                "TLS_B2_GP_05_T", "SSL 3.0"),
        refused("tls-hello-tls10", client_hello(version=0x0301, random=r), "protocol_version", "TLS_B2_GP_05_T",
                "TLS 1.0"),
        refused("tls-hello-tls11", client_hello(version=0x0302, random=r), "protocol_version", "TLS_B2_GP_05_T",
                "TLS 1.1"),
        refused("tls-hello-tls13", client_hello(supported_versions=(0x0304,), random=r), "protocol_version",
                "TLS_B2_GP_05_T", "TLS 1.3 only (outside the ICS of a TLS 1.2 meter)"),
        refused("tls-hello-foreign-suites", client_hello(suites=tuple(OTHER_SUITES), random=r), "handshake_failure",
                "TLS_B2_GP_02", "no suite of the ICS"),
        refused("tls-hello-foreign-groups", client_hello(suites=one, groups=tuple(OTHER_GROUPS), random=r),
                "handshake_failure", "TLS_B2_GP_04", "an ICS suite, no curve of the ICS"),
        refused("tls-hello-foreign-sigalgs", client_hello(suites=one, sigalgs=tuple(OTHER_SIGALGS), random=r),
                "handshake_failure", "TLS_B2_GP_08", "no signature algorithm of the LMN"),
        refused("tls-hello-deflate-only", client_hello(compression=(1,), random=r), "handshake_failure", "-",
                "DEFLATE only, without the null method (RFC 5246 7.4.1.2 requires it)"),
    ]


def generate() -> dict[str, Any]:
    """Every vector file's content (file name -> JSON document)."""
    return {
        "hdlc.json": {"format": "bab-lmn-vectors/1", "example_address": EXAMPLE_ADDRESS, "vectors": _hdlc()},
        "sml.json": {"format": "bab-lmn-vectors/1", "vectors": _sml()},
        "sym.json": {"format": "bab-lmn-vectors/1", "meter": LAB_METER, "master_key_hex": TEST_MASTER_KEY.hex(),
                     "profile": "2015", "vectors": _sym()},
        "tls.json": {"format": "bab-lmn-vectors/1", "selector": 1, "vectors": _tls()},
        "traces.json": {"format": "bab-lmn-vectors/1", "traces": [
            {"file": "../reference-smgw/commissioning.trace", "note": "a whole commissioning session of the "
             "reference gateway with BAB (tests/vectors/reference-smgw/README.md)"},
            {"file": "../reference-smgw/commissioning-emh.trace", "note": "the same with the EMH SYM variant"}]},
    }


def write(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, doc in generate().items():
        (directory / name).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")


def run_vectors(session, directory: Path,  # type: ignore[no-untyped-def]
                kinds: tuple[str, ...] = ("hdlc", "sml", "sym", "tls")) -> list[tuple[str, bool, str]]:
    """Play the vectors of ``kinds`` against the registered meter; (id, conforms, what came). HDLC, SML and SYM
    vectors need an unpaired meter that holds the test master key, TLS ones a paired meter."""
    from .common import ensure_registered
    from .sml_cases import SmlFilesClient
    from .sym_cases import SymRawClient, _verify
    from .tls_hello import RawTlsClient

    t = session.tester
    out: list[tuple[str, bool, str]] = []
    address = ensure_registered(session)
    def vectors(kind: str) -> list[dict[str, Any]]:
        return json.loads((directory / f"{kind}.json").read_text())["vectors"] if kind in kinds else []

    for v in vectors("hdlc"):
        got = t.exchange(_frame(v["send"], address, session.server_id), src=address)
        kind = got.frame.kind.value if got is not None else None
        out.append((v["id"], (kind in v["expect"]["kind"]) if kind else not v["expect"]["kind"], str(kind)))
    for v in vectors("sml"):
        client = SmlFilesClient([bytes.fromhex(v["request_hex"])])
        t.converse(address, Selector.SML_COSEM, client)
        names = [type(m.body).__name__ for m in client.answers[0].file.messages] if client.answers and \
            hasattr(client.answers[0], "file") else []
        ok = names == v["expect"]["bodies"]
        if ok and v["expect"].get("attention_error"):
            att = next(m.body for m in client.answers[0].file.messages if type(m.body).__name__ == "AttentionRes")
            ok = att.attention_no[4] == 0xFE
        out.append((v["id"], ok, ",".join(names)))
    for v in vectors("sym"):
        client = SymRawClient([bytes.fromhex(v["hex"])], Profile2015())
        t.converse(address, Selector.SYM_HDLC, client)
        valid = _verify(session, client.answers[0] if client.answers else None, 0x01) is not None
        out.append((v["id"], valid == (v["id"] == "sym-sync"), "valid answer" if valid else "refused"))
    for v in vectors("tls"):
        client = RawTlsClient([bytes.fromhex(v["hex"])])
        t.converse(address, Selector.TLS_SML_COSEM, client)
        f = client.flight()
        if v["expect"].get("server_hello"):
            ok = f.server_hello is not None and f.compression == v["expect"].get("compression", f.compression)
        else:  # TaSK: the named alert "or another suitable error description"
            ok = f.server_hello is None and f.alert is not None
        out.append((v["id"], ok, f.summary()))
    return out


if __name__ == "__main__":
    write(Path(sys.argv[1] if len(sys.argv) > 1 else "tests/vectors/conformance"))
