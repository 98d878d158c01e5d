"""The `modem` line backend: a USB voice modem (ITU-T V.253) over pyserial.

How a call looks to the modem (profiles in profiles.py, protocol in v253.py, sample
formats in audio.py):

- the port: "auto" is the image's udev name, else the one /dev/serial/by-id
  name, else /dev/ttyACM0; whatever opened, its by-id name is remembered and
  tried at every re-open, so a modem back as ttyACM1 is found again.
- init (at open and after a recovery): end any voice data state the modem was
  left in, ATZ, ATE0, ATV1, +GCI (line.modem.country), ATI0/ATI3 to pick the
  profile ("auto"), then the voice set-up: +FCLASS=8, +VCID=1 (formatted
  caller ID), the profile's set-up, +VSM=? and the +VSM it offers for u-law
  or 8-bit linear at 8 kHz, +VLS on hook, then line.modem.init. The voice
  set-up, +VCID=1 and line.modem.init included, is sent again after every call.
- on hook: RING lines (and the distinctive-ring RING A / RING 1 / DRON=)
  become RingStart with the pattern (a modem gives no ring stop), the
  DATE/TIME/NMBR/NAME lines between rings a CallerIdEvent (format "MODEM").
  There is no audio path on hook, so read() returns silent frames at the
  wall-clock rate.
- off hook: +VLS (line) then +VTR (full duplex) or +VRX (half duplex). read()
  then blocks for one frame of the modem's audio: the modem is the clock.
  Half duplex: writing non-silent audio switches to +VTX (receive abort
  <DLE>!, then +VTX); 300 ms of written silence switches back to +VRX.
- flash(ms): leave the data state, S29 (10 ms units), ATD!; (or +VLS on hook,
  wait, off hook), back to the data state, then FlashDone.
- <DLE> events off hook: busy, dial tone, ringback, silence/quiet, fax and data
  tones -> LineTone (busy and dial tone on their second report: modems repeat
  them, and send false ones); 'l' (loop current interruption) ->
  LoopCurrent(False), whose return no modem reports, so LoopCurrent(True)
  comes at the next off hook; 'L' -> PolarityReversal where a part reports it;
  local/extension phone -> ParallelHandset. A DTMF report, in any data state
  (the only way a key is heard while a half-duplex modem transmits), is a
  DtmfEvent (a digit repeated inside <DLE>/ .. <DLE>~ shielding is one key); the
  engine merges it with its own detector's keys. A keyed digit
  is never logged. A data state ends on OK or VCON.
- faults: no answer to a command (on hook, an "AT+VCID?" every 30 s of quiet
  checks that it still answers, and re-arms caller ID if it dropped it), no
  audio for a second, or the USB device gone
  (SerialException/OSError) -> LineFault; frames go on as silence; the port
  is re-opened with back-off (0.5 s doubling to 30 s) and re-initialised;
  LineRestored once it answers again (on hook: the call in progress is lost).

Commands are run as a queue of steps serviced from read(), so the sample
clock keeps running (silent frames) while the modem thinks.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import serial

from ...config import ConfigError, Table
from ...dsp.dtmf import DtmfEvent
from ...dsp.events import CallerIdEvent
from ..base import (Capabilities, FlashDone, Frame, Line, LineError, LineFault, LineRestored,
                    LineTone, LoopCurrent, ParallelHandset, PolarityReversal, RingStart)
from . import audio as modem_audio
from . import v253
from .profiles import PROFILES, ModemProfile, identify, parse_vsm_list

log = logging.getLogger(__name__)

POLL_S = 0.005                 # longest a single port read blocks
CALLERID_QUIET_MS = 300        # caller ID block complete after this long without a new line
TX_HOLD_MS = 300               # half duplex: written silence this long ends a transmit
SILENT_LEVEL = 64              # |sample| at or below this counts as silence when writing
BAUD_RATES = (9600, 19200, 38400, 57600, 115200, 230400, 460800)
CONFIRM_MS = 10000             # a second busy/dial tone report within this long confirms it
CONFIRMED_TONES = ("busy", "dial")
RING_MERGE_MS = 1000           # a RING just before a DRON= is the same burst
AUTO_PORTS = ("/dev/callgate-modem0",)      # the image's udev name (tools/image/)
BY_ID_DIR = "/dev/serial/by-id"             # udev's stable names of USB serial ports
# an AT command a user may add: printable ASCII, no line end, within V.250's 40-character
# minimum command line; none that resets, dials, answers or undoes our echo/result set-up
_USER_COMMAND = re.compile(r"AT[ -~]{1,38}", re.IGNORECASE)
# V.250 basic commands (a letter, &letter, \\letter or %letter with a number or ?; S
# registers) run on one after another; extended and vendor ones (+, !, -, #...) to a ';'
_BASIC = re.compile(r"S\d+(?:=\d*|\?)?|[&\\%]?[A-Z](?:=\?|=?\d*|\?)", re.IGNORECASE)
# basic commands that reset, dial, answer, go on line or undo our echo/result set-up;
# S0 > 0 makes the modem answer a call by itself
_BASIC_UNDOES = re.compile(r"Z\d*|&F\d*|D.*|A|O\d*|E0*[1-9]\d*|V0*|Q0*[1-9]\d*|H0*[1-9]\d*"
                           r"|S0*=0*[1-9]\d*", re.IGNORECASE)
# extended commands callgate itself sets: voice mode, line select, format, data states
_OURS = ("+FCLASS", "+VLS", "+VSM", "+VRX", "+VTX", "+VTR")
try:
    import termios                     # pyserial lets termios.error through from tcsetattr
    _SERIAL_ERRORS: tuple = (serial.SerialException, OSError, termios.error)
except ImportError:                    # not POSIX
    _SERIAL_ERRORS = (serial.SerialException, OSError)


@dataclass
class _Step:
    """One command to the modem and what to do with its answer."""

    what: str                                   # for messages, e.g. "AT+VLS=1"
    send: bytes | Callable[[], bytes | None] | None = None   # None: nothing to send
    ok: frozenset = frozenset({"OK"})
    timeout: float | None = None                # None: the line's command timeout
    data: bool = False                          # its CONNECT opens a data state
    text_after: bool = False                    # we end a transmit: the modem is text again
    optional: bool = False                      # ERROR is not a fault
    wait: float | None = None                   # a pause, no command (flash timed by us)
    listen: bool = False                        # send nothing, wait for the modem's answer
    timeout_ok: bool = False                    # no answer is an answer (best-effort steps)
    what_key: str | None = None                 # the line.modem key the command came from
    then: Callable[[str, list[str]], None] | None = None
    lines: list[str] = field(default_factory=list)
    started: float = 0.0


class ModemLine(Line):
    """A phone line on a V.253 voice modem (see the module docstring)."""

    capabilities = Capabilities(loop_current=True, full_duplex=True, paced=True)

    def __init__(self, port: str = "auto", baud: int = 115200, profile: str = "auto",
                 fmt: str = "ulaw", flash_ms: float = 600.0, duplex: str = "auto", *,
                 init: tuple[str, ...] = (), country: str | None = None,
                 auto_ports: tuple[str, ...] = AUTO_PORTS, by_id_dir: str = BY_ID_DIR,
                 pace: bool = True, command_timeout: float = 3.0, audio_timeout: float = 1.0,
                 backoff: tuple[float, float] = (0.5, 30.0), keepalive: float = 30.0,
                 clock: Callable[[], float] = time.monotonic,
                 serial_factory: Callable[[str, int], serial.SerialBase] | None = None) -> None:
        super().__init__()
        if fmt not in modem_audio.FORMATS:
            raise ValueError(f"format {fmt!r}")
        self.configured_port = port
        self.auto_ports = auto_ports
        self.by_id_dir = by_id_dir
        self.port = port if port != "auto" else (auto_ports[0] if auto_ports else port)
        self._stable: str | None = None     # a by-id/udev name of the port, found at open
        self.baud = baud
        self.init = tuple(init)
        # the T.35 code for AT+GCI; not Line.country, which names a tone plan
        self.t35_country = country
        self.profile_name = profile
        self.fmt = fmt
        self.flash_ms = flash_ms
        self.duplex = duplex
        self.pace = pace
        self.command_timeout = command_timeout
        self.audio_timeout = audio_timeout
        self.backoff = backoff
        self.keepalive = keepalive
        self.clock = clock
        self._factory = serial_factory or _open_serial
        self.profile: ModemProfile | None = PROFILES.get(profile)
        self._port: serial.SerialBase | None = None
        self._stream = v253.ModemStream()
        self._state = "closed"          # closed | ready | fault | restoring
        self._opening = False           # open() in progress: a fault raises LineError
        self._data: str | None = None   # modem data state: rx | tx | duplex | None (command)
        self._script: deque[_Step] = deque()
        self._step: _Step | None = None
        self._events: list = []
        self._rx = bytearray()
        self._tx_backlog: list[np.ndarray] = []
        self._tx_wanted = False
        self._quiet_frames = 0
        self._callerid = v253.ModemCallerId()
        self._loop_broken = False
        self._dtmf_held: str | None = None   # inside <DLE>/ .. <DLE>~: the digit reported
        self._next_tick: float | None = None
        self._last_heard = 0.0
        self._retry_at = 0.0
        self._backoff_s = backoff[0]
        self.reopen_attempts: list[float] = []   # clock() of each re-open attempt (for status)
        self.dtmf_reports = 0           # modem DTMF reports seen (each a key event)
        self._tone_seen: dict[str, int] = {}     # busy/dial: sample of the unconfirmed report
        self._vsm_offered: dict[int, tuple[str, int]] = {}
        self._ring_at: tuple[int, str] | None = None   # (sample, RING/DRON) of the last ring
        self.underruns = 0
        self.overruns = 0
        self._ati: dict[str, str] = {}
        self._set_capabilities()

    # ------------------------------------------------------------ configuration
    @classmethod
    def from_config(cls, table: Table) -> "ModemLine":
        """Build from [line.modem]: port, baud, profile, format, flash_ms, duplex, init,
        country."""
        port = table.get("port", str, "auto")
        baud = table.get("baud", int, 115200)
        if baud not in BAUD_RATES:
            raise ConfigError(f"{table.key('baud')}: {baud} is not one of "
                              f"{', '.join(map(str, BAUD_RATES))}")
        profile = table.choice("profile", ("auto", *PROFILES), "auto")
        fmt = table.choice("format", modem_audio.FORMATS, "ulaw")
        flash_ms = table.number("flash_ms", 600.0, low=50, high=2550)
        duplex = table.choice("duplex", ("auto", "full", "half"), "auto")
        init = table.get("init", list, [])
        for i, cmd in enumerate(init):
            problem = user_command_problem(cmd)
            if problem:
                raise ConfigError(f"{table.key('init')}[{i}]: {problem}")
        country = table.get("country", str, "") or None
        if country is not None and not re.fullmatch(r"[0-9A-Fa-f]{2}", country):
            raise ConfigError(f"{table.key('country')}: {country!r} is not a T.35 country "
                              "code (two hex digits, as AT+GCI takes them: B5 USA, B4 UK)")
        table.reject_unknown(("port", "baud", "profile", "format", "flash_ms", "duplex",
                              "init", "country"))
        return cls(port, baud, profile, fmt, flash_ms, duplex, init=tuple(init),
                   country=country.upper() if country else None)

    @property
    def full_duplex(self) -> bool:
        if self.duplex != "auto":
            return self.duplex == "full"
        return self.profile.full_duplex if self.profile else True

    def _set_capabilities(self) -> None:
        self.capabilities = Capabilities(loop_current=True, polarity=False, parallel_handset=False,
                                         full_duplex=self.full_duplex, onhook_audio=False,
                                         paced=self.pace)

    # ------------------------------------------------------------ lifecycle
    def open(self) -> None:
        """Open the port, identify the modem and initialise it; LineError if it cannot be."""
        if self._state != "closed":
            return
        try:
            self._open_port()
        except _SERIAL_ERRORS as err:
            raise LineError(self._open_error(err)) from None
        self._stream = v253.ModemStream()
        self._state = "ready"
        self._opening = True
        try:
            self._queue(*self._init_steps(identify_modem=self.profile is None))
            while self._step is not None or self._script:
                self._service()
                self._pump(block=True)
        except BaseException:
            self._close_port()
            self._state = "closed"
            raise
        finally:
            self._opening = False
        self._events.clear()     # nothing happened on the line yet
        self._last_heard = self.clock()
        log.info("modem on %s: %s, %s, %s duplex", self.port, self.profile.title, self.fmt,
                 "full" if self.full_duplex else "half")

    def close(self) -> None:
        """Go on hook (best effort) and release the port. Safe to call twice."""
        if self._port is not None and self._state == "ready":
            try:
                if self._data is not None:
                    self._port.write(self._end_code(self._data))
                    time.sleep(0.05)
                if self.profile is not None:
                    self._port.write(v253.command(f"AT+VLS={self.profile.vls_on_hook}"))
                self._port.flush()
            except _SERIAL_ERRORS:
                pass
        self._close_port()
        self._state = "closed"
        self._off_hook = False
        self._data = None
        self._script.clear()
        self._step = None

    # ------------------------------------------------------------ the port's name
    def _candidates(self) -> list[str]:
        """Names to open, in order: the configured one ("auto": the image's udev name, the
        USB serial port udev names by id that is the modem, /dev/ttyACM0), then the stable
        name found at the last open, so a modem back under another ttyACM number is found
        again."""
        if self.configured_port == "auto":
            names = [*self.auto_ports, *self._by_id_modem(), "/dev/ttyACM0"]
        else:
            names = [self.configured_port]
        if self._stable and self._stable not in names:
            names.append(self._stable)
        return names

    def _by_id_modem(self) -> list[str]:
        """The by-id name to try under "auto": the only one, or among several the only
        CDC-ACM device (udev links ../../ttyACMn; the supported modems are CDC-ACM, a USB
        serial console or GPS is ttyUSBn); none where that does not settle it."""
        names = self._by_id_names()
        if len(names) <= 1:
            return names
        acm = [n for n in names if _is_acm(n)]
        return acm if len(acm) == 1 else []

    def _by_id_names(self) -> list[str]:
        try:
            return sorted(os.path.join(self.by_id_dir, n) for n in os.listdir(self.by_id_dir))
        except OSError:
            return []

    def _open_port(self) -> None:
        """Open the first candidate that exists; the SerialException/OSError of the last try."""
        error: Exception | None = None
        for name in self._candidates():
            if "://" not in name and not os.path.exists(name):
                continue
            try:
                self._port = self._factory(name, self.baud)
            except _SERIAL_ERRORS as err:
                error = err
                continue
            self.port = name
            self._stable = self._stable_name(name)
            return
        raise error or serial.SerialException(f"could not open port {self.port}")

    def _stable_name(self, name: str) -> str | None:
        """The udev by-id (or image) name of the device `name` is, if there is one."""
        if name.startswith(self.by_id_dir) or name in self.auto_ports:
            return name
        real = os.path.realpath(name)
        for link in self._by_id_names():
            if os.path.realpath(link) == real:
                return link
        return self._stable

    def _open_error(self, err: Exception) -> str:
        several = self._by_id_names() if self.configured_port == "auto" else []
        if len(several) > 1 and not self._by_id_modem():
            names = ", ".join(os.path.basename(n) for n in several[:4])
            return (f"no modem port found: several serial ports in {self.by_id_dir} "
                    f"({names}); set line.modem.port to the modem's")
        if self.configured_port == "auto" and not any(
                os.path.exists(n) for n in self._candidates()):
            return (f"no modem port found (looked for {', '.join(self.auto_ports)}, "
                    f"{self.by_id_dir}/*, /dev/ttyACM0; is the modem plugged in? "
                    "set line.modem.port)")
        if "://" not in self.port and not os.path.exists(self.port):
            return (f"modem port {self.port} does not exist (is the modem plugged in? "
                    "set line.modem.port)")
        reason = getattr(err, "strerror", None) or str(err).splitlines()[0]
        return f"modem port {self.port}: cannot open it ({reason})"

    def _close_port(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except _SERIAL_ERRORS:
                pass

    # ------------------------------------------------------------ audio
    def read(self) -> Frame:
        if self._state == "closed":
            raise LineError(f"modem line on {self.port} read before open()")
        n = self.frame_samples
        samples = None
        if self._streaming():
            samples = self._read_audio(n)
        else:
            self._wait_frame()
        self._check_callerid()
        if samples is None:
            samples = np.zeros(n, dtype=np.int16)
        events, self._events = self._events, []
        frame = Frame(self._sample, samples, events)
        self._sample += n
        return frame

    def write(self, samples: np.ndarray) -> None:
        if self._state != "ready" or not self._off_hook:
            return
        pcm = np.asarray(samples, dtype=np.int16)
        idle = self._step is None and not self._script
        if self.full_duplex:
            if self._data == "duplex" and idle:
                self._send_audio(pcm)
            return
        loud = bool(len(pcm)) and int(np.max(np.abs(pcm.astype(np.int32)))) > SILENT_LEVEL
        if self._data == "tx" and idle:
            self._send_audio(pcm)
            self._quiet_frames = 0 if loud else self._quiet_frames + 1
            if self._quiet_frames * self.frame_samples >= TX_HOLD_MS * self.rate // 1000:
                self._quiet_frames = 0
                self._queue(self._end_data_step(), *self._enter_data_steps("rx"))
        elif self._tx_wanted or loud:
            if len(self._tx_backlog) < 100:          # 2 s of prompt while the modem switches
                self._tx_backlog.append(pcm)
            if not self._tx_wanted:
                self._tx_wanted = True
                self._queue(self._end_data_step(), *self._enter_data_steps("tx"))

    # ------------------------------------------------------------ controls
    def off_hook(self) -> None:
        if self._off_hook:
            return
        self._off_hook = True
        if self._state != "ready":
            log.warning("modem on %s: cannot go off hook while the modem is not answering",
                        self.port)
            self._off_hook = False
            return
        self._finish_callerid()
        self._tone_seen.clear()
        self._ring_at = None
        self._dtmf_held = None
        if self._loop_broken:
            self._loop_broken = False
            self._events.append(LoopCurrent(self._sample, present=True))
        vls = f"AT+VLS={self.profile.vls_off_hook}"
        self._queue(_Step(vls, v253.command(vls), ok=frozenset({"OK", "VCON"})),
                    *self._enter_data_steps())

    def on_hook(self) -> None:
        if not self._off_hook:
            return
        self._off_hook = False
        self._tx_backlog.clear()
        self._tx_wanted = False
        if self._state != "ready":
            return
        self._queue(self._end_data_step(), *self._init_steps(reset=False))

    def flash(self, ms: float) -> None:
        if self._state != "ready" or not self._off_hook:
            log.warning("modem on %s: flash asked while on hook or not answering; ignored",
                        self.port)
            return
        self._tx_backlog.clear()
        self._tx_wanted = False
        steps = [self._end_data_step()]
        if self.profile.flash == "dial":
            units = max(1, min(255, round(ms / 10)))
            steps += [_Step(f"ATS29={units}", v253.command(f"ATS29={units}")),
                      _Step("ATD!;", v253.command("ATD!;"), ok=frozenset({"OK", "VCON"}),
                            timeout=ms / 1000 + self.command_timeout)]
        else:
            on, off = (f"AT+VLS={self.profile.vls_on_hook}", f"AT+VLS={self.profile.vls_off_hook}")
            steps += [_Step(on, v253.command(on)), _Step("flash", wait=ms / 1000),
                      _Step(off, v253.command(off), ok=frozenset({"OK", "VCON"}))]
        steps += self._enter_data_steps()
        steps.append(_Step("flash done", then=lambda r, l: self._events.append(
            FlashDone(self._sample))))
        self._queue(*steps)

    # ------------------------------------------------------------ scripts
    def _init_steps(self, identify_modem: bool = False, reset: bool = True) -> list[_Step]:
        steps = []
        if reset:
            # a modem left in a voice data state takes "ATZ" for audio: end any data
            # state first (harmless garbage in command state: it answers ERROR or nothing)
            abort = v253.RECEIVE_ABORT + v253.DUPLEX_ABORT + v253.END_TRANSMIT + b"\r"
            steps += [_Step("data state abort", abort, ok=v253.FINAL_RESULTS, timeout=0.3,
                            timeout_ok=True),
                      _Step("ATZ", v253.command("ATZ")), _Step("ATE0", v253.command("ATE0")),
                      _Step("ATV1", v253.command("ATV1"))]
            if self.t35_country:
                # some parts forget their country at power-down and then show no caller ID
                gci = f"AT+GCI={self.t35_country}"
                steps.append(_Step(gci, v253.command(gci), what_key="country"))
        if identify_modem:
            steps += [_Step("ATI0", v253.command("ATI0"), then=self._got_ati("0")),
                      _Step("ATI3", v253.command("ATI3"), then=self._got_ati("3")),
                      _Step("identify", then=lambda r, l: self._identify())]
        steps.append(_Step("init", then=lambda r, l: self._queue_front(*self._voice_steps())))
        return steps

    def _voice_steps(self) -> list[_Step]:
        """Voice mode, caller ID, the sample format the modem offers, on hook; then the
        user's own commands (line.modem.init).

        +VCID=1 is here, not in the identification, because some parts forget it on
        ATZ and after a call: it is re-sent at every init.
        """
        p = self.profile
        steps = [_Step(c, v253.command(c), optional=c.startswith(("AT+VSD", "AT+VIT")))
                 for c in ("AT+FCLASS=8", "AT+VCID=1", *p.setup)]
        steps.append(_Step("AT+VSM=?", v253.command("AT+VSM=?"), optional=True,
                           then=self._got_vsm_list))
        vsm = _Step("AT+VSM")

        def vsm_command() -> bytes | None:
            try:
                vsm.what = p.vsm_command(self.fmt, self._vsm_offered)
            except ValueError as err:
                self._fault(f"{err}; set line.modem.format to one it offers")
                return None
            return v253.command(vsm.what)

        vsm.send = vsm_command
        vls = f"AT+VLS={p.vls_on_hook}"
        steps += [vsm, _Step(vls, v253.command(vls))]
        steps += [_Step(c, v253.command(c), what_key="init") for c in self.init]
        return steps

    def _got_vsm_list(self, result: str, lines: list[str]) -> None:
        self._vsm_offered = parse_vsm_list(lines) if result == "OK" else {}

    def _got_vcid(self, result: str, lines: list[str]) -> None:
        """Keep-alive: a modem that dropped caller ID mode while idle is re-armed now,
        not after the call it would cost."""
        values = [l.split(":")[-1].strip() for l in lines]
        if result == "OK" and values and values[-1] != "1" and not self._off_hook:
            log.warning("modem on %s had stopped reporting caller ID; re-armed", self.port)
            self._queue(_Step("AT+VCID=1", v253.command("AT+VCID=1")))

    def _got_ati(self, which: str) -> Callable[[str, list[str]], None]:
        def store(result: str, lines: list[str]) -> None:
            self._ati[which] = " ".join(lines)
        return store

    def _identify(self) -> None:
        ati0, ati3 = self._ati.get("0", ""), self._ati.get("3", "")
        profile = identify(ati0, ati3)
        if profile is None:
            self._fault(f"not a supported voice modem (ATI0 {ati0!r}, ATI3 {ati3!r}); "
                        f"set line.modem.profile to one of {', '.join(PROFILES)}")
            return
        self.profile = profile
        self._set_capabilities()

    def _enter_data_steps(self, mode: str | None = None) -> list[_Step]:
        mode = mode or ("duplex" if self.full_duplex else "rx")
        cmd = {"duplex": "AT+VTR", "rx": "AT+VRX", "tx": "AT+VTX"}[mode]
        return [_Step(cmd, v253.command(cmd), ok=v253.DATA_RESULTS, data=True,
                      then=lambda r, l: self._entered(mode))]

    def _entered(self, mode: str) -> None:
        self._data = mode
        self._rx.clear()
        self._quiet_frames = 0
        if mode == "tx":
            self._tx_wanted = False
            backlog, self._tx_backlog = self._tx_backlog, []
            for pcm in backlog:
                self._send_audio(pcm)

    def _end_data_step(self) -> _Step:
        # V.253 parts answer OK; others VCON (the voice command state's own result code)
        step = _Step("end of voice data", ok=frozenset({"OK", "VCON"}))

        def code() -> bytes | None:
            if self._data is None:
                return None
            step.text_after = self._data == "tx"
            return self._end_code(self._data)

        def ended(result: str, lines: list[str]) -> None:
            self._data = None
            self._rx.clear()

        step.send, step.then = code, ended
        return step

    @staticmethod
    def _end_code(mode: str) -> bytes:
        return {"tx": v253.END_TRANSMIT, "rx": v253.RECEIVE_ABORT,
                "duplex": v253.DUPLEX_ABORT}[mode]

    def _queue(self, *steps: _Step) -> None:
        self._script.extend(steps)
        self._service()

    def _queue_front(self, *steps: _Step) -> None:
        self._script.extendleft(reversed(steps))

    # ------------------------------------------------------------ the service loop
    def _streaming(self) -> bool:
        return (self._state == "ready" and self._data in ("rx", "duplex")
                and self._step is None and not self._script)

    def _read_audio(self, n: int) -> np.ndarray | None:
        """One frame of the modem's audio; the modem's sample clock paces us."""
        deadline = self.clock() + self.audio_timeout
        while len(self._rx) < n and self._streaming():
            self._pump(block=True)
            self._service()
            if self.clock() > deadline:
                self._fault("the modem stopped sending audio")
                break
        self._next_tick = self.clock() + n / self.rate
        if len(self._rx) < n:
            return None
        samples = modem_audio.decode(bytes(self._rx[:n]), self.fmt)
        del self._rx[:n]
        return samples

    def _wait_frame(self) -> None:
        """No audio from the modem: serve it until the next frame is due on the wall clock."""
        now = self.clock()
        if self._next_tick is None or self._next_tick < now - 1.0:
            self._next_tick = now       # never run more than a second behind
        deadline = self._next_tick if self.pace else now
        self._next_tick += self.frame_samples / self.rate
        while True:
            self._service()
            if self._port is not None:
                self._pump(block=self.clock() < deadline)
            elif self.clock() < deadline:
                time.sleep(min(POLL_S, max(0.0, deadline - self.clock())))
            if self.clock() >= deadline:
                break

    def _pump(self, block: bool) -> None:
        """Read what the modem has sent and act on it."""
        port = self._port
        if port is None:
            return
        try:
            waiting = port.in_waiting
            if waiting or block:
                chunk = port.read(waiting or 1)
            else:
                chunk = b""
        except _SERIAL_ERRORS as err:
            self._fault(f"modem port {self.port} failed ({_one_line(err)})")
            return
        if chunk:
            self._last_heard = self.clock()
            for item in self._stream.feed(chunk):
                self._handle(item)

    def _service(self) -> None:
        """Start the next command, notice timeouts, re-open after a fault."""
        if self._state == "fault":
            if self.clock() >= self._retry_at:
                self._reopen()
            return
        while self._step is None and self._script and self._state in ("ready", "restoring"):
            self._start(self._script.popleft())
        step = self._step
        if step is None:
            if (self._state == "ready" and self._data is None and not self._off_hook
                    and self.clock() - self._last_heard > self.keepalive):
                self._last_heard = self.clock()     # on hook and quiet: is it still there,
                self._queue(_Step("AT+VCID?", v253.command("AT+VCID?"), optional=True,
                                  then=self._got_vcid))   # still reporting caller ID?
            return
        elapsed = self.clock() - step.started
        if step.wait is not None:
            if elapsed >= step.wait:
                self._complete("OK")
        elif elapsed > (step.timeout or self.command_timeout):
            if step.timeout_ok:
                self._complete("OK")
            else:
                self._fault(f"the modem did not answer {step.what}")

    def _start(self, step: _Step) -> None:
        send = step.send() if callable(step.send) else step.send
        step.started = self.clock()
        self._step = step
        if send is None:
            if step.wait is None and not step.listen:
                self._complete("OK")
            return
        if step.data:
            self._stream.arm_data()
        try:
            self._port.write(send)
        except _SERIAL_ERRORS as err:
            self._fault(f"modem port {self.port} failed ({_one_line(err)})")
            return
        if step.text_after:
            self._stream.to_text()

    def _complete(self, result: str) -> None:
        step, self._step = self._step, None
        if result in step.ok or (step.optional and result == "ERROR"):
            if step.then is not None:
                step.then(result, step.lines)
            return
        where = f" (line.modem.{step.what_key})" if step.what_key else ""
        self._fault(f"the modem answered {result} to {step.what}{where}")

    def _handle(self, item: v253.Item) -> None:
        if item.kind == "audio":
            if self._data in ("rx", "duplex"):
                self._rx += item.data
                if len(self._rx) > self.rate:          # a second behind: drop the oldest
                    del self._rx[: len(self._rx) - self.rate]
                    self.overruns += 1
        elif item.kind == "line":
            self._line(item.text)
        elif item.kind == "dle":
            self._dle(item.text)
        elif item.kind == "end":
            if self._step is not None and self._step.what == "end of voice data":
                return
            if self._data is not None:
                log.warning("modem on %s left the voice data state by itself", self.port)
                self._data = None
                self._rx.clear()
                if self._off_hook and self._state == "ready":
                    # its OK follows the <DLE><ETX>: take it before asking for data again
                    self._queue_front(*self._enter_data_steps())
                    self._queue_front(_Step("modem ended voice data", listen=True,
                                            timeout_ok=True, timeout=0.5))
                    self._service()
        elif item.kind == "packet":
            for raw in item.data.replace(b"\r", b"\n").split(b"\n"):
                field_ = v253.callerid_field(v253.decode_text(raw).strip())
                if field_:
                    self._callerid.add(*field_, self._sample)

    def _line(self, text: str) -> None:
        step = self._step
        if step is not None and step.wait is None and text in v253.FINAL_RESULTS:
            self._complete(text)
            return
        if text.upper().startswith("AT"):
            return                                      # our command echoed (before ATE0)
        ring = v253.ring_report(text)
        if ring is not None:
            if ring.burst:
                self._ring(ring.pattern, "DRON" if text.startswith("DRON") else "RING")
            else:
                self._ring_at = None        # DROF=: a new burst began; its RING is its own
            return
        field_ = v253.callerid_field(text)
        if field_ is not None:
            self._callerid.add(*field_, self._sample)
        elif step is not None:
            step.lines.append(text)
        elif self._callerid.pending and "=" in text:
            self._callerid.garbled(text, self._sample)
        else:
            log.debug("modem on %s said %r", self.port, text[:40])

    def _dle(self, code: str) -> None:
        # where in the line's audio the report came: the frame being read, plus what is
        # buffered of it (the modem interleaves reports with the audio it belongs to)
        now = self._sample + (len(self._rx) if self._data in ("rx", "duplex") else 0)
        if code in v253.DTMF_CODES:
            # a key, in any data state: in transmit it is the only way a key is heard
            # (the engine merges it with what its own detector hears); never log the digit
            self.dtmf_reports += 1
            if self._dtmf_held == code:
                return                      # the same tone, still on, reported again
            if self._dtmf_held is not None:
                self._dtmf_held = code
            if self._off_hook:
                self._events.append(DtmfEvent(now, digit=code))
            return
        if code in "/~":
            # DTMF shielding (V.253): between <DLE>/ and <DLE>~ a part may repeat the
            # digit while the tone lasts, to give its duration; that is one key
            self._dtmf_held = "" if code == "/" else None
            return
        kind = v253.DLE_EVENTS.get(code)
        if kind == "ring":
            self._ring()
        elif kind in v253.LINE_TONES:
            if self._off_hook and self._confirmed(kind, now):
                self._events.append(LineTone(now, tone=kind))
        elif kind == "loop_break":
            if self._off_hook and not self._loop_broken:
                self._loop_broken = True
                self._events.append(LoopCurrent(now, present=False))
        elif kind == "reversal":
            self._events.append(PolarityReversal(now))
        elif kind in ("local_on_hook", "local_off_hook", "extension_on_hook",
                      "extension_off_hook"):
            self._events.append(ParallelHandset(now, off_hook=kind.endswith("off_hook")))
        elif kind == "underrun":
            self.underruns += 1
        elif kind == "overrun":
            self.overruns += 1
        else:
            log.debug("modem on %s: event <DLE>%r", self.port, code)

    def _confirmed(self, tone: str, now: int) -> bool:
        """Busy and dial tone reports repeat every few seconds while the tone lasts, and
        a part can send a false one: only a second report within CONFIRM_MS counts
        (the engine's own tone detector hears the tone on its own)."""
        if tone not in CONFIRMED_TONES:
            return True
        first = self._tone_seen.get(tone)
        if first is not None and now - first <= CONFIRM_MS * self.rate // 1000:
            return True
        self._tone_seen[tone] = now
        return False

    def _ring(self, pattern: str | None = None, how: str = "RING") -> None:
        """One ring burst. A distinctive-ring part can report a burst twice: with
        +VDR=1,<report> it prints DRON= at the burst's falling edge and RING <report>/10 s
        later (up to 6 s in Conexant's 100498E, +VDR), before the next burst's DROF=; so a
        RING after a DRON= with no DROF= between, or a DRON= just after a RING, is the
        same burst."""
        if self._off_hook:
            return
        now = self._sample
        last = self._ring_at
        self._ring_at = (now, how)
        if last is not None and last[1] != how and (
                last[1] == "DRON" or now - last[0] < RING_MERGE_MS * self.rate // 1000):
            return
        self._finish_callerid()
        self._events.append(RingStart(now, pattern=pattern))

    def _check_callerid(self) -> None:
        cid = self._callerid
        if cid.pending and self._sample - cid.last >= CALLERID_QUIET_MS * self.rate // 1000:
            self._finish_callerid()

    def _finish_callerid(self) -> None:
        event = self._callerid.finish()
        if isinstance(event, CallerIdEvent):
            self._events.append(event)

    def _send_audio(self, pcm: np.ndarray) -> None:
        try:
            self._port.write(v253.shield(modem_audio.encode(pcm, self.fmt)))
        except _SERIAL_ERRORS as err:
            self._fault(f"modem port {self.port} failed ({_one_line(err)})")

    # ------------------------------------------------------------ faults and recovery
    def _fault(self, reason: str) -> None:
        if self._opening:
            self._close_port()
            self._state = "closed"
            raise LineError(f"modem on {self.port}: {reason}")
        if self._state == "ready":
            log.warning("modem on %s: %s; frames continue as silence, re-opening", self.port,
                        reason)
            self._events.append(LineFault(self._sample, reason=reason))
            self._backoff_s = self.backoff[0]
        self._close_port()
        self._state = "fault"
        self._off_hook = False
        self._data = None
        self._script.clear()
        self._step = None
        self._rx.clear()
        self._tx_backlog.clear()
        self._tx_wanted = False
        self._callerid = v253.ModemCallerId()
        self._retry_at = self.clock() + self._backoff_s
        self._backoff_s = min(self._backoff_s * 2, self.backoff[1])

    def _reopen(self) -> None:
        self.reopen_attempts.append(self.clock())
        try:
            self._open_port()
        except _SERIAL_ERRORS:
            self._retry_at = self.clock() + self._backoff_s
            self._backoff_s = min(self._backoff_s * 2, self.backoff[1])
            return
        self._stream = v253.ModemStream()
        self._state = "restoring"
        self._script.extend(self._init_steps(identify_modem=self.profile is None))
        self._script.append(_Step("restored", then=lambda r, l: self._restored()))

    def _restored(self) -> None:
        log.warning("modem on %s answers again", self.port)
        self._state = "ready"
        self._backoff_s = self.backoff[0]
        self._events.append(LineRestored(self._sample))


def _open_serial(port: str, baud: int) -> serial.SerialBase:
    """The real port: 8N1, no flow control (V.253 voice data is DLE-framed, not XON/XOFF)."""
    return serial.serial_for_url(port, baudrate=baud, timeout=POLL_S, write_timeout=2.0,
                                 exclusive=True)


def _is_acm(link: str) -> bool:
    """A by-id link to a CDC-ACM tty (its own target, or where it leads in the end)."""
    try:
        hops = (os.readlink(link), os.path.realpath(link))
    except OSError:
        return False
    return any(os.path.basename(h).startswith("ttyACM") for h in hops)


def _one_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def user_command_problem(cmd: object) -> str | None:
    """Why `cmd` cannot be one of line.modem.init's commands (None: it can)."""
    if not isinstance(cmd, str):
        return "expected an AT command (a string)"
    if not _USER_COMMAND.fullmatch(cmd):
        return (f"{cmd[:40]!r} is not an AT command (AT, then up to 38 printable "
                "characters, no line end)")
    parts = _at_parts(cmd[2:])
    if parts is None:
        return f"{cmd!r} cannot be read as AT commands (V.250)"
    for part in parts:
        if (_BASIC_UNDOES.fullmatch(part) or part.upper().startswith(_OURS)
                or (part.upper().startswith("+VCID") and part not in ("+VCID=1", "+VCID?"))):
            return (f"{cmd!r} would reset, dial, answer or undo callgate's own modem set-up "
                    f"({part[:12]})")
    return None


def _at_parts(body: str) -> list[str] | None:
    """The commands on one AT line ("E0V1S7=60+VDR=1,0;!4886=00" -> E0, V1, S7=60,
    +VDR=1,0, !4886=00); None where a basic command cannot be read."""
    parts: list[str] = []
    i = 0
    while i < len(body):
        if body[i] in " ;":
            i += 1
        elif body[i].isalpha() or body[i] in "&\\%":
            if body[i].upper() == "D":              # a dial string runs to the end
                parts.append(body[i:])
                break
            match = _BASIC.match(body, i)
            if not match:
                return None
            parts.append(match.group())
            i = match.end()
        else:
            end = body.find(";", i)
            end = len(body) if end < 0 else end
            parts.append(body[i:end].strip())
            i = end
    return parts
