"""ITU-T V.253 voice modem protocol, pure: no I/O, no clock.

A voice modem talks two ways on one serial port:

- command state: text lines ending in CR LF (result codes such as OK, ERROR,
  CONNECT, VCON; unsolicited RING; formatted caller ID "NMBR = 5551234"),
- data state (after +VRX, +VTX or +VTR answered CONNECT): raw audio bytes in
  which 0x10 (DLE) is an escape. <DLE><DLE> is a literal 0x10 byte of audio,
  <DLE><code> is an event (ring, busy, DTMF...), <DLE><ETX> ends the data state
  and the modem is back to text. Audio we send is shielded the same way.

`ModemStream` splits the incoming bytes into those pieces and follows the
switch between the two states itself, because the first audio byte can arrive
in the same read as the CONNECT before it, and the OK after <DLE><ETX> in the
same read as the last audio. The port is read as bytes, never text: audio can
hold any byte, including CR and LF.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...dsp.callerid import parse_message
from ...dsp.events import CallerIdEvent

DLE = 0x10
ETX = 0x03
SUB = 0x1A      # <DLE><SUB>: two 0x10 audio bytes (a short form some parts send)
CAN = 0x18

# DTE -> DCE stream commands
END_TRANSMIT = bytes([DLE, ETX])         # end of our audio (+VTX)
RECEIVE_ABORT = b"\x10!"                  # end +VRX
DUPLEX_ABORT = b"\x10^"                   # end +VTR
CLEAR_TRANSMIT = bytes([DLE, CAN])

FINAL_RESULTS = frozenset({"OK", "ERROR", "CONNECT", "VCON", "NO CARRIER", "BUSY",
                           "NO DIALTONE", "NO DIAL TONE", "NO ANSWER"})
DATA_RESULTS = frozenset({"CONNECT", "VCON"})

DTMF_CODES = frozenset("0123456789*#ABCD")

# DCE -> DTE <DLE><code> events (V.253 simple event reports; the USR and Conexant
# voice command references list the same letters). What the line does with them:
DLE_EVENTS = {
    "R": "ring",            # incoming ring (some parts report RING this way in voice mode)
    "b": "busy",            # busy tone
    "d": "dial",            # dial tone
    "r": "ringback",        # ringing tone
    "s": "silence",         # presumed hang-up: silence from the start (+VSD)
    "q": "silence",         # presumed end of message: quiet after sound (+VSD)
    "c": "fax",             # T.30 fax calling tone (1100 Hz)
    "a": "fax",             # fax or data answer tone (2100 Hz)
    "e": "data",            # data calling tone (1300 Hz)
    "f": "data",            # Bell data answer tone (2225 Hz)
    "l": "loop_break",      # loop current interruption: the far end may have hung up
    "L": "reversal",        # loop current polarity reversal, where the part reports it
    "h": "local_on_hook",   # phone on the modem's PHONE jack back on hook
    "H": "local_off_hook",  # ... taken off hook
    "p": "extension_on_hook",
    "P": "extension_off_hook",
    "u": "underrun",        # our transmit buffer ran dry
    "o": "overrun",         # the modem's receive buffer overflowed
    "/": "dtmf_start",
    "~": "dtmf_end",
    "T": "timing_mark",
    "$": "bong",
}
LINE_TONES = {"busy", "dial", "ringback", "silence", "fax", "data"}


def shield(audio: bytes) -> bytes:
    """Audio as the DTE sends it in a data state: every 0x10 doubled."""
    return audio.replace(b"\x10", b"\x10\x10")


def command(text: str) -> bytes:
    """An AT command line as bytes (V.250: terminated by CR, S3)."""
    return text.encode("ascii") + b"\r"


@dataclass(frozen=True)
class Item:
    """One piece of what the modem sent: kind is line, audio, dle, end or packet."""

    kind: str
    data: bytes = b""
    text: str = ""


class ModemStream:
    """Incremental parser of the modem's byte stream (see the module docstring)."""

    def __init__(self) -> None:
        self.data = False          # in a data state (audio + DLE events)
        self._armed = False        # the next CONNECT/VCON opens a data state
        self._line = bytearray()
        self._dle = False          # a DLE was the last byte of the previous feed
        self._packet: bytearray | None = None   # inside <DLE>X ... <DLE>.
        self._skip_lf = False      # a CONNECT ended in CR: its LF may start the next feed

    def arm_data(self) -> None:
        """We sent +VRX/+VTX/+VTR: the CONNECT that answers it starts the data state."""
        self._armed = True

    def to_text(self) -> None:
        """We ended a transmit-only state ourselves: what follows is text again."""
        self.data = False
        self._armed = False
        self._dle = False

    def feed(self, chunk: bytes) -> list[Item]:
        out: list[Item] = []
        pos = 0
        while pos < len(chunk):
            if self.data:
                pos = self._feed_data(chunk, pos, out)
            else:
                pos = self._feed_text(chunk, pos, out)
        return out

    # -- text state
    def _feed_text(self, chunk: bytes, pos: int, out: list[Item]) -> int:
        n = len(chunk)
        while pos < n:
            byte = chunk[pos]
            pos += 1
            if self._dle:
                self._dle = False
                self._event(byte, out)
            elif byte == DLE:
                self._dle = True
            elif byte in (0x0D, 0x0A):
                if self._line:
                    text = decode_text(bytes(self._line)).strip()
                    self._line.clear()
                    if text:
                        out.append(Item("line", text=text))
                        if self._armed and text in DATA_RESULTS:
                            self._armed = False
                            self.data = True
                            if byte == 0x0D and pos < n and chunk[pos] == 0x0A:
                                pos += 1   # the LF of this CR LF is not audio
                            else:
                                self._skip_lf = True
                            return pos
                        if text in FINAL_RESULTS:
                            self._armed = self._armed and text not in ("ERROR", "NO CARRIER")
            elif len(self._line) < 512:
                self._line.append(byte)
        return pos

    # -- data state
    def _feed_data(self, chunk: bytes, pos: int, out: list[Item]) -> int:
        n = len(chunk)
        if self._skip_lf:
            self._skip_lf = False
            if chunk[pos] == 0x0A:
                pos += 1
        audio = bytearray()
        while pos < n:
            if self._dle:
                self._dle = False
                code = chunk[pos]
                pos += 1
                if code == DLE:
                    self._append(audio, b"\x10")
                elif code == SUB:
                    self._append(audio, b"\x10\x10")
                elif code == ETX:
                    self._flush_audio(audio, out)
                    out.append(Item("end"))
                    self.data = False
                    self._packet = None
                    return pos
                else:
                    self._flush_audio(audio, out)
                    self._event(code, out)
                continue
            nxt = chunk.find(b"\x10", pos)
            end = n if nxt < 0 else nxt
            self._append(audio, chunk[pos:end])
            pos = end
            if nxt >= 0:
                self._dle = True
                pos += 1
        self._flush_audio(audio, out)
        return pos

    def _append(self, audio: bytearray, data: bytes) -> None:
        if self._packet is not None:
            self._packet += data
        else:
            audio += data

    @staticmethod
    def _flush_audio(audio: bytearray, out: list[Item]) -> None:
        if audio:
            out.append(Item("audio", data=bytes(audio)))
            audio.clear()

    def _event(self, code: int, out: list[Item]) -> None:
        char = chr(code)
        if char == "X":                      # complex event report (caller ID in data state)
            self._packet = bytearray()
        elif char == "." and self._packet is not None:
            out.append(Item("packet", data=bytes(self._packet)))
            self._packet = None
        elif code == ETX:                    # stray end of data while in text state
            out.append(Item("end"))
        else:
            out.append(Item("dle", text=char))


# ------------------------------------------------------------------ ring reports

# "RING", and the distinctive-ring forms: "RING A".."RING D" / "RING 1".. (a pattern
# letter or number after RING), "DRON=<n>" (a ring burst ended, n x 100 ms on) and
# "DROF=<n>" (the silence before it, n x 100 ms), per the Conexant and Rockwell
# references' +VDR (distinctive ring report) and the peer call screener's logs.
_RING = re.compile(r"^RING(?:\s*([A-Z0-9]))?$")
_DISTINCTIVE = re.compile(r"^(DRON|DROF)\s*=\s*(\d{1,3})$")


@dataclass(frozen=True)
class RingReport:
    burst: bool                 # a ring burst; False: DROF= (the silence before one)
    pattern: str | None = None


def ring_report(line: str) -> RingReport | None:
    """What a ring line says, or None if `line` is not one."""
    match = _RING.match(line)
    if match:
        return RingReport(True, match.group(1))
    match = _DISTINCTIVE.match(line)
    if match:
        on = match.group(1) == "DRON"
        return RingReport(on, f"DRON={int(match.group(2))}" if on else None)
    return None


# ------------------------------------------------------------------ caller ID text

_FIELD = re.compile(r"^([A-Z_]+)\s*=\s*(.*?)\s*$")
CALLERID_KEYS = frozenset({"DATE", "TIME", "NMBR", "NAME", "MESG", "DDN_NMBR"})
# withheld spellings (NCID's modem test data and the peer screener's logs show these
# besides the standard P and O), matched on whole words so that a caller named
# Privett or Unknowles keeps the name: the first word, a phrase, or a run-together form
_PRIVATE = frozenset({"PRIV", "PRIVATE", "RESTRICTED", "ANONYMOUS", "WITHHELD",
                      "BLOCKED"})
_OUT_OF_AREA = frozenset({"UNAVAILABLE", "UNAVAIL", "UNKNOWN", "OUTOFAREA",
                          "NOTAVAILABLE"})
_OUT_OF_AREA_PHRASES = (("OUT", "OF", "AREA"), ("NOT", "AVAILABLE"))
_RUN_TOGETHER = {"PRIVDIROFF": "P", "PRIVATENUMBER": "P", "PRIVATENAME": "P",
                 "PRIVATECALLER": "P", "UNKNOWNNAME": "O", "UNKNOWNNUMBER": "O",
                 "UNKNOWNCALLER": "O"}
_WORD = re.compile(r"[A-Z][a-z]+|[A-Z]+(?![a-z])|[a-z]+")
_NUMBER = re.compile(r"[0-9*#+\-() ]{1,32}")


def decode_text(raw: bytes) -> str:
    """A line from the modem: UTF-8 where it is valid (a VoIP adapter's CNAM), else Latin-1."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def callerid_field(line: str) -> tuple[str, str] | None:
    """("NMBR", "5551234") for a formatted caller ID line (+VCID=1), else None."""
    match = _FIELD.match(line)
    if not match or match.group(1) not in CALLERID_KEYS:
        return None
    return match.group(1), match.group(2)


def withheld(value: str) -> str | None:
    """"P" (private) or "O" (out of area) for a value that says the field is withheld."""
    if any(c.isdigit() for c in value):
        return None
    words = [w.upper() for w in _WORD.findall(value)]
    if not words:
        return None
    if words in (["P"], ["O"]):
        return words[0]                  # the standard codes, alone (O'Brien is a name)
    run_together = _RUN_TOGETHER.get("".join(words))
    if run_together:
        return run_together
    if words[0] in _PRIVATE:
        return "P"
    if words[0] in _OUT_OF_AREA or any(tuple(words[:len(p)]) == p
                                       for p in _OUT_OF_AREA_PHRASES):
        return "O"
    return None


class ModemCallerId:
    """Collects the DATE/TIME/NMBR/NAME lines a modem prints between rings.

    The modem has already checked the FSK message's checksum and prints nothing
    for a message that failed it, so each field that reads well is kept on its
    own: an empty or odd DATE/TIME drops the time, not the number; a second
    NMBR that only says "withheld" does not undo a number; DDN_NMBR (the
    dialable number) stands in for a missing NMBR. Only two different numbers,
    an unreadable one or none at all leave the block untrusted. "MESG = <hex>"
    (a message the modem passed through undecoded) is parsed with the signal
    core's own message parser instead.
    """

    def __init__(self) -> None:
        self.start: int | None = None
        self.last: int | None = None
        self.fields: dict[str, list[str]] = {}
        self.problems: list[str] = []

    @property
    def pending(self) -> bool:
        return self.start is not None

    def add(self, key: str, value: str, sample: int) -> None:
        if self.start is None:
            self.start = sample
        self.last = sample
        self.fields.setdefault(key, []).append(value)

    def garbled(self, line: str, sample: int) -> None:
        """A line inside the caller ID block that is not a field: the block is damaged."""
        if self.start is None:
            return
        self.last = sample
        self.problems.append("unreadable line")

    def finish(self) -> CallerIdEvent | None:
        """The event for what was collected (None if nothing), and start afresh."""
        if self.start is None:
            return None
        start, fields, problems = self.start, self.fields, self.problems
        self.__init__()
        if "MESG" in fields and "NMBR" not in fields:
            try:
                raw = bytes.fromhex(fields["MESG"][-1].replace(" ", ""))
            except ValueError:
                return CallerIdEvent(start, "MODEM", checksum_ok=False,
                                     error="unreadable MESG from the modem")
            return CallerIdEvent.from_message(start, parse_message(raw), modem=None)
        number, number_absent = _number(fields.get("NMBR") or fields.get("DDN_NMBR") or [],
                                        problems)
        name, name_absent = _name(fields.get("NAME", []))
        date, time = _first(fields.get("DATE")), _first(fields.get("TIME"))
        datetime = date + time if date and time and re.fullmatch(r"\d{8}", date + time) else None
        error = "; ".join(problems) or None
        if error:
            number = None
        return CallerIdEvent(start, "MODEM", number, name, datetime, number_absent, name_absent,
                             checksum_ok=error is None, error=error)


def _first(values: list[str] | None) -> str | None:
    return values[0] if values else None


def _number(values: list[str], problems: list[str]) -> tuple[str | None, str | None]:
    """(number, None) or (None, "P"/"O") from the NMBR lines; a problem noted if neither."""
    good, absent = [], []
    for value in values:
        reason = withheld(value)
        if reason:
            absent.append(reason)
        elif value and _NUMBER.fullmatch(value):
            if set(re.sub(r"\D", "", value)) <= {"0"}:
                absent.append("O")          # 0000000000: a switch's "no number", not a caller
            elif value not in good:
                good.append(value)
        elif value:
            problems.append("bad NMBR")
    if len(good) > 1:
        problems.append("two different NMBR")
    elif good:
        return good[0], None
    elif absent:
        return None, absent[0]
    elif not any("NMBR" in p for p in problems):
        problems.append("no NMBR")
    return None, None


def _name(values: list[str]) -> tuple[str | None, str | None]:
    for value in values:
        if value:
            reason = withheld(value)
            return (None, reason) if reason else (value, None)
    return None, None
