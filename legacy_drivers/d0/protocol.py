"""Sans-I/O IEC 62056-21 (D0) client: the reading side of modes A, B, C and D (LMN-STACK.md section 9.2).

:class:`D0Client` is a pure state machine. It takes received bytes (:meth:`D0Client.receive`), the passing
of time (:meth:`D0Client.tick`) and the start of a readout cycle (:meth:`D0Client.start`), each with the
current monotonic time as an argument, and returns what to do as a list of events: bytes to transmit, a
baud-rate change, a received readout, a failed cycle or a dropped telegram. It reads no clock, does no I/O
and has no threads; :meth:`D0Client.deadline` says when it next wants :meth:`D0Client.tick` to be called.

Character framing: the line is 7E1. The transport should be set to 7E1, but the core always clears bit 7 of
every received byte, so a transport that reads the line as 8N1 (parity bit arriving as bit 7) works too. All
bytes the core transmits are 7-bit ASCII (the transport adds the parity bit).

Modes (IEC 62056-21 clause 6):

* **A** - sign-on ``/?[address]!CRLF`` at 300 baud, identification ``/XXXZident CRLF``, data message at 300
  baud, no baud-rate change.
* **B** - as A, but a letter baud character ``A``..``I`` in the identification means the meter switches to
  that rate right after it; the client switches too (no acknowledgement).
* **C** - a digit baud character ``0``..``6``: the client waits the reaction time (200 ms, or 20 ms when the
  3rd letter of the manufacturer's FLAG ID is lower case), sends ``ACK V Z Y CRLF`` and both sides change
  to the rate of ``Z``. ``Y`` = ``0`` asks for the data readout, ``1`` for programming mode, which the core
  uses for the optional password (``P1``) followed by ``R1`` reads of a configured register list.
* **D** - no sign-on: the meter pushes identification and data (2400 baud per the standard; some meters use
  9600). Telegrams with ``STX .. ETX BCC`` framing are checked; plain ``/ident .. !CRLF`` telegrams (as
  EasyMeter and many eHZ D0 push interfaces send them) are accepted without a BCC.

The data message is ``STX <data lines> ! CR LF ETX BCC`` with BCC = XOR of all bytes after STX up to and
including ETX. Programming-mode messages start with SOH and their BCC covers everything after the SOH.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

SOH, STX, ETX, EOT, ACK, NAK = 0x01, 0x02, 0x03, 0x04, 0x06, 0x15
CRLF = b"\r\n"

#: Mode C baud characters (IEC 62056-21 6.3.14, protocol mode C/E).
BAUD_C: dict[str, int] = {"0": 300, "1": 600, "2": 1200, "3": 2400, "4": 4800, "5": 9600, "6": 19200}
#: Mode B baud characters.
BAUD_B: dict[str, int] = {"A": 600, "B": 1200, "C": 2400, "D": 4800, "E": 9600, "F": 19200}

_IDENT = re.compile(rb"^/([A-Za-z]{3})([\x20-\x7e])([\x20-\x7e]{0,64})$")


def bcc(data: bytes) -> int:
    """The IEC 62056-21 block check character: XOR of all (7-bit) bytes of ``data``."""
    value = 0
    for b in data:
        value ^= b
    return value & 0x7F


def wire_time(nbytes: int, baudrate: int) -> float:
    """Seconds ``nbytes`` take on a 7E1 line (10 bits per character) at ``baudrate``."""
    return nbytes * 10 / baudrate


def sign_on(address: str = "") -> bytes:
    """The request message ``/?[address]!CRLF``."""
    return b"/?" + address.encode("ascii") + b"!" + CRLF


def command(cmd: bytes, data: bytes | None) -> bytes:
    """A programming-mode command message ``SOH C D [STX data] ETX BCC`` (BCC over everything after SOH)."""
    body = cmd + (bytes([STX]) + data if data is not None else b"") + bytes([ETX])
    return bytes([SOH]) + body + bytes([bcc(body)])


class D0Mode(enum.Enum):
    A = "A"
    B = "B"
    C = "C"
    D = "D"


@dataclass(frozen=True)
class Identification:
    """The meter's identification message ``/XXXZ<ident>``."""

    manufacturer: str  # FLAG ID, e.g. "EMH", "LGZ", "ISk"
    baud_char: str
    ident: str  # everything after the baud character (may contain "\\W" enhanced-capability sequences)

    @property
    def fast_reaction(self) -> bool:
        """A lower-case 3rd letter: the meter allows a 20 ms reaction time."""
        return self.manufacturer[2].islower()

    @property
    def text(self) -> str:
        return f"/{self.manufacturer}{self.baud_char}{self.ident}"

    @classmethod
    def parse(cls, line: bytes) -> Identification:
        """Parse an identification line (without CRLF); raises ValueError on anything else."""
        m = _IDENT.match(line)
        if not m:
            raise ValueError(f"not an identification message: {line[:40]!r}")
        return cls(m.group(1).decode(), chr(m.group(2)[0]), m.group(3).decode())


@dataclass(frozen=True)
class D0Config:
    """Protocol options of one D0 meter (the driver fills it from its YAML options)."""

    mode: D0Mode = D0Mode.C
    address: str = ""  # device address for the sign-on; "" addresses any meter
    initial_baudrate: int = 300  # sign-on rate (modes A-C) or push rate (mode D)
    max_baudrate: int = 19200  # cap for the mode C negotiation
    reaction_delay: float = 0.2  # client reaction time before the ACK (and before P1/R1/B0)
    fast_reaction_delay: float = 0.02  # used instead when the meter allows the 20 ms rule
    honour_fast_reaction: bool = True
    changeover_delay: float = 0.03  # extra wait after the ACK left the wire, before switching baud
    response_timeout: float = 2.0  # longest silence while waiting for the meter
    ack_baud_char: str | None = None  # force the Z character of the ACK (meters that lie)
    ident_baud_char: str | None = None  # treat the identification as if it had this baud character
    password: str | None = None  # P1 password; switches mode C to programming mode (Y = '1')
    password_registers: tuple[str, ...] = ("1.8.0", "2.8.0")  # read with R1 after the password
    max_message_bytes: int = 16384  # bound of the receive buffer (overrun -> counted drop)

    def __post_init__(self) -> None:
        if self.ident_baud_char is not None and (len(self.ident_baud_char) != 1
                                                 or not self.ident_baud_char.isprintable()):
            raise ValueError(f"ident_baud_char must be one character, got {self.ident_baud_char!r}")
        if self.ack_baud_char is not None and self.ack_baud_char not in BAUD_C:
            raise ValueError(f"ack_baud_char must be one of {''.join(BAUD_C)}, got {self.ack_baud_char!r}")
        if self.password is not None and any(c in self.password for c in "()/!"):
            raise ValueError("the password must not contain '(', ')', '/' or '!'")


# ---- output events ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Transmit:
    """Send these bytes now."""

    data: bytes


@dataclass(frozen=True)
class ChangeBaud:
    """Switch the transport to this baud rate now (the core already waited for the wire to be clear)."""

    baudrate: int


@dataclass(frozen=True)
class Identified:
    identification: Identification


@dataclass(frozen=True)
class Readout:
    """A complete data message: its data lines (text without STX/ETX) and how it arrived."""

    identification: Identification | None
    data: str
    baudrate: int
    checked: bool  # True when a BCC was present and correct
    time: float  # monotonic time at which the message was complete


@dataclass(frozen=True)
class CycleFailed:
    """A pull cycle ended without a readout. ``reason`` is one of the counter names of :attr:`D0Client.stats`."""

    reason: str
    detail: str


@dataclass(frozen=True)
class Dropped:
    """A push telegram (mode D) or part of one was dropped; the client goes on listening."""

    reason: str
    detail: str


Event = Transmit | ChangeBaud | Identified | Readout | CycleFailed | Dropped


class State(enum.Enum):
    IDLE = "idle"
    WAIT_IDENT = "wait identification"
    WAIT_ACK_SEND = "reaction delay"
    WAIT_CHANGEOVER = "baud changeover"
    WAIT_DATA = "wait data message"
    WAIT_OPERAND = "wait password operand"
    WAIT_PASSWORD_SEND = "reaction delay (password)"
    WAIT_PASSWORD_REPLY = "wait password reply"
    WAIT_READ_SEND = "reaction delay (read)"
    WAIT_REGISTER = "wait register"
    WAIT_BREAK_SEND = "reaction delay (break)"
    PUSH_IDENT = "wait push identification"
    PUSH_DATA = "wait push data"
    DONE = "done"


_COUNTERS = ("readouts", "timeouts", "bcc_errors", "overruns", "garbage", "bad_identification",
             "password_rejected", "register_errors")


@dataclass
class _Pending:
    """Data collected over one cycle in programming mode."""

    lines: list[str] = field(default_factory=list)
    registers: list[str] = field(default_factory=list)


class D0Client:
    """The client (reading) side of IEC 62056-21 as a sans-I/O state machine. See the module docstring."""

    def __init__(self, config: D0Config | None = None) -> None:
        self.config = config or D0Config()
        self.state = State.IDLE
        self.baudrate = self.config.initial_baudrate
        self.identification: Identification | None = None
        self.stats: dict[str, int] = dict.fromkeys(_COUNTERS, 0)
        self._buf = bytearray()
        self._deadline: float | None = None
        self._timeout_at: float | None = None
        self._pending_baud: int | None = None
        self._sent_sign_on = b""
        self._prog = _Pending()
        self._password_failed = False
        if self.config.mode is D0Mode.D:
            self.state = State.PUSH_IDENT

    # ---- inputs ------------------------------------------------------------------------------------------

    def start(self, now: float) -> list[Event]:
        """Begin a pull readout cycle (modes A-C). In mode D this only resets the receiver."""
        self._buf.clear()
        self.identification = None
        self._prog = _Pending()
        self._password_failed = False
        out: list[Event] = []
        if self.baudrate != self.config.initial_baudrate:
            self.baudrate = self.config.initial_baudrate
            out.append(ChangeBaud(self.baudrate))
        if self.config.mode is D0Mode.D:
            self.state = State.PUSH_IDENT
            self._deadline = self._timeout_at = None
            return out
        self._sent_sign_on = sign_on(self.config.address)
        out.append(Transmit(self._sent_sign_on))
        self.state = State.WAIT_IDENT
        self._deadline = None
        self._timeout_at = now + wire_time(len(self._sent_sign_on), self.baudrate) + self.config.response_timeout
        return out

    def receive(self, data: bytes, now: float) -> list[Event]:
        """Bytes from the line (parity bit stripped here)."""
        out: list[Event] = []
        if not data:
            return out
        if self.state in (State.IDLE, State.DONE):
            self.stats["garbage"] += len(data)  # unsolicited bytes between cycles
            return out
        self._buf += bytes(b & 0x7F for b in data)
        if self._timeout_at is not None:
            self._timeout_at = now + self.config.response_timeout
        self._process(now, out)
        if len(self._buf) > self.config.max_message_bytes:
            self.stats["overruns"] += 1
            detail = f"more than {self.config.max_message_bytes} bytes without end of message"
            self._buf.clear()
            if self.config.mode is D0Mode.D:
                self.state = State.PUSH_IDENT
                out.append(Dropped("overruns", detail))
            else:
                out.extend(self._fail("overruns", detail))
        return out

    def tick(self, now: float) -> list[Event]:
        """Let time pass: sends delayed messages, changes baud rate, detects time-outs."""
        out: list[Event] = []
        if self._deadline is not None and now >= self._deadline:
            self._deadline = None
            self._on_deadline(now, out)
        if self._timeout_at is not None and now >= self._timeout_at and self.state not in (State.IDLE, State.DONE):
            self.stats["timeouts"] += 1
            out.extend(self._fail("timeouts", f"no answer from the meter ({self.state.value})"))
        return out

    def deadline(self) -> float | None:
        """The monotonic time at which :meth:`tick` must next be called (None: only on input)."""
        times = [t for t in (self._deadline, self._timeout_at) if t is not None]
        return min(times) if times else None

    @property
    def busy(self) -> bool:
        """A pull cycle is in progress."""
        return self.state not in (State.IDLE, State.DONE, State.PUSH_IDENT, State.PUSH_DATA)

    # ---- internals ---------------------------------------------------------------------------------------

    def _fail(self, reason: str, detail: str) -> list[Event]:
        self.state = State.DONE
        self._deadline = self._timeout_at = None
        self._buf.clear()
        return [CycleFailed(reason, detail)]

    def _reaction(self) -> float:
        ident = self.identification
        if ident is not None and ident.fast_reaction and self.config.honour_fast_reaction:
            return min(self.config.fast_reaction_delay, self.config.reaction_delay)
        return self.config.reaction_delay

    def _schedule(self, state: State, at: float) -> None:
        self.state = state
        self._deadline = at
        self._timeout_at = None  # our own turn: no reply time-out while we wait to send

    def _expect(self, state: State, now: float, sent: int = 0) -> None:
        self.state = state
        self._timeout_at = now + wire_time(sent, self.baudrate) + self.config.response_timeout

    def _send(self, data: bytes, state: State, now: float, out: list[Event]) -> None:
        out.append(Transmit(data))
        self._expect(state, now, len(data))

    def _on_deadline(self, now: float, out: list[Event]) -> None:
        cfg = self.config
        if self.state is State.WAIT_ACK_SEND:
            assert self.identification is not None and self._pending_baud is not None
            y = "1" if cfg.password else "0"
            z = next(k for k, v in BAUD_C.items() if v == self._pending_baud)
            ack = bytes([ACK]) + f"0{z}{y}".encode() + CRLF
            out.append(Transmit(ack))
            # switch once the ACK has left the wire at the old rate, before the meter answers at the new one
            self._schedule(State.WAIT_CHANGEOVER, now + wire_time(len(ack), self.baudrate) + cfg.changeover_delay)
        elif self.state is State.WAIT_CHANGEOVER:
            assert self._pending_baud is not None
            if self._pending_baud != self.baudrate:
                self.baudrate = self._pending_baud
                out.append(ChangeBaud(self.baudrate))
            self._expect(State.WAIT_OPERAND if cfg.password else State.WAIT_DATA, now)
        elif self.state is State.WAIT_PASSWORD_SEND:
            self._send(command(b"P1", f"({cfg.password})".encode()), State.WAIT_PASSWORD_REPLY, now, out)
        elif self.state is State.WAIT_READ_SEND:
            reg = self._prog.registers[0]
            self._send(command(b"R1", f"{reg}()".encode()), State.WAIT_REGISTER, now, out)
        elif self.state is State.WAIT_BREAK_SEND:
            out.append(Transmit(command(b"B0", None)))
            self.state = State.DONE
            self._timeout_at = None
            if self._password_failed:
                out.append(CycleFailed("password_rejected", "the meter rejected the password"))
            else:
                self.stats["readouts"] += 1
                data = "".join(line + "\r\n" for line in self._prog.lines) + "!\r\n"
                out.append(Readout(self.identification, data, self.baudrate, True, now))

    def _process(self, now: float, out: list[Event]) -> None:
        while True:
            before = (self.state, len(self._buf))
            if self.state is State.WAIT_CHANGEOVER:
                return  # keep: on transports without a real line rate (pty, TCP) the data may come early
            handler = _HANDLERS.get(self.state)
            if handler is None:
                # our own turn (reaction delay/changeover): bytes now are echo or noise
                self.stats["garbage"] += len(self._buf)
                self._buf.clear()
                return
            handler(self, now, out)
            if (self.state, len(self._buf)) == before or not self._buf:
                return

    def _take_line(self) -> bytes | None:
        i = self._buf.find(CRLF)
        if i < 0:
            return None
        line = bytes(self._buf[:i])
        del self._buf[: i + 2]
        return line

    def _skip_to(self, marks: bytes) -> bool:
        """Drop bytes before the first of ``marks``; True when one is at the front."""
        for i, b in enumerate(self._buf):
            if b in marks:
                if i:
                    self.stats["garbage"] += i
                    del self._buf[:i]
                return True
        self.stats["garbage"] += len(self._buf)
        self._buf.clear()
        return False

    def _read_ident(self) -> Identification | None:
        """Find an identification line in the buffer; garbage lines are counted and skipped."""
        while True:
            if not self._skip_to(b"/"):
                return None
            line = self._take_line()
            if line is None:
                if len(self._buf) > 96:  # no identification is this long: drop the '/' and resync
                    self.stats["bad_identification"] += 1
                    del self._buf[:1]
                    continue
                return None
            if line + CRLF == self._sent_sign_on:
                continue  # echo of our own request (half-duplex optical heads)
            try:
                return Identification.parse(line)
            except ValueError:
                self.stats["bad_identification"] += 1

    def _on_wait_ident(self, now: float, out: list[Event]) -> None:
        ident = self._read_ident()
        if ident is None:
            return
        self.identification = ident
        out.append(Identified(ident))
        cfg = self.config
        z = cfg.ident_baud_char or ident.baud_char
        if cfg.mode is D0Mode.A:
            self._expect(State.WAIT_DATA, now)
        elif z in BAUD_C:
            meter = BAUD_C[z]
            if cfg.ack_baud_char is not None:
                rate = BAUD_C[cfg.ack_baud_char]
            else:
                rate = max((b for b in BAUD_C.values() if b <= min(meter, cfg.max_baudrate)), default=300)
            self._pending_baud = rate
            self._schedule(State.WAIT_ACK_SEND, now + self._reaction())
        elif z in BAUD_B:
            # mode B: the meter switches right after its identification; no acknowledgement
            self._pending_baud = BAUD_B[z]
            self._schedule(State.WAIT_CHANGEOVER, now)
        else:
            self._expect(State.WAIT_DATA, now)  # mode A meter: data follows at the sign-on rate

    def _take_block(self, starts: bytes) -> tuple[bytes, bool] | None:
        """A block ``SOH/STX ... ETX BCC`` at the front of the buffer: (content between start and ETX, bcc ok)."""
        if not self._skip_to(starts):
            return None
        end = self._buf.find(bytes([ETX]), 1)
        if end < 0 or end + 1 >= len(self._buf):
            return None
        block = bytes(self._buf[: end + 2])
        del self._buf[: end + 2]
        ok = bcc(block[1:-1]) == block[-1]
        return block[1:-2], ok

    def _on_wait_data(self, now: float, out: list[Event]) -> None:
        got = self._take_block(bytes([STX]))
        if got is None:
            return
        content, ok = got
        if not ok:
            self.stats["bcc_errors"] += 1
            out.extend(self._fail("bcc_errors", "data message with a wrong block check character"))
            return
        self.state = State.DONE
        self._timeout_at = None
        self.stats["readouts"] += 1
        out.append(Readout(self.identification, content.decode("ascii", "replace"), self.baudrate, True, now))

    def _on_wait_operand(self, now: float, out: list[Event]) -> None:
        got = self._take_block(bytes([SOH]))
        if got is None:
            return
        content, ok = got
        if not ok or not content.startswith(b"P0"):
            self.stats["bcc_errors" if not ok else "garbage"] += 1
            out.extend(self._fail("bcc_errors" if not ok else "garbage", "no valid password operand (P0)"))
            return
        self._schedule(State.WAIT_PASSWORD_SEND, now + self._reaction())

    def _on_wait_password_reply(self, now: float, out: list[Event]) -> None:
        if not self._skip_to(bytes([ACK, NAK, STX])):
            return
        first = self._buf[0]
        if first == STX:  # "(ERROR)" style answers
            got = self._take_block(bytes([STX]))
            if got is None:
                return
            first = NAK
        else:
            del self._buf[:1]
        if first == ACK:
            self._prog.registers = list(self.config.password_registers)
            if self._prog.registers:
                self._schedule(State.WAIT_READ_SEND, now + self._reaction())
                return
        else:
            self.stats["password_rejected"] += 1
            self._password_failed = True
        self._schedule(State.WAIT_BREAK_SEND, now + self._reaction())

    def _on_wait_register(self, now: float, out: list[Event]) -> None:
        got = self._take_block(bytes([STX]))
        if got is None:
            if self._buf[:1] == bytes([NAK]):
                del self._buf[:1]
                got = (b"", False)
            else:
                return
        content, ok = got
        reg = self._prog.registers.pop(0)
        text = content.decode("ascii", "replace")
        if not ok or not text or "ERROR" in text.upper():
            self.stats["register_errors"] += 1
        else:
            # answers are "(value*unit)" or "ID(value*unit)"; normalise to a data line with the ID
            self._prog.lines.append(text if not text.startswith("(") else reg + text)
        self._schedule(State.WAIT_READ_SEND if self._prog.registers else State.WAIT_BREAK_SEND,
                       now + self._reaction())

    def _on_push_ident(self, now: float, out: list[Event]) -> None:
        while True:
            if not self._skip_to(b"/"):
                return
            line = self._take_line()
            if line is None:
                if len(self._buf) > 96:
                    self.stats["bad_identification"] += 1
                    del self._buf[:1]
                    continue
                return
            try:
                self.identification = Identification.parse(line)
            except ValueError:
                self.stats["bad_identification"] += 1
                continue
            out.append(Identified(self.identification))
            self.state = State.PUSH_DATA
            return

    def _on_push_data(self, now: float, out: list[Event]) -> None:
        buf = self._buf
        stx = buf.find(bytes([STX]))
        slash = buf.find(b"/")
        if stx >= 0 and (slash < 0 or stx < slash) and buf[:stx].strip(b"\r\n") == b"":
            got = self._take_block(bytes([STX]))
            if got is None:
                return
            content, ok = got
            self.state = State.PUSH_IDENT
            if not ok:
                self.stats["bcc_errors"] += 1
                out.append(Dropped("bcc_errors", "push telegram with a wrong block check character"))
                return
            self.stats["readouts"] += 1
            out.append(Readout(self.identification, content.decode("ascii", "replace"), self.baudrate, True, now))
            return
        # plain push telegram: data lines up to "!" CRLF, no BCC
        end = re.search(rb"(^|\r\n)!\r\n", bytes(buf))
        if slash >= 0 and (end is None or slash < end.start()):
            # a new identification before the end: the previous telegram was cut off
            self.stats["garbage"] += slash
            del buf[:slash]
            self.state = State.PUSH_IDENT
            out.append(Dropped("garbage", "push telegram without its end"))
            return
        if end is None:
            return
        content = bytes(buf[: end.end()])
        del buf[: end.end()]
        self.state = State.PUSH_IDENT
        self.stats["readouts"] += 1
        out.append(Readout(self.identification, content.decode("ascii", "replace").lstrip("\r\n"),
                           self.baudrate, False, now))


_HANDLERS = {
    State.WAIT_IDENT: D0Client._on_wait_ident,
    State.WAIT_DATA: D0Client._on_wait_data,
    State.WAIT_OPERAND: D0Client._on_wait_operand,
    State.WAIT_PASSWORD_REPLY: D0Client._on_wait_password_reply,
    State.WAIT_REGISTER: D0Client._on_wait_register,
    State.PUSH_IDENT: D0Client._on_push_ident,
    State.PUSH_DATA: D0Client._on_push_data,
}
