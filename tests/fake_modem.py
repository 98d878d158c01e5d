"""FakeModem: a fake V.253 voice modem on a pseudo-terminal, for the modem line's tests.

It is a fake (no phone line behind it) that answers as the USR5637 and the
Conexant CX93010 parts do, per V.250/V.253 and their AT command references:
echo until ATE0, verbose result codes, ATI0/ATI3 identification, ERROR for a
voice command outside +FCLASS=8 and for a +VSM/+VSD value the part lacks,
the +VSM=? list of its compression methods (USRobotics 56K command reference,
Voice Commands, +VSM; Conexant host-processed modem reference 100498E,
5.2.2.13 +VSM: 1, 128-133 with ULAW at 131; a real CX93001 also lists 0 and
answers ERROR to 4, issue 17's bench note), +VCID? with the caller ID mode,
DTMF keys as <DLE> reports (the USR part shields them as <DLE>/ <DLE>digit
<DLE>~ in any data state, USRobotics reference Table 6-2),
VCON (Conexant) or OK (USR) to +VLS off hook, CONNECT then a DLE-shielded
audio stream for +VRX/+VTX/+VTR (+VTR only on the Conexant part), <DLE><ETX>
then OK when the host ends a receive (<DLE>! or <DLE>^), OK when the host
ends a transmit with <DLE><ETX>, formatted caller ID between rings when
+VCID=1, and a hook flash for ATD!; that takes S29 x 10 ms before OK.

It is reached through a symlink (like /dev/serial/by-id/...) so that it can be
"unplugged" (pty closed, link gone) and "plugged in" again as a new pty under
the same name, as a USB modem re-enumerates, or under another name (`plug(link=...)`,
ttyACM1 after ttyACM0) with its /dev/serial/by-id-style name (`by_id`) moved to it, as
udev does. `hang()` makes it stop answering.

The host side is driven through real pyserial on the pty slave.
"""

from __future__ import annotations

import os
import select
import threading
import time
import tty
from collections import deque
from pathlib import Path

import numpy as np

from callgate.line.modem import audio as modem_audio

DLE = 0x10
ETX = 0x03

# +VSM=? lines: <cml>, name, bits a sample (then timing marks, rates, sds, sel)
_REFERENCE_VSM = [(1, "UNSIGNED PCM", 8), (128, "8-BIT LINEAR", 8), (129, "ADPCM", 4),
                  (130, "UNSIGNED PCM", 8), (131, "ULAW", 8), (132, "ALAW", 8),
                  (133, "LINEAR", 16)]
# what the fake streams for a method: the formats the host can decode, bytes of silence else
VSM_FORMATS = {1: "linear8", 128: "linear8", 130: "linear8", 131: "ulaw"}

MODELS = {
    "usr5637": {
        "ati0": "5601",
        "ati3": "U.S. Robotics 56K FAX USB V1.2.23",
        "vsm_list": _REFERENCE_VSM,                  # USRobotics reference, +VSM=? example
        "vsm_args": ("8000", "8000,0,0"),            # +VSM=<cml>,<vsr>,<sds>,<sel>
        "vsd": {"128,0", "128,50"},
        "vtr": False,
        "vls_reply": "OK",
        "cid_sep": "=",
        "dtmf_shielded": True,                       # <DLE>/ <DLE>d <DLE>~ (Table 6-2)
    },
    "cx93010": {
        "ati0": "56000",
        "ati3": "CX93001-EIS_V0.2002-V92",
        "vsm_list": [(0, "SIGNED PCM", 8), *_REFERENCE_VSM],   # 100498E 5.2.2.13 + bench note
        "vsm_args": ("8000,0,0", "8000"),            # +VSM=<cml>,<vsr>,<sds>,<sel>
        "vsd": {"0,0", "0,50"},
        "vtr": True,
        "vls_reply": "VCON",
        "cid_sep": " = ",
        "dtmf_shielded": False,
    },
}


class FakeModem:
    """A fake voice modem (see the module docstring). `link` is the port name to open."""

    def __init__(self, link: Path, model: str = "cx93010", speed: float = 4.0,
                 by_id: Path | None = None, accepts: set[str] = frozenset()) -> None:
        self.link = Path(link)
        self.by_id = Path(by_id) if by_id else None
        self.end_reply = "OK"               # after <DLE><ETX>: some parts say VCON
        self.accepts = set(accepts)         # vendor commands it takes (e.g. "!4886=00")
        self.vsm_listed = True              # False: ERROR to +VSM=? (a part that lists none)
        self.model = model
        self.spec = MODELS[model]
        self.period = 0.02 / speed          # one 20 ms frame of audio every `period` seconds
        self.commands: list[str] = []       # every AT command received, in order
        self.flashes: list[int] = []        # ms of each hook flash done
        self.received = bytearray()         # audio bytes the host sent (unshielded)
        self.raw_received = bytearray()     # as they came, shielded
        self.hook_log: list[str] = []       # "off" / "on" as +VLS/ATH changed the hook
        self._lock = threading.Lock()
        self._play: deque[np.ndarray] = deque()
        self._dle_out: deque[bytes] = deque()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._hung = False
        self.plugged = False
        self.plug()

    # ------------------------------------------------------------ the device
    def plug(self, link: Path | None = None) -> None:
        """Power on: a new pty under the same name (or `link`), factory state (echo on,
        data mode); the by-id name, if any, follows it."""
        self.link = Path(link) if link else self.link
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        for name in (self.link, self.by_id):
            if name is None:
                continue
            if name.is_symlink() or name.exists():
                name.unlink()
            name.parent.mkdir(parents=True, exist_ok=True)
            name.symlink_to(os.ttyname(self._slave))
        self.echo = True
        self.fclass = 0
        self.vcid = 0
        self.fmt: int | None = None         # the +VSM <cml> chosen
        self.country: str | None = None
        self.off_hook = False
        self.s29 = 70
        self.data: str | None = None
        self._hung = False
        self._inbuf = bytearray()
        self._dle = False
        self._due: list[tuple[float, bytes]] = []
        self._stop.clear()
        self._next_frame = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"fake-{self.model}", daemon=True)
        self.plugged = True
        self._thread.start()

    def unplug(self) -> None:
        """The USB device goes away: the pty closes and its name disappears."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        self.plugged = False
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass
        for name in (self.link, self.by_id):
            if name is not None and name.is_symlink():
                name.unlink()

    def close(self) -> None:
        if self.plugged:
            self.unplug()

    def hang(self, hung: bool = True) -> None:
        """Firmware lock-up: stop answering and stop streaming (the port stays)."""
        self._hung = hung

    # ------------------------------------------------------------ the line side
    def ring(self, callerid: dict | None = None) -> None:
        """One ring burst: RING, and the caller ID lines after it if given and +VCID=1."""
        text = "\r\nRING\r\n"
        if callerid is not None and self.vcid:
            sep = self.spec["cid_sep"]
            text += "\r\n" + "".join(f"{k}{sep}{v}\r\n" for k, v in callerid.items())
        self._write(text.encode("latin-1"))

    def key(self, digit: str, repeats: int = 1) -> None:
        """The far end pressed a key: the modem's <DLE> report, in whatever state it is in.

        `repeats`: a shielding part that reports the digit again while the tone lasts
        (V.253 DTMF duration reporting, as Intel's 536EX developer's manual 6.1 shows for
        a 280 ms burst of 5: <DLE>/ then the digit repeated, then <DLE>~)."""
        report = bytes([DLE]) + digit.encode("ascii")
        if self.spec["dtmf_shielded"]:
            report = b"\x10/" + report * repeats + b"\x10~"
        if self.data in ("rx", "duplex"):
            self._dle_out.append(report)
        else:
            self._write(report)

    def lines(self, *text: str) -> None:
        """Result-code lines as the modem prints them (CR LF around each)."""
        self._write(b"".join(b"\r\n" + t.encode("utf-8") + b"\r\n" for t in text))

    def play(self, samples: np.ndarray) -> None:
        """Audio from the far end, sent to the host in the next data state frames."""
        samples = np.asarray(samples, dtype=np.int16)
        for i in range(0, len(samples), 160):
            self._play.append(samples[i:i + 160])

    def event(self, code: str) -> None:
        """A <DLE><code> event report, sent between audio frames (or at once in text)."""
        data = bytes([DLE]) + code.encode("latin-1")
        if self.data in ("rx", "duplex"):
            self._dle_out.append(data)
        else:
            self._write(data)

    def raw(self, data: bytes) -> None:
        """Bytes straight onto the port (for shapes of output the helpers do not make)."""
        self._write(data)

    # ------------------------------------------------------------ the thread
    def _write(self, data: bytes) -> None:
        with self._lock:
            if not self.plugged or self._hung:
                return
            view = memoryview(data)
            while view:
                try:
                    n = os.write(self._master, view)
                except OSError:
                    return
                view = view[n:]

    def _run(self) -> None:
        while not self._stop.is_set():
            timeout = self.period / 2
            try:
                ready, _, _ = select.select([self._master], [], [], timeout)
            except (OSError, ValueError):
                return
            if ready:
                try:
                    chunk = os.read(self._master, 4096)
                except OSError:
                    chunk = b""
                if chunk and not self._hung:
                    self._input(chunk)
            now = time.monotonic()
            for due in [d for d in self._due if d[0] <= now]:
                self._due.remove(due)
                self._write(due[1])
            if self.data in ("rx", "duplex") and now >= self._next_frame and not self._hung:
                self._next_frame = max(self._next_frame + self.period, now - self.period)
                self._send_frame()

    def _send_frame(self) -> None:
        out = bytearray()
        while self._dle_out:
            out += self._dle_out.popleft()
        pcm = self._play.popleft() if self._play else np.zeros(160, np.int16)
        fmt = VSM_FORMATS.get(self.fmt)
        coded = modem_audio.encode(pcm, fmt) if fmt else bytes(len(pcm))
        out += coded.replace(b"\x10", b"\x10\x10")
        self._write(bytes(out))

    def _input(self, chunk: bytes) -> None:
        if self.data is not None:
            self._data_input(chunk)
            return
        for byte in chunk:
            if self.data is not None:             # a command opened a data state mid-chunk
                self._data_input(bytes([byte]))
                continue
            if byte == 0x0D:
                line = self._inbuf.decode("latin-1")
                self._inbuf.clear()
                if self.echo:
                    self._write(line.encode("latin-1") + b"\r")
                if line.strip():
                    self._command(line.strip())
            elif byte != 0x0A:
                self._inbuf.append(byte)

    def _data_input(self, chunk: bytes) -> None:
        self.raw_received += chunk
        for byte in chunk:
            if self._dle:
                self._dle = False
                if byte == DLE:
                    if self.data in ("tx", "duplex"):
                        self.received.append(DLE)
                elif byte == ETX and self.data == "tx":
                    self.data = None
                    self._reply(self.end_reply)
                elif (byte, self.data) in ((ord("!"), "rx"), (ord("^"), "duplex")):
                    self.data = None
                    self._play.clear()
                    self._write(bytes([DLE, ETX]) + f"\r\n{self.end_reply}\r\n".encode())
                continue
            if byte == DLE:
                self._dle = True
            elif self.data in ("tx", "duplex"):
                self.received.append(byte)

    def _reply(self, *lines: str) -> None:
        self._write(b"".join(b"\r\n" + line.encode("latin-1") + b"\r\n" for line in lines))

    def _command(self, line: str) -> None:
        start = line.upper().find("AT")      # V.250: what comes before the AT prefix is ignored
        if start < 0:
            self._reply("ERROR")
            return
        cmd = line[start + 2:].upper()
        self.commands.append("AT" + cmd)
        voice = cmd.startswith("+V")
        if voice and self.fclass != 8:
            self._reply("ERROR")
            return
        spec = self.spec
        if cmd in ("", "V1", "Q0", "+VIT=0", "+FCLASS=0"):
            self.fclass = 0 if cmd == "+FCLASS=0" else self.fclass
            self._reply("OK")
        elif cmd in ("Z", "&F"):
            self.echo, self.fclass, self.vcid, self.fmt = True, 0, 0, None
            self._reply("OK")
        elif cmd in ("E0", "E1"):
            self.echo = cmd == "E1"
            self._reply("OK")
        elif cmd == "I0":
            self._reply(spec["ati0"], "OK")
        elif cmd == "I3":
            self._reply(spec["ati3"], "OK")
        elif cmd == "+FCLASS=8":
            self.fclass = 8
            self._reply("OK")
        elif cmd in ("+VCID=0", "+VCID=1", "+VCID=2"):
            self.vcid = int(cmd[-1])
            self._reply("OK")
        elif cmd == "+VCID?":
            self._reply(str(self.vcid), "OK")
        elif cmd == "+VSM=?":
            if not self.vsm_listed:
                self._reply("ERROR")
                return
            self._reply(*[f'{c},"{name}",{bits},0,(7200,8000),(0),(0)'
                          for c, name, bits in spec["vsm_list"]], "OK")
        elif cmd.startswith("+VSM="):
            cml, _, args = cmd[5:].partition(",")
            known = {c for c, _, _ in spec["vsm_list"]}
            if cml.isdigit() and int(cml) in known and args in spec["vsm_args"]:
                self.fmt = int(cml)
                self._reply("OK")
            else:
                self._reply("ERROR")
        elif cmd.startswith("+GCI="):
            self.country = cmd[5:]
            self._reply("OK")
        elif cmd in self.accepts:
            self._reply("OK")
        elif cmd.startswith("+VSD="):
            self._reply("OK" if cmd[5:] in spec["vsd"] else "ERROR")
        elif cmd in ("+VLS=0", "+VLS=1"):
            self._hook(cmd == "+VLS=1")
            self._reply(spec["vls_reply"] if self.off_hook else "OK")
        elif cmd in ("+VRX", "+VTX", "+VTR"):
            if not self.off_hook or self.fmt is None or (cmd == "+VTR" and not spec["vtr"]):
                self._reply("ERROR")
                return
            self._reply("CONNECT")
            self.data = {"+VRX": "rx", "+VTX": "tx", "+VTR": "duplex"}[cmd]
            self._dle = False
            self._next_frame = time.monotonic()
        elif cmd.startswith("S29="):
            self.s29 = int(cmd[4:])
            self._reply("OK")
        elif cmd in ("D!;", "D!"):
            if not self.off_hook:
                self._reply("ERROR")
                return
            self.flashes.append(self.s29 * 10)
            self._due.append((time.monotonic() + self.s29 / 100, b"\r\nOK\r\n"))
        elif cmd in ("H", "H0", "H1"):
            self._hook(cmd == "H1")
            self._reply("OK")
        else:
            self._reply("ERROR")

    def _hook(self, off: bool) -> None:
        if off != self.off_hook:
            self.hook_log.append("off" if off else "on")
        self.off_hook = off
