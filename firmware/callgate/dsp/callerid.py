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


MIN_MARK_BITS = 8.0  # unbroken mark before a type byte (GR-30 sends 180, ETSI 80)
MODEM_MARGIN_HZ = 30.0  # tone error beyond the best modem's that rules a modem out
MIN_SEIZURE_BYTES = 5  # 0x55 characters that make a burst worth reporting if cut short


class _Assembler:
    """Collects one modem's bytes into a message: hunt for mark, then type/length/body/sum."""

    def __init__(self, modem: str) -> None:
        self.modem = modem
        self.reset()

    def reset(self) -> None:
        self.state = "hunt"
        self.buf = bytearray()
        self.seizure = 0
        self.tone_error = 0.0
        self.start: int | None = None
        self.result: CallerId | None = None

    def add(self, byte: FskByte) -> None:
        if self.state == "hunt":
            if byte.framing_ok and byte.mark_bits >= MIN_MARK_BITS:
                self.state = "msg"
                self.start = byte.sample
                self.buf.append(byte.value)
            elif byte.framing_ok and byte.value == 0x55:
                self.seizure += 1
        elif self.state == "msg":
            self.buf.append(byte.value)
            if len(self.buf) >= 2 and len(self.buf) == self.buf[1] + 3:
                self.state = "done"
                self.result = parse_message(bytes(self.buf))

    def lose_carrier(self) -> None:
        """Carrier gone: whatever was started is truncated."""
        if self.state == "msg":
            self.result = parse_message(bytes(self.buf))
            self.state = "done"
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
        self.assemblers = [_Assembler(s.name) for s in self.specs]
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

    Digits are consumed from any objects with `.sample` and `.digit` (the DTMF
    receiver's events). A message starts at A, B or D and ends at C or #; a gap
    longer than `timeout` samples between digit onsets, or the end of the
    stream, cuts it short and it is reported with error "truncated". There is
    no checksum in this signalling: `checksum_ok` means "well formed".
    """

    START = "ABD"
    END = "C#"

    def __init__(self, timeout: int = RATE // 2) -> None:
        if not isinstance(timeout, int) or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of samples, got {timeout!r}")
        self.timeout = timeout
        self.reset()

    def reset(self, at: int = 0) -> None:
        """Drop a message in progress. Digits carry their own stamps: `at` is not needed."""
        self._digits = ""
        self._start: int | None = None
        self._last: int | None = None

    def feed(self, events: Iterable, now: int | None = None) -> list[CallerIdEvent]:
        """Consume digit events; `now` (a sample index) lets a pending message time out."""
        out: list[CallerIdEvent] = []
        for ev in events:
            digit = getattr(ev, "digit", None)
            sample = getattr(ev, "sample", None)
            if not isinstance(digit, str) or not isinstance(sample, (int, np.integer)):
                continue  # not a DTMF digit event
            if self._start is not None and sample - self._last > self.timeout:
                out += self._cut_short()
            out += self._digit(digit.upper(), int(sample))
        if now is not None and self._start is not None and now - self._last > self.timeout:
            out += self._cut_short()
        return out

    def flush(self) -> list[CallerIdEvent]:
        """End of stream: a message still open is reported as truncated."""
        return self._cut_short() if self._start is not None else []

    def _digit(self, digit: str, sample: int) -> list[CallerIdEvent]:
        if self._start is None:
            if digit in self.START:
                self._start, self._last, self._digits = sample, sample, digit
            return []
        self._last = sample
        if digit in self.END:
            event = self._decode(self._start, self._digits)
            self._start, self._digits = None, ""
            return [event]
        self._digits += digit
        if len(self._digits) > 64:  # runaway: nobody sends that much
            return self._cut_short()
        return []

    def _cut_short(self) -> list[CallerIdEvent]:
        event = CallerIdEvent(self._start, "DTMF", checksum_ok=False, error="truncated",
                              raw=self._digits.encode("ascii"))
        self._start, self._digits = None, ""
        return [event]

    @staticmethod
    def _decode(sample: int, digits: str) -> CallerIdEvent:
        """Split A/B/D fields and map the absence codes."""
        raw = digits.encode("ascii")
        fields = re.findall(r"([ABD])([0-9*]*)", digits)
        if "".join(t + v for t, v in fields) != digits or not fields:
            return CallerIdEvent(sample, "DTMF", error="bad digits", raw=raw)
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
        if number is None and absent is None:
            return CallerIdEvent(sample, "DTMF", error="no number", raw=raw)
        return CallerIdEvent(sample, "DTMF", number=number, number_absent=absent,
                             checksum_ok=True, raw=raw)


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
