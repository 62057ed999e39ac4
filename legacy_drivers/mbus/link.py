"""Sans-I/O M-Bus master: one readout of one slave (EN 13757-2 link layer, EN 13757-3 selection).

:class:`MbusMaster` is a pure state machine. :meth:`MbusMaster.start` begins a readout, :meth:`receive`
takes bytes from the bus, :meth:`tick` the passing of time, each with the current monotonic time; they
return events: :class:`Transmit` (bytes to send after ``delay`` seconds), :class:`Readout` (all telegrams of
a good readout), :class:`CycleFailed` (the readout gave up, with the reason) and :class:`Dropped` (a broken
answer, counted; the attempt is repeated). :meth:`deadline` says when :meth:`tick` is next needed.

A readout of a slave at a **primary address** (0..250) is ``SND_NKE`` -> ``E5`` (optional: it resets the
slave's frame count bit and multi-telegram position), then ``REQ_UD2`` -> ``RSP_UD``. A slave chosen by its
**secondary address** (identification number with ``F`` wildcard digits, manufacturer, version, medium) is
first selected with ``SND_UD`` to address 253, CI ``52``, and answers ``E5``; it is then read at address 253
(the answer's identification number must match the selection). When a telegram ends with DIF ``1F`` the next
one is asked for with the FCB toggled, up to ``max_telegrams``.

**FCB**: the first REQ_UD2 after SND_NKE carries FCB = 1 (FCV = 1) and the bit is toggled after every good
answer; a repeated request keeps its FCB, so the slave repeats its last telegram instead of moving on.

**Timing** (EN 13757-2): a slave starts its answer within 330 bit times + 50 ms; the master gives up after
that (plus the wire time of the request and a configurable ``latency`` for USB converters and the OS) and
repeats the request up to ``retries`` times after a pause of 33 bit times. Once an answer has started, a
silence of 33 bit times (plus ``latency``) ends it. Before every request the line is left idle for 11 bit
times. A broken answer (bad checksum, wrong length, bad stop byte, truncated) is counted as :class:`Dropped`,
the rest of it is ignored until the line is quiet, and the request is repeated; it never yields a value.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from .frame import (
    ADDRESS_SECONDARY,
    CI_SELECT,
    FCB,
    FCV,
    REQ_UD2,
    SND_NKE,
    SND_UD,
    Ack,
    FrameError,
    FrameReceiver,
    LongFrame,
    ShortFrame,
    wire_time,
)
from .records import Telegram, TelegramError, decode_response, manufacturer_field


@dataclass(frozen=True)
class Primary:
    address: int

    def __post_init__(self) -> None:
        if not 0 <= self.address <= 250:
            raise ValueError(f"a primary address is 0..250, got {self.address}")

    def __str__(self) -> str:
        return f"primary address {self.address}"


@dataclass(frozen=True)
class Secondary:
    """A secondary address; ``ident`` has 8 characters, each a digit or the wildcard ``F``."""

    ident: str
    manufacturer: str | None = None
    version: int | None = None
    medium: int | None = None

    def __post_init__(self) -> None:
        if len(self.ident) != 8 or any(c not in "0123456789Ff" for c in self.ident):
            raise ValueError(f"a secondary address is 8 digits (F = any digit), got {self.ident!r}")
        if self.manufacturer is not None:
            manufacturer_field(self.manufacturer)
        for name, v in (("version", self.version), ("medium", self.medium)):
            if v is not None and not 0 <= v <= 254:
                raise ValueError(f"{name} is 0..254, got {v}")

    def selection(self) -> bytes:
        """The 8 data bytes of the selection SND_UD (ID LSB first, then manufacturer, version, medium)."""
        digits = self.ident.upper()
        ident = bytes(int(digits[i], 16) << 4 | int(digits[i + 1], 16) for i in range(0, 8, 2))[::-1]
        man = manufacturer_field(self.manufacturer).to_bytes(2, "little") if self.manufacturer else b"\xff\xff"
        return ident + man + bytes((0xFF if self.version is None else self.version,
                                    0xFF if self.medium is None else self.medium))

    def matches(self, ident: str | None) -> bool:
        if ident is None:
            return False
        return all(w in "Ff" or w == c for w, c in zip(self.ident, ident, strict=True))

    def __str__(self) -> str:
        return f"secondary address {self.ident.upper()}"


Address = Primary | Secondary


@dataclass(frozen=True)
class LinkTiming:
    baudrate: int = 2400
    latency: float = 0.05  # USB converter and OS latency, added to the time-outs
    retries: int = 2  # repetitions of a request that got no (good) answer
    max_telegrams: int = 8

    def bits(self, n: float) -> float:
        return n / self.baudrate

    @property
    def response_timeout(self) -> float:
        return self.bits(330) + 0.050 + self.latency

    @property
    def quiet(self) -> float:
        """Silence that ends an answer (or the rest of a broken one)."""
        return self.bits(33) + self.latency

    @property
    def idle_before_request(self) -> float:
        return self.bits(11)

    @property
    def retry_pause(self) -> float:
        return self.bits(33)


# ---- events -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Transmit:
    data: bytes
    delay: float = 0.0  # wait this long (line idle) before sending


@dataclass(frozen=True)
class Readout:
    telegrams: tuple[Telegram, ...]
    attempts: int = 1  # requests sent in this readout


@dataclass(frozen=True)
class CycleFailed:
    reason: str  # no_answer | bad_checksum | truncated | bad_length | bad_stop | unexpected_frame | ...
    detail: str


@dataclass(frozen=True)
class Dropped:
    reason: str
    detail: str


Event = Transmit | Readout | CycleFailed | Dropped


class _Phase(enum.Enum):
    IDLE = "idle"
    WAITING = "waiting"  # for the answer to the request in flight
    DRAINING = "draining"  # a broken answer: ignore the line until it is quiet, then repeat
    PAUSING = "pausing"  # before a repetition


@dataclass
class _Step:
    request: bytes
    expect_ack: bool


@dataclass
class MbusMaster:
    """One slave's readouts (see the module docstring)."""

    address: Address
    timing: LinkTiming = field(default_factory=LinkTiming)
    snd_nke: bool = True

    def __post_init__(self) -> None:
        self.rx = FrameReceiver()
        self._phase = _Phase.IDLE
        self._deadline: float | None = None
        self._steps: list[_Step] = []
        self._attempt = 0
        self._attempts_total = 0
        self._last_error = ("no_answer", "no answer")
        self._telegrams: list[Telegram] = []
        self._fcb = True  # the next REQ_UD2's FCB (reset by SND_NKE)
        self.unsolicited = 0

    @property
    def busy(self) -> bool:
        return self._phase is not _Phase.IDLE

    def deadline(self) -> float | None:
        return self._deadline

    # ---- requests ------------------------------------------------------------------------------------

    @property
    def _link_address(self) -> int:
        return self.address.address if isinstance(self.address, Primary) else ADDRESS_SECONDARY

    def _req_ud2(self) -> _Step:
        c = REQ_UD2 | FCV | (FCB if self._fcb else 0)
        return _Step(ShortFrame(c, self._link_address).encode(), expect_ack=False)

    def start(self, now: float) -> list[Event]:
        """Begin a readout (ignored while one is running)."""
        if self.busy:
            return []
        self._telegrams = []
        self._attempts_total = 0
        self.rx.flush()  # whatever was on the line before is not an answer
        if isinstance(self.address, Secondary):
            self._steps = [_Step(LongFrame(SND_UD, ADDRESS_SECONDARY, CI_SELECT, self.address.selection()).encode(),
                                 expect_ack=True)]
        elif self.snd_nke:
            self._steps = [_Step(ShortFrame(SND_NKE, self.address.address).encode(), expect_ack=True)]
        else:
            self._steps = []
        if not self._steps:
            self._steps = [self._req_ud2()]
        return [self._send(now, first=True)]

    def _send(self, now: float, *, first: bool, delay: float | None = None) -> Transmit:
        if first:
            self._attempt = 0
        self._attempt += 1
        self._attempts_total += 1
        step = self._steps[0]
        wait = self.timing.idle_before_request if delay is None else delay
        self._phase = _Phase.WAITING
        self._deadline = now + wait + wire_time(len(step.request), self.timing.baudrate) \
            + self.timing.response_timeout
        return Transmit(step.request, wait)

    # ---- input ---------------------------------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> list[Event]:
        if self._phase is _Phase.IDLE:
            self.unsolicited += len(data)
            self.rx.flush()
            return []
        if self._phase is not _Phase.WAITING:  # draining a broken answer / pausing: the line is not quiet
            self._deadline = now + self.timing.quiet
            if self._phase is _Phase.PAUSING:
                self._phase = _Phase.DRAINING
            return []
        out: list[Event] = []
        for item in self.rx.feed(data):
            if self._phase is not _Phase.WAITING:
                break
            out.extend(self._answer(item, now))
        if self._phase is _Phase.WAITING and self.rx.pending:
            self._deadline = now + self.timing.quiet  # an answer has started: it must go on
        elif self._phase is _Phase.DRAINING:
            self.rx.flush()
        return out

    def _broken(self, reason: str, detail: str, now: float) -> list[Event]:
        self._last_error = (reason, detail)
        self._phase = _Phase.DRAINING
        self._deadline = now + self.timing.quiet
        self.rx.flush()
        return [Dropped(reason, detail)]

    def _answer(self, item: Ack | ShortFrame | LongFrame | FrameError, now: float) -> list[Event]:
        step = self._steps[0]
        if isinstance(item, FrameError):
            return self._broken(item.reason, item.detail, now)
        if step.expect_ack:
            if not isinstance(item, Ack):
                return self._broken("unexpected_frame", f"expected E5, got {type(item).__name__}", now)
            if isinstance(self.address, Primary):
                self._fcb = True  # SND_NKE cleared the slave's FCB
            self._steps = [self._req_ud2()]
            return [self._send(now, first=True)]
        if not isinstance(item, LongFrame) or item.c & 0xCF != 0x08:
            return self._broken("unexpected_frame", f"expected RSP_UD, got {item!r}"[:120], now)
        if isinstance(self.address, Primary) and item.a != self.address.address:
            return self._broken("wrong_address", f"RSP_UD from address {item.a}", now)
        try:
            telegram = decode_response(item.ci, item.data)
        except TelegramError as exc:
            self._fcb = not self._fcb  # the exchange itself succeeded
            return self._fail(exc.reason, str(exc), [Dropped(exc.reason, str(exc))])
        if isinstance(self.address, Secondary) and telegram.header is not None \
                and not self.address.matches(telegram.header.ident):
            return self._broken("wrong_slave", f"answer from {telegram.header.ident}", now)
        self._fcb = not self._fcb
        self._telegrams.append(telegram)
        if telegram.more_follows and len(self._telegrams) < self.timing.max_telegrams:
            self._steps = [self._req_ud2()]
            return [self._send(now, first=True)]
        self._phase = _Phase.IDLE
        self._deadline = None
        return [Readout(tuple(self._telegrams), self._attempts_total)]

    def _fail(self, reason: str, detail: str, out: list[Event] | None = None) -> list[Event]:
        self._phase = _Phase.IDLE
        self._deadline = None
        self._steps = []
        self.rx.flush()
        return [*(out or []), CycleFailed(reason, detail)]

    # ---- time ----------------------------------------------------------------------------------------

    def tick(self, now: float) -> list[Event]:
        if self._deadline is None or now < self._deadline:
            return []
        out: list[Event] = []
        if self._phase is _Phase.WAITING:
            partial = self.rx.flush()
            if partial is not None:
                self._last_error = (partial.reason, partial.detail)
                out.append(Dropped(partial.reason, partial.detail))
            else:
                self._last_error = ("no_answer", f"no answer within {self.timing.response_timeout * 1000:.0f} ms")
        elif self._phase is _Phase.PAUSING:
            return [self._send(now, first=False, delay=0.0)]
        # WAITING timed out or DRAINING became quiet: repeat or give up
        if self._attempt > self.timing.retries:
            reason, detail = self._last_error
            return self._fail(reason, f"{detail} ({self._attempt} attempts, {self.address})", out)
        self._phase = _Phase.PAUSING
        self._deadline = now + self.timing.retry_pause
        return out
