"""A line's checks: its hardware found and opened, then what it does off hook.

Only the line interface (line/base.py) and each backend's public settings are used,
so the checks run on every backend, sim and replay included:

- found: the configured device is there (a modem's port, port "auto" looked for as
  the backend looks, with its /dev/serial/by-id name, or the serial ports that are
  there when it is not; a HAT's GPIO chips and sound cards);
- open: the backend opens it (a modem answers AT and is identified by ATI0/ATI3, its
  init accepted; a HAT's pins are granted and its ALSA device opens);
- caller ID: the modem took AT+VCID=1 (formatted caller ID reports), or the line
  brings audio on hook for our FSK/DTMF caller ID decoder;
- off hook for LISTEN_S: audio comes in, loop current stays, the exchange's dial tone
  is heard (by the call-progress detector of every shipped tone plan, so a wrong
  engine.toneplan is named) and its level;
- audio out: a TEST_TONE_HZ tone we send comes back through the line's 2-wire hybrid
  (its echo: an FXO interface returns some of what it sends, 6-25 dB down), which is
  the one way a device can hear that its audio reaches the line.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import numpy as np

from ..dsp.level import power_to_dbm0, rms_dbm0
from ..dsp.tones import CallProgressDetector, ToneEvent, tone_tx
from ..line import LineError, LineFault, LoopCurrent
from ..toneplans import auto_toneplan, available_toneplans, load_toneplan
from .checks import Check, fail, ok, skip, warn

LISTEN_S = 2.5                  # off hook, listening: dial tone needs 1 s steady
TEST_TONE_HZ = 1004.0           # the test tone of telephony (ITU-T O.6 milliwatt)
TEST_TONE_DBM0 = -10.0
TEST_TONE_S = 1.0               # its echo is measured over the second half
MIN_AUDIO_DBM0 = -60.0          # quieter than this off hook: no audio from the line
WEAK_DIAL_DBM0 = -35.0          # a dial tone weaker than this: long loop or low gain
LOUD_DIAL_DBM0 = -3.0           # louder: the codec's input gain clips
ECHO_MARGIN_DB = 10.0           # the echo must stand this far above the quiet line
DEV = "/dev"
GPIO_CHIPS = "/dev/gpiochip*"
SOUND_CARDS = "/proc/asound/cards"
AUTO_FALLBACK = "/dev/ttyACM0"    # port "auto"'s last try (line/modem/line.py)


def backend_of(line) -> str:
    """sim, replay, modem or hat: the subpackage of line/ the class lives in."""
    parts = type(line).__module__.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "line" else type(line).__name__


def check_line(name: str, line, toneplan: str | None = None) -> list[Check]:
    """Every check of one line, in order; a line that is not found or does not open
    gets no further check."""
    backend = backend_of(line)
    found = _found(name, line, backend)
    if found.failed:
        return [found]
    try:
        line.open()
    except LineError as err:
        checks = [found, fail("open", str(err), _open_fix(name, backend), name)]
        if backend == "modem" and "AT+VCID" in str(err):
            checks.append(fail("caller ID", "the modem refused AT+VCID=1: it would report "
                               "no caller ID", "use a voice modem that reports caller ID "
                               "(hw/README.md lists them)", name))
        return checks
    checks = [found]
    try:
        checks += _identity(name, line, backend)
        checks += _off_hook(name, line, backend, toneplan or line.country or "us")
    finally:
        try:
            line.on_hook()
        finally:
            line.close()
    return checks


# ------------------------------------------------------------------ found, opened


def serial_ports(dev: str = "/dev") -> list[str]:
    """The serial ports a USB voice modem may be on, stable names first."""
    found = []
    for pattern in ("callgate-modem*", "serial/by-id/*", "ttyACM*", "ttyUSB*"):
        found += sorted(glob.glob(os.path.join(dev, pattern)))
    return found


def _found(name: str, line, backend: str) -> Check:
    if backend == "modem":
        return _modem_port(name, line)
    if backend == "hat":
        chips = sorted(glob.glob(GPIO_CHIPS))
        cards = _sound_cards(SOUND_CARDS)
        detail = (f"board {line.board.name}; GPIO chips: {', '.join(chips) or 'none'}; "
                  f"sound cards: {', '.join(cards) or 'none'}")
        if not chips or not cards:
            return fail("device", detail, "seat the HAT on the 40-pin header and plug in its "
                        "USB codec; check `dmesg` and /proc/asound/cards", name)
        return ok("device", detail, name)
    if backend == "replay":
        return ok("device", f"recording {line.path}" if line.path else "recording", name)
    return ok("device", f"{backend} line (no hardware)", name)


def survey() -> Check:
    """The line hardware this device has, whatever the configuration says: shown when
    the configuration cannot be read, so the technician sees what there is to set."""
    ports = serial_ports(DEV)
    chips = sorted(glob.glob(GPIO_CHIPS))
    cards = _sound_cards(SOUND_CARDS)
    detail = (f"serial ports: {', '.join(ports) or 'none'}; GPIO chips: "
              f"{', '.join(chips) or 'none'}; sound cards: {', '.join(cards) or 'none'}")
    if not ports and not cards:
        return warn("hardware", detail, "plug the modem in (hw/README.md lists the "
                    "supported ones) or seat the HAT and its USB codec; check `dmesg`")
    return ok("hardware", detail)


def _modem_port(name: str, line) -> Check:
    """The configured port is there; for "auto", any of the names the backend looks at
    (the image's udev name, /dev/serial/by-id, /dev/ttyACM0) is: which one it takes,
    or why none, opening it says (the "modem" and "open" checks). Each port is shown
    with its by-id name and the device it is."""
    configured = line.configured_port
    if configured == "auto":
        candidates = [*line.auto_ports, *_by_id(line.by_id_dir), AUTO_FALLBACK]
    else:
        candidates = [configured]
    present = [p for p in candidates if "://" in p or os.path.exists(p)]
    if not present:
        there = serial_ports("/dev" if candidates[0].startswith("/dev/")
                             else str(Path(candidates[0]).parent))
        looked = (f"port auto: no modem port (looked for {', '.join(line.auto_ports)}, "
                  f"{line.by_id_dir}/*, {AUTO_FALLBACK})" if configured == "auto"
                  else f"{configured} does not exist")
        return fail("device", f"{looked}; serial ports here: {', '.join(there) or 'none'}",
                    "plug the modem in (a supported one: hw/README.md) and check `dmesg`, "
                    "or set line.modem.port to the port it is on", name)
    if configured == "auto":
        groups = _by_device(present)
    else:                           # the port, with the by-id names of its device
        port = present[0]
        others = _by_id(line.by_id_dir) if "://" not in port else []
        groups = _by_device([port, *others])[:1]
    shown = "; ".join(" = ".join(names) for names in groups)
    how = "port auto: " if configured == "auto" else ""
    return ok("device", f"{how}serial port{'s' * (len(groups) > 1)} {shown}", name)


def _by_device(names: list[str]) -> list[list[str]]:
    """Names grouped by the device they lead to, each group ending with the device."""
    groups: dict[str, list[str]] = {}
    for n in names:
        real = n if "://" in n else os.path.realpath(n)
        group = groups.setdefault(real, [])
        if n not in group:
            group.append(n)
    return [g + ([real] if real not in g else []) for real, g in groups.items()]


def _by_id(folder: str) -> list[str]:
    """udev's stable names of the USB serial ports (/dev/serial/by-id/...)."""
    return sorted(glob.glob(os.path.join(glob.escape(folder), "*")))


def _sound_cards(path: str) -> list[str]:
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return []
    return [ln.split("]:")[-1].strip() for ln in lines if "]:" in ln]


def _open_fix(name: str, backend: str) -> str:
    if backend == "modem":
        return ("check the modem's USB cable (unplug it, plug it back); if a callgate "
                f"service holds the port, stop it first: systemctl stop callgate@{name} "
                "(or callgate); a modem not recognised: set line.modem.profile")
    if backend == "hat":
        return ("stop the service that holds the pins (systemctl stop callgate@"
                f"{name}), check the board file named by line.hat.board and "
                "line.hat.device (aplay -L lists the ALSA devices)")
    return "correct the line's table in the configuration"


def _identity(name: str, line, backend: str) -> list[Check]:
    if backend == "modem":
        how = ("identified by ATI0/ATI3" if line.profile_name == "auto"
               else f"line.modem.profile = {line.profile_name}")
        modem = ok("modem", f"{line.profile.title} answers on {line.port} ({how}), "
                            f"{'full' if line.full_duplex else 'half'} duplex", name)
        # the backend's init sends AT+VCID=1 and fails to open on any answer but OK
        cid = ok("caller ID", "formatted caller ID reports on (the modem answered OK to "
                              "AT+VCID=1)", name)
        return [modem, cid]
    checks = []
    if backend == "hat":
        pins = ", ".join(f"{signal} {pin.name or f'{pin.chip}:{pin.offset}'}"
                         for signal, pin in line.board.pins.items())
        checks.append(ok("hat", f"board {line.board.name}: GPIO {pins} granted, ALSA "
                                f"{line.board.audio.device} open", name))
    if backend == "replay":
        checks.append(skip("caller ID", "a recording: its caller ID is what was recorded",
                           name))
    elif line.capabilities.onhook_audio:
        checks.append(ok("caller ID", "audio on hook: callgate decodes FSK and DTMF caller "
                                      "ID itself", name))
    else:
        checks.append(warn("caller ID", "no audio on hook: caller ID cannot be heard",
                           "use a board whose DAA passes on-hook audio (hw/README.md)", name))
    return checks


# ------------------------------------------------------------------ off hook


def _off_hook(name: str, line, backend: str, plan: str) -> list[Check]:
    line.off_hook()
    rate, n = line.rate, line.frame_samples
    heard, events, ended = _run(line, int(LISTEN_S * rate / n), silence=np.zeros(n, np.int16))
    echo = None
    if _hears_itself(line, backend) and not ended:
        tone = tone_tx([TEST_TONE_HZ], TEST_TONE_DBM0, (), TEST_TONE_S + 0.1, rate)
        sent = [tone[i:i + n] for i in range(0, int(TEST_TONE_S * rate), n)]
        echo, more, ended = _run(line, len(sent), frames=sent)
        events += more
    checks = [_audio_in(name, heard, backend, rate)]
    checks.append(_loop(name, line, events))
    checks += _dial_tone(name, heard, plan, backend, rate)
    checks.append(_audio_out(name, line, backend, heard, echo, ended, rate))
    return checks


def _hears_itself(line, backend: str) -> bool:
    """A recording hears nothing we send; a half-duplex line cannot listen while it
    plays."""
    return backend != "replay" and line.capabilities.full_duplex


def _run(line, count: int, silence=None, frames=None):
    """Read `count` frames, writing `silence` (or `frames`) after each as the engine
    does; (audio heard, events, whether the line ended)."""
    audio, events = [], []
    for i in range(count):
        frame = line.read()
        if frame is None:
            return _join(audio), events, True
        audio.append(frame.samples)
        events += frame.events
        line.write(frames[i] if frames is not None else silence)
    return _join(audio), events, False


def _join(parts) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, np.int16)


def _audio_in(name: str, heard: np.ndarray, backend: str, rate: int) -> Check:
    level = rms_dbm0(heard[rate // 2:]) if heard.size > rate // 2 else float("-inf")
    if level < MIN_AUDIO_DBM0:
        fixes = {"modem": "plug the phone cord into the modem's LINE socket (not PHONE) and "
                          "a live wall socket (a phone there gives dial tone)",
                 "hat": "check the DAA's line cord and the codec's capture input "
                        "(line.hat.device; alsamixer capture level)",
                 "replay": "the recording is silent: record the line again"}
        return fail("audio in", f"silence off hook ({_db(level)})",
                    fixes.get(backend, "check the line's audio"), name)
    return ok("audio in", f"line audio at {_db(level)} off hook", name)


def _loop(name: str, line, events: list) -> Check:
    faults = [e for e in events if isinstance(e, LineFault)]
    if faults:
        return fail("loop current", f"the line failed off hook ({faults[0].reason})",
                    "check the device's cable and power, then run doctor again", name)
    if not line.capabilities.loop_current:
        return skip("loop current", "this line does not report loop current (dial tone "
                                    "shows the line is live)", name)
    state = None
    for e in events:
        if isinstance(e, LoopCurrent):
            state = e.present
    if state is False:
        return fail("loop current", "none off hook: the line is dead or not connected",
                    "check the line cord and the wall socket with a phone; ask the carrier "
                    "if the line is live", name)
    if state is None:       # a modem reports only a drop (<DLE>l), never the current
        return ok("loop current", f"no loop drop reported in {LISTEN_S:g} s off hook", name)
    return ok("loop current", "present off hook", name)


def _dial_tone(name: str, heard: np.ndarray, plan: str, backend: str, rate: int) -> list[Check]:
    shipped = plan in available_toneplans()
    # a shipped plan is found among all of them, so a wrong one is named; a plan file of
    # the business's own PBX is listened for alone
    detector = CallProgressDetector(auto_toneplan() if shipped else load_toneplan(plan))
    tones = [e for e in detector.feed(heard) + detector.flush()
             if isinstance(e, ToneEvent) and e.tone == "dial"]
    if not tones:
        return [fail("dial tone", f"none heard in {LISTEN_S:g} s off hook",
                     "plug a phone into the same socket: no dial tone there is the "
                     "carrier's fault; a PBX extension without dial tone: set "
                     "engine.toneplan to its plan", name)]
    tone = tones[0]
    if shipped and plan not in tone.plans:
        found = fail("dial tone", f"heard, but it is plan {tone.plan}'s, not {plan}'s",
                     f'set engine.toneplan = "{tone.plan}" so busy and reorder tones are '
                     "recognised", name)
    else:
        found = ok("dial tone", f"heard (plan {plan if shipped else tone.plan})", name)
    level = tone.level_dbm0
    if level < WEAK_DIAL_DBM0:
        fix = ("raise line.hat.rx_gain_db" if backend == "hat" else
               "a long or noisy loop: check the cord and joints; ask the carrier to test "
               "the line")
        return [found, fail("dial tone level", f"{_db(level)}: too weak", fix, name)]
    if level > LOUD_DIAL_DBM0:
        fix = ("lower the capture gain (line.hat.rx_gain_db, alsamixer)" if backend == "hat"
               else "the line is unusually loud: check nothing amplifies it before the "
                    "device (a PBX port's gain, a line amplifier)")
        return [found, warn("dial tone level", f"{_db(level)}: near clipping", fix, name)]
    return [found, ok("dial tone level", _db(level), name)]


def _audio_out(name: str, line, backend: str, heard, echo, ended: bool, rate: int) -> Check:
    if backend == "replay":
        return skip("audio out", "a recording hears nothing we send", name)
    if not line.capabilities.full_duplex:
        return skip("audio out", "half duplex: the line cannot listen while it plays",
                    name)
    half = int(TEST_TONE_S * rate) // 2
    if ended or echo is None or echo.size < 2 * half or heard.size < rate:
        return fail("audio out", "the line ended before the test tone was sent",
                    "run doctor again with the line connected", name)
    back = tone_dbm0(echo[-half:], TEST_TONE_HZ, rate)
    quiet = tone_dbm0(heard[-half:], TEST_TONE_HZ, rate)
    if back < MIN_AUDIO_DBM0 or back - quiet < ECHO_MARGIN_DB:
        fixes = {"modem": "the modem sends no audio to the line: unplug it and plug it "
                          "back; a modem that stays silent is not a working voice modem",
                 "hat": "check the codec's playback wiring to the DAA and "
                        "line.hat.tx_gain_db (alsamixer playback level)"}
        return fail("audio out", f"our {TEST_TONE_HZ:g} Hz test tone did not come back "
                                 f"({_db(back)}, quiet line {_db(quiet)})",
                    fixes.get(backend, "check the line's audio path"), name)
    return ok("audio out", f"our {TEST_TONE_HZ:g} Hz test tone at {TEST_TONE_DBM0:g} dBm0 "
                           f"comes back at {_db(back)} (the line's echo)", name)


def tone_dbm0(x: np.ndarray, freq: float, rate: int) -> float:
    """The level of one frequency in `x` (Hann-windowed projection), in dBm0."""
    x = np.asarray(x, dtype=np.float64)
    window = np.hanning(x.size)
    t = np.arange(x.size) / rate
    z = np.sum(x * window * np.exp(-2j * np.pi * freq * t))
    amplitude = 2 * abs(z) / np.sum(window)
    return float(power_to_dbm0(amplitude ** 2 / 2))


def _db(level: float) -> str:
    return "no signal" if not np.isfinite(level) else f"{level:.1f} dBm0"
