"""Caller ID: message parsing and building, the FSK burst receiver, DTMF-signalled caller ID.

Messages (Bellcore GR-30-CORE, ETSI EN 300 659-3) are: type byte, length byte,
`length` body bytes, checksum (two's complement of the mod-256 sum of all the
bytes before it).

- SDMF (type 0x04): eight ASCII digits MMDDHHMM, then the number, or the single
  character 'O' (out of area / unavailable) or 'P' (private) in its place.
- MDMF (type 0x80, ETSI "call set-up"): parameters of type, length, value.
  0x01 date/time, 0x02 number (ETSI: calling line identity), 0x04 reason the
  number is absent, 0x07 name, 0x08 reason the name is absent. Anything else
  (0x03 called number, 0x11 call type, 0x1A redirecting number...) is skipped.
- Message waiting (SDMF 0x06, MDMF 0x82) and unknown message types are parsed
  for their checksum but are not caller ID: the receiver does not report them
  unless they arrived damaged (then the type byte itself cannot be trusted).

A damaged message is never passed off as a good one: `checksum_ok` is False
and `error` says why ("bad checksum", "truncated", "malformed parameter"). The
fields that were complete are still filled in, for the record; whoever acts on
a caller ID must check `checksum_ok` / `error` first.

DTMF caller ID (ETSI EN 300 659-1 DTMF variants, as sent in the Nordic
countries, Benelux and Denmark) is decoded from DTMF digit events by
`DtmfCallerIdDecoder`; the codes it understands are listed there.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from . import RATE
from .events import CallerIdEvent
from .fsk import (BELL202, V23, ByteHold, CarrierGate, FskByte, FskDemodulator, FskSpec, FskTransmitter,
                  callerid_bits, specs_tuple)

SDMF_CALLERID = 0x04
SDMF_MWI = 0x06
MDMF_CALLERID = 0x80
MDMF_MWI = 0x82
CALLERID_TYPES = (SDMF_CALLERID, MDMF_CALLERID)

P_DATETIME = 0x01
P_NUMBER = 0x02
P_NUMBER_ABSENT = 0x04
P_NAME = 0x07
P_NAME_ABSENT = 0x08
P_VISUAL_INDICATOR = 0x0B

ABSENT_REASONS = ("O", "P")

log = logging.getLogger("callgate.dsp.callerid")


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class CallerId:
    """What one message says, and whether it can be trusted."""

    format: str  # "SDMF" or "MDMF" (from bit 7 of the type byte)
    number: str | None = None
    name: str | None = None
    datetime: str | None = None
    number_absent: str | None = None
    name_absent: str | None = None
    checksum_ok: bool = False
    error: str | None = None
    message_type: int | None = None
    message_waiting: bool | None = None
    raw: bytes = b""

    @property
    def is_callerid(self) -> bool:
        """A caller ID message (not message waiting or something unknown)."""
        return self.message_type in CALLERID_TYPES


def checksum(data: bytes) -> int:
    """The checksum byte for type+length+body: two's complement of the mod-256 sum."""
    return (-sum(data)) & 0xFF


def _text(value: bytes) -> str:
    return value.decode("latin-1")


def parse_message(data: bytes) -> CallerId:
    """Parse one message (type, length, body, checksum). Never raises on any bytes."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"parse_message needs bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data:
        return CallerId(format="MDMF", error="truncated", raw=data)
    mtype = data[0]
    fmt = "MDMF" if mtype & 0x80 else "SDMF"
    if len(data) < 2:
        return CallerId(format=fmt, error="truncated", message_type=mtype, raw=data)
    length = data[1]
    complete = len(data) >= length + 3
    body = data[2:2 + length]
    checksum_ok = complete and (sum(data[:length + 3]) & 0xFF) == 0
    fields: dict = {}
    malformed = False
    if mtype == SDMF_CALLERID:
        malformed = _parse_sdmf(body, complete, fields)
    elif mtype == SDMF_MWI:
        if complete:
            fields["message_waiting"] = {b"BBB": True, b"ooo": False}.get(body)
    elif mtype & 0x80:
        malformed = _parse_mdmf(body, complete, fields)
    if not complete:
        error = "truncated"
    elif not checksum_ok:
        error = "bad checksum"
    elif malformed:
        error = "malformed parameter"
    else:
        error = None
    return CallerId(format=fmt, checksum_ok=checksum_ok, error=error, message_type=mtype,
                    raw=data[:length + 3], **fields)


def _parse_sdmf(body: bytes, complete: bool, out: dict) -> bool:
    """Date/time then number or 'O'/'P'; True when the body cannot be SDMF."""
    if len(body) < 8:
        return complete
    out["datetime"] = _text(body[:8])
    if not complete:
        return False  # the number may be cut short: keep only the date
    rest = _text(body[8:])
    if rest in ABSENT_REASONS:
        out["number_absent"] = rest
    elif rest:
        out["number"] = rest
    return False


def _parse_mdmf(body: bytes, complete: bool, out: dict) -> bool:
    """Walk the parameters; True when one overruns the body of a complete message."""
    names = {P_DATETIME: "datetime", P_NUMBER: "number", P_NUMBER_ABSENT: "number_absent",
             P_NAME: "name", P_NAME_ABSENT: "name_absent"}
    i = 0
    while i < len(body):
        if i + 2 > len(body) or i + 2 + body[i + 1] > len(body):
            return complete
        ptype, plen = body[i], body[i + 1]
        value = body[i + 2:i + 2 + plen]
        i += 2 + plen
        if ptype in names and names[ptype] not in out:
            out[names[ptype]] = _text(value)
        elif ptype == P_VISUAL_INDICATOR and plen == 1:
            out["message_waiting"] = value[0] != 0
    return False


# --------------------------------------------------------------------------- building


_NUMBER_RE = re.compile(r"[0-9*#+]{1,20}")


def _check_number(number: str, limit: int = 20) -> bytes:
    if not isinstance(number, str) or not _NUMBER_RE.fullmatch(number) or len(number) > limit:
        raise ValueError(f"number must be 1-{limit} characters of 0-9 * # +, got {number!r}")
    return number.encode("ascii")


def _check_datetime(value: str) -> bytes:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{8}", value):
        raise ValueError(f"datetime must be 8 digits MMDDHHMM, got {value!r}")
    return value.encode("ascii")


def _check_reason(value: str, what: str) -> bytes:
    if value not in ABSENT_REASONS:
        raise ValueError(f"{what} must be 'O' (unavailable) or 'P' (private), got {value!r}")
    return value.encode("ascii")


def _check_name(name: str) -> bytes:
    if (not isinstance(name, str) or not 1 <= len(name) <= 50
            or not all(0x20 <= ord(ch) < 0x7F for ch in name)):
        raise ValueError(f"name must be 1-50 printable ASCII characters, got {name!r}")
    return name.encode("ascii")


def _finish(mtype: int, body: bytes) -> bytes:
    if len(body) > 255:
        raise ValueError(f"message body is {len(body)} bytes; at most 255 fit")
    head = bytes((mtype, len(body))) + body
    return head + bytes((checksum(head),))


def build_sdmf(datetime: str, number: str | None = None, absent: str | None = None) -> bytes:
    """SDMF caller ID (0x04): date/time, then the number or 'O'/'P'; checksum appended."""
    if (number is None) == (absent is None):
        raise ValueError("build_sdmf needs exactly one of number or absent")
    body = _check_datetime(datetime)
    body += _check_number(number, 10) if number is not None else _check_reason(absent, "absent")
    return _finish(SDMF_CALLERID, body)


def build_mdmf(number: str | None = None, name: str | None = None, datetime: str | None = None,
               number_absent: str | None = None, name_absent: str | None = None,
               extra: Sequence[tuple[int, bytes]] = (), message_type: int = MDMF_CALLERID) -> bytes:
    """MDMF caller ID (0x80) with the given parameters; checksum appended.

    `extra` adds raw (type, value) parameters after the standard ones, e.g. the
    ETSI call type 0x11, for testing that receivers skip what they do not know.
    """
    if number is not None and number_absent is not None:
        raise ValueError("build_mdmf takes number or number_absent, not both")
    if name is not None and name_absent is not None:
        raise ValueError("build_mdmf takes name or name_absent, not both")
    if not 0 <= message_type <= 255:
        raise ValueError(f"message_type must be a byte, got {message_type}")
    params: list[tuple[int, bytes]] = []
    if datetime is not None:
        params.append((P_DATETIME, _check_datetime(datetime)))
    if number is not None:
        params.append((P_NUMBER, _check_number(number)))
    if number_absent is not None:
        params.append((P_NUMBER_ABSENT, _check_reason(number_absent, "number_absent")))
    if name is not None:
        params.append((P_NAME, _check_name(name)))
    if name_absent is not None:
        params.append((P_NAME_ABSENT, _check_reason(name_absent, "name_absent")))
    for ptype, value in extra:
        if not 0 <= ptype <= 255 or not isinstance(value, (bytes, bytearray)) or len(value) > 255:
            raise ValueError(f"extra parameter ({ptype!r}, ...) must be a byte type and <=255 bytes")
        params.append((ptype, bytes(value)))
    body = b"".join(bytes((t, len(v))) + v for t, v in params)
    return _finish(message_type, body)


# Preamble lengths in bits: (seizure, mark).
# GR-30: 300 bits of seizure, 180 of mark. EN 300 659-1: seizure 96-315 bits, mark 80 +- 25.
PREAMBLES = {"bell202": (300, 180), "v23": (300, 80)}


def callerid_tx(message: bytes, spec: FskSpec = BELL202, level_dbm0: float = -13.5,
                seizure: int | None = None, mark: int | None = None,
                trailer: int = 2) -> np.ndarray:
    """The whole caller ID burst (int16): seizure, mark signal, message 8N1, short trailer."""
    if not isinstance(message, (bytes, bytearray)) or len(message) < 3:
        raise ValueError("callerid_tx needs a whole message: type, length, body, checksum")
    default_seizure, default_mark = PREAMBLES.get(spec.name, PREAMBLES["bell202"])
    bits = callerid_bits(bytes(message), default_seizure if seizure is None else seizure,
                         default_mark if mark is None else mark, trailer)
    return FskTransmitter(spec, level_dbm0).send_bits(bits)


# --------------------------------------------------------------------------- FSK receiver


MIN_MARK_BITS = 20.0
"""Unbroken mark before the type byte of a burst that began with a channel seizure.
GR-30 sends 180 bits, EN 300 659-1 80 +- 25; a noise hit may break the run."""
MIN_BARE_MARK_BITS = 40.0
"""... and before the type byte of a burst with no seizure (off-hook caller ID,
GR-30 type 2 and EN 300 659-2, sends none): more, since nothing else vouches."""
MIN_SEIZURE_BYTES = 4
"""0x55 characters that make a channel seizure (EN 300 659-1 sends at least 96
bits, about ten characters; GR-30 sends 300 bits)."""
SEIZURE_GAP_BITS = 30
"""Bits from one seizure character to the next before the run counts as broken
(a noise hit may spoil a character or two)."""
MAX_MARK_BITS = 300
"""Bits from the last seizure character to the type byte (GR-30: 180 +- 25 of mark)."""
MODEM_MARGIN_HZ = 30.0  # tone error beyond the best modem's that rules a modem out

MESSAGE_TYPES = (SDMF_CALLERID, SDMF_MWI, MDMF_CALLERID, MDMF_MWI, 0x86, 0x89)
"""Message types a burst may open with: caller ID, message waiting, and ETSI's
advice of charge and short message (received for their checksum, not reported)."""
SDMF_LENGTHS = range(9, 41)
"""An SDMF caller ID body: eight date digits and a number (or O/P)."""


def plausible_start(mtype: int, length: int) -> bool:
    """A type and length byte that a caller ID burst with no seizure may begin with."""
    if mtype == SDMF_CALLERID:
        return length in SDMF_LENGTHS
    if mtype == SDMF_MWI:
        return length == 3
    return mtype in MESSAGE_TYPES and 3 <= length <= 255


class _Assembler:
    """Collects one modem's bytes into a message: channel seizure, mark, then the message.

    Voice and music in the 1200/2200 Hz band make the demodulator read
    characters too, so nothing is taken as a message without the framing the
    standards give it:

    - a seizure (MIN_SEIZURE_BYTES of 0x55) and then at least MIN_MARK_BITS of
      mark before a type byte: the message is reported whatever becomes of it
      (a bad checksum or a cut-off message is still a damaged caller ID);
    - or, with no seizure, MIN_BARE_MARK_BITS of mark, a type and length a
      caller ID message can have, and then a good checksum: a damaged message
      without a seizure cannot be told from noise, so it is not reported.

    A seizure with nothing readable after it is reported as truncated. What is
    turned down goes to the debug log.
    """

    def __init__(self, spec: FskSpec) -> None:
        self.modem = spec.name
        self.bit = spec.samples_per_bit
        self.reset()

    def reset(self) -> None:
        self.state = "hunt"
        self.buf = bytearray()
        self.seizure = 0  # 0x55 characters in a row (a lost one or two forgiven)
        self._last_seizure = 0
        self.mark = 0.0
        self.bare = False  # the message began without a seizure
        self.tone_error = 0.0
        self.start: int | None = None
        self.result: CallerId | None = None

    def add(self, byte: FskByte) -> None:
        if self.state == "hunt":
            self._hunt(byte)
        elif self.state == "msg":
            self.buf.append(byte.value)
            if self.bare and len(self.buf) == 2 and not plausible_start(*self.buf):
                self._drop("type and length no caller ID message has")
            elif len(self.buf) >= 2 and len(self.buf) == self.buf[1] + 3:
                self._finish(parse_message(bytes(self.buf)))

    def _hunt(self, byte: FskByte) -> None:
        if not byte.framing_ok:
            return
        if byte.value == 0x55:
            near = self.seizure and byte.sample - self._last_seizure <= SEIZURE_GAP_BITS * self.bit
            self.seizure = self.seizure + 1 if near else 1
            self._last_seizure = byte.sample
            return
        if byte.value not in MESSAGE_TYPES:
            return  # a noise hit in the mark, or voice: keep hunting
        seized = (self.seizure >= MIN_SEIZURE_BYTES
                  and byte.sample - self._last_seizure <= MAX_MARK_BITS * self.bit)
        if byte.mark_bits >= (MIN_MARK_BITS if seized else MIN_BARE_MARK_BITS):
            self.state, self.bare = "msg", not seized
            self.start, self.mark = byte.sample, byte.mark_bits
            self.buf = bytearray((byte.value,))

    def _finish(self, message: CallerId) -> None:
        if self.bare and not (message.checksum_ok and message.error is None):
            self._drop(f"{message.error} and no channel seizure")
            return
        self.state, self.result = "done", message

    def _drop(self, why: str) -> None:
        log.debug("%s: %d characters after %.0f bits of mark and no seizure are not "
                  "caller ID: %s", self.modem, len(self.buf), self.mark, why)
        self.state, self.buf = "hunt", bytearray()

    def lose_carrier(self) -> None:
        """Carrier gone: whatever was started is truncated."""
        if self.state == "msg":
            self._finish(parse_message(bytes(self.buf)))
        elif self.state == "hunt" and self.seizure >= MIN_SEIZURE_BYTES:
            self.result = CallerId(format="MDMF", error="truncated")
            self.state = "done"

    def rank(self) -> tuple:
        r = self.result
        return (r.checksum_ok and r.error is None, r.checksum_ok, r.error != "truncated",
                len(r.raw), -(self.tone_error if self.tone_error is not None else 0.0))


class CallerIdReceiver:
    """Streaming FSK caller ID detector for Bell 202 and V.23 at once.

    One band gate serves every modem, so an idle line costs one band-pass and a
    block power sum per frame. While a carrier is up each modem's demodulator
    runs; when all have a message (or the carrier drops) the most trustworthy
    reading is reported: a good checksum first, then the stronger match.
    """

    def __init__(self, specs: FskSpec | Sequence[FskSpec] = (BELL202, V23), **gate_options) -> None:
        self.specs = specs_tuple(specs)
        self.gate = CarrierGate(**gate_options)
        self.demods = [FskDemodulator(s, self.gate.delay) for s in self.specs]
        self.assemblers = [_Assembler(s) for s in self.specs]
        self.holds = [ByteHold(s) for s in self.specs]
        self.reset()

    def reset(self, at: int = 0) -> None:
        """Forget any burst in progress; the next sample fed is line sample `at`."""
        self.gate.reset(at)
        for demod, asm, hold in zip(self.demods, self.assemblers, self.holds):
            demod.start(at)
            asm.reset()
            hold.clear()
        self._onset: int | None = None
        self._reported = False
        self._live = list(range(len(self.demods)))  # modems still listening to this carrier

    def feed(self, frame: np.ndarray) -> list[CallerIdEvent]:
        """Consume int16 samples; return caller ID messages completed by them."""
        out: list[CallerIdEvent] = []
        for span in self.gate.feed(frame):
            if span.onset is not None:
                self._onset = span.onset
                self._reported = False
                self._live = list(range(len(self.demods)))
                for demod, asm, hold in zip(self.demods, self.assemblers, self.holds):
                    demod.start(span.start, span.onset)
                    asm.reset()
                    hold.clear()
            for k in self._live:
                demod, asm = self.demods[k], self.assemblers[k]
                for byte in self.holds[k].pass_span(span, demod.process(span.start, span.band)):
                    asm.add(byte)
                asm.tone_error = demod.tone_error_hz
            self._choose_modem()
            if all(self.assemblers[k].state == "done" for k in self._live):
                out += self._report()
            if span.ended is not None:
                out += self._carrier_lost()
        return out

    def flush(self) -> list[CallerIdEvent]:
        """End of stream: a burst still in progress is reported as truncated."""
        if not self.gate.on:
            return []
        self.gate.on = False
        for k in self._live:
            for byte in self.holds[k].flush():
                self.assemblers[k].add(byte)
        return self._carrier_lost()

    def _choose_modem(self) -> None:
        """Early in the mark signal, stop the modems whose tones are clearly not on the line.

        40 ms of steady mark is enough for a 100 Hz mismatch (Bell 202 against
        V.23) to stand out at a fair SNR; a close call keeps every modem and
        lets the checksums decide.
        """
        if len(self._live) < 2:
            return
        errors = [self.demods[k].tone_error_hz for k in self._live]
        if any(e is None for e in errors):
            return
        best = min(errors)
        self._live = [k for k, e in zip(self._live, errors) if e <= best + MODEM_MARGIN_HZ]

    def _carrier_lost(self) -> list[CallerIdEvent]:
        for k in self._live:
            self.assemblers[k].lose_carrier()
        return self._report()

    def _report(self) -> list[CallerIdEvent]:
        done = [self.assemblers[k] for k in self._live if self.assemblers[k].result is not None]
        if not done:
            return []
        best = max(done, key=_Assembler.rank)
        msg = best.result
        sample = self._onset if not self._reported else (best.start or self._onset)
        for asm in self.assemblers:
            asm.reset()
        self._reported = True
        if msg.checksum_ok and msg.error is None and not msg.is_callerid:
            return []  # message waiting or a type we do not know, received intact
        return [CallerIdEvent.from_message(sample, msg, best.modem)]


# --------------------------------------------------------------------------- DTMF caller ID


DIGIT_PERIOD_MS = 250
"""Longest onset-to-onset time inside a DTMF caller ID message. Exchanges send a
digit every 100-140 ms (libspandsp 50 ms on / 55 ms off, Telia 70/70 ms); a
longer gap ends the message, and a message must stand alone between such gaps."""

MIN_NUMBER_DIGITS = 3
MAX_NUMBER_DIGITS = 20
MAX_MESSAGE_DIGITS = 64


class DtmfCallerIdDecoder:
    """Caller ID sent as DTMF digits before the first ring.

    Understood (ETSI EN 300 659-1 DTMF variants; codes as used by Telia, KPN and
    TDC and as documented for libspandsp):

    - ``A<number>C`` or ``A<number>#``: the calling number. Further fields
      ``D<redirecting number>`` and ``B<code>`` may follow before the end digit.
    - ``B00C``: number not available -> number_absent "O";
      ``B10C``: presentation restricted -> number_absent "P".
    - ``D1#`` / ``D1C``: restricted by the caller -> "P"; ``D2`` (international)
      and ``D3`` (technical reasons) -> "O".

    Framing, so that keys a person presses are never read as caller ID: the
    digits of one message follow each other within `timeout` samples
    (DIGIT_PERIOD_MS) and the message is the whole run between two longer gaps:
    it starts with A, B or D, ends with its first C or #, and nothing follows
    within the gap. A run is judged when the gap has passed (or at the end of
    the stream), so the event comes one gap after the end digit, still well
    before the first ring (200-500 ms after the data, EN 300 659-1).

    A framed message with a field we cannot read is still an event, with
    `error` saying why; so is a run that starts like a message and holds only
    message digits but loses its end digit ("truncated"). Anything else is not
    caller ID: it is noted in the debug log (reason and length, never the
    digits) and dropped. There is no checksum: `checksum_ok` means well formed.
    Digits are consumed from any objects with `.sample` and `.digit` (the DTMF
    receiver's events).
    """

    START = "ABD"
    END = "C#"

    def __init__(self, timeout: int = DIGIT_PERIOD_MS * RATE // 1000) -> None:
        if not isinstance(timeout, int) or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of samples, got {timeout!r}")
        self.timeout = timeout
        self.reset()

    def reset(self, at: int = 0) -> None:
        """Drop a run in progress. Digits carry their own stamps: `at` is not needed."""
        self._run: list[tuple[int, str]] = []

    def feed(self, events: Iterable, now: int | None = None) -> list[CallerIdEvent]:
        """Consume digit events; `now` (a sample index) lets a finished run be judged."""
        out: list[CallerIdEvent] = []
        for ev in events:
            digit = getattr(ev, "digit", None)
            sample = getattr(ev, "sample", None)
            if not isinstance(digit, str) or not isinstance(sample, (int, np.integer)):
                continue  # not a DTMF digit event
            if self._run and sample - self._run[-1][0] > self.timeout:
                out += self._judge()
            if len(self._run) <= MAX_MESSAGE_DIGITS:
                self._run.append((int(sample), digit.upper()))
        if now is not None and self._run and now - self._run[-1][0] > self.timeout:
            out += self._judge()
        return out

    def flush(self) -> list[CallerIdEvent]:
        """End of stream: judge the run still open."""
        return self._judge() if self._run else []

    def _judge(self) -> list[CallerIdEvent]:
        run, self._run = self._run, []
        sample, digits = run[0][0], "".join(d for _, d in run)
        why = _unframed(digits, self.START, self.END)
        if why is not None:
            log.debug("DTMF run of %d digits is not caller ID: %s", len(digits), why)
            return []
        if digits[-1] not in self.END:
            return [CallerIdEvent(sample, "DTMF", checksum_ok=False, error="truncated",
                                  raw=digits.encode("ascii"))]
        return [self._decode(sample, digits[:-1])]

    @staticmethod
    def _decode(sample: int, digits: str) -> CallerIdEvent:
        """Split A/B/D fields and map the absence codes."""
        raw = digits.encode("ascii")
        fields = re.findall(r"([ABD])([0-9]*)", digits)
        number = absent = None
        for i, (tag, value) in enumerate(fields):
            if tag == "A" and number is None and value:
                number = value
            elif tag == "B":
                absent = {"00": "O", "10": "P"}.get(value)
                if absent is None:
                    return CallerIdEvent(sample, "DTMF", error="unknown absence code", raw=raw)
            elif tag == "D" and i == 0 and len(fields) == 1:
                absent = {"1": "P", "2": "O", "3": "O"}.get(value)
                if absent is None:
                    return CallerIdEvent(sample, "DTMF", error="unknown absence code", raw=raw)
        if number is not None and not MIN_NUMBER_DIGITS <= len(number) <= MAX_NUMBER_DIGITS:
            return CallerIdEvent(sample, "DTMF", error="bad number length", raw=raw)
        if number is None and absent is None:
            return CallerIdEvent(sample, "DTMF", error="no number", raw=raw)
        return CallerIdEvent(sample, "DTMF", number=number, number_absent=absent,
                             checksum_ok=True, raw=raw)


_FIELDS = re.compile(r"(?:[ABD][0-9]*)+")


def _unframed(digits: str, start: str, end: str) -> str | None:
    """Why a run of digits is not a DTMF caller ID message; None when it is framed."""
    if len(digits) > MAX_MESSAGE_DIGITS:
        return "longer than any message"
    if digits[0] not in start:
        return "no start code"
    ends = [i for i, d in enumerate(digits) if d in end]
    if ends and ends[0] != len(digits) - 1:
        return "digits after the end code"
    body = digits[:-1] if ends else digits
    if not _FIELDS.fullmatch(body):
        return "not A/B/D fields of digits"
    if not ends and len(body) < 1 + MIN_NUMBER_DIGITS:
        return "too short to be a message cut off"
    return None


def dtmf_callerid_digits(number: str | None = None, absent: str | None = None,
                         style: str = "nordic") -> str:
    """Digits to send for DTMF caller ID.

    style "nordic": A<number>C, B00C (unavailable), B10C (private);
    style "danish": A<number>#, D3# (unavailable), D1# (private).
    """
    if style not in ("nordic", "danish"):
        raise ValueError(f"style must be 'nordic' or 'danish', got {style!r}")
    if (number is None) == (absent is None):
        raise ValueError("dtmf_callerid_digits needs exactly one of number or absent")
    end = "C" if style == "nordic" else "#"
    if number is not None:
        if not isinstance(number, str) or not re.fullmatch(r"[0-9]{1,20}", number):
            raise ValueError(f"number must be 1-20 digits 0-9, got {number!r}")
        return f"A{number}{end}"
    _check_reason(absent, "absent")
    if style == "nordic":
        return {"O": "B00C", "P": "B10C"}[absent]
    return {"O": "D3#", "P": "D1#"}[absent]
