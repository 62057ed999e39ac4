"""Faults on the SML files the meter's SML server sends (LMN-STACK.md section 6): attention answers, a bad
transport CRC, a foreign server ID, files cut short.

:func:`faulty_sml` wraps the SML service (the factory of one :class:`~bab.sml.server.SmlServer` per
connection) that runs over plain HDLC (selector 3) and inside TLS (selector 1). While an SML fault is active
the wrapper takes each complete answer from the server, decodes it, changes it and hands out the result; the
server is not changed. With no SML fault active it passes the server's chunks through.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from bab.hdlc.upper import ServerLayer
from bab.sml import AttentionRes, GetListRes, GetProcParameterRes, SmlError, decode_file, encode_file, encode_transport
from bab.sml.transport import FrameReceived, TransportDecoder
from bab.sml.types import Tree

from .answers import DRAIN, AnswerRewriter
from .catalogue import SML
from .faults import FaultSet


class SmlFaults(AnswerRewriter):
    """One SML server connection with the meter's SML faults applied to its answer files."""

    layer = SML

    def __init__(self, inner: ServerLayer, faults: FaultSet, server_id: bytes) -> None:
        super().__init__(inner, faults)
        self.server_id = server_id
        self._decoder = TransportDecoder()

    def _collect(self) -> None:
        while chunk := self.inner.data_to_send(DRAIN):
            for event in self._decoder.feed(chunk):
                if isinstance(event, FrameReceived):
                    self._out += self._alter(event.payload)

    def _alter(self, payload: bytes) -> bytes:
        f = self.faults
        if f.get("attention") is not None or f.get("wrong_server_id") is not None:
            payload = self._rewrite(payload)
        wire = encode_transport(payload)
        if f.fire("bad_sml_crc", "answer file with a wrong CRC"):
            wire = wire[:-1] + bytes((wire[-1] ^ 0xFF,))
        if (cut := f.fire("truncated_sml", "answer file cut short")) is not None:
            wire = wire[: int(len(wire) * cut.params["fraction"])]
        return wire

    def _rewrite(self, payload: bytes) -> bytes:
        try:
            file = decode_file(payload)
        except SmlError:
            return payload
        att = self.faults.get("attention")
        messages = []
        for m in file.messages:
            body = m.body
            name = _answered_object(body, att.params["object"].to_bytes()[:6]) if att is not None else None
            if name is not None and self.faults.fire("attention", f"{att.params['object']} answered "
                                                                  f"{att.params['code'].hex().upper()}"):
                body = AttentionRes(server_id=body.server_id, attention_no=att.params["code"],
                                    attention_details=Tree(name))
            if hasattr(body, "server_id") and getattr(body, "server_id", None):
                wrong = self.faults.get("wrong_server_id")
                if wrong is not None:
                    sid = wrong.params["server_id"] or body.server_id[:-1] + bytes((body.server_id[-1] ^ 0xFF,))
                    if self.faults.fire("wrong_server_id", f"answering as {sid.hex()}"):
                        body = dataclasses.replace(body, server_id=sid)
            messages.append(dataclasses.replace(m, body=body) if body is not m.body else m)
        return encode_file(messages)


def _answered_object(body: object, obis: bytes) -> bytes | None:
    """The full object name of ``obis`` when ``body`` answers it: a GetProcParameter answer for it, or a
    GetList answer that lists it (a list has no per-entry attention, so the whole answer is replaced)."""
    if type(body) is GetProcParameterRes and body.parameter_tree_path \
            and body.parameter_tree_path[0][:6] == obis:
        return body.parameter_tree_path[0]
    if type(body) is GetListRes:
        return next((e.obj_name for e in body.val_list if e.obj_name[:6] == obis), None)
    return None


def faulty_sml(service: Callable[[], ServerLayer | None], faults: FaultSet,
               server_id: bytes) -> Callable[[], ServerLayer | None]:
    """The SML service with the meter's SML faults (a factory like the one it wraps)."""

    def factory() -> ServerLayer | None:
        layer = service()
        return SmlFaults(layer, faults, server_id) if layer is not None else None

    return factory
