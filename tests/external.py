"""Signals from generators we did not write: sox, minimodem and libspandsp.

Our detectors are checked against these so that a mistake shared by our own
generator and our own receiver cannot pass unseen. Every function returns
int16 samples at 8 kHz. The libspandsp helper (tests/helpers/spandsp_tool.c)
is compiled on first use into tests/helpers/bin/.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from callgate.wav import read_wav

RATE = 8000
HELPERS = Path(__file__).resolve().parent / "helpers"
SPANDSP_SOURCE = HELPERS / "spandsp_tool.c"
SPANDSP_BINARY = HELPERS / "bin" / "spandsp_tool"

MODEMS = {"bell202": (1200, 2200), "v23": (1300, 2100)}
ADSI_STANDARDS = {"clip": "class", "etsi": "clip", "dtmf": "clip-dtmf"}


class ToolMissing(RuntimeError):
    """An external tool that the tests need is not installed."""


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise ToolMissing(f"{tool} is not installed; run tools/test, which installs it")
    return path


def _raw_to_int16(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw[: len(raw) // 2 * 2], "<i2").copy()


def sox_synth(args: list[str], seconds: float) -> np.ndarray:
    """`sox -n ... synth SECONDS ARGS...` as int16 mono at 8 kHz."""
    cmd = [require("sox"), "-q", "-n", "-r", str(RATE), "-b", "16", "-e", "signed",
           "-c", "1", "-t", "raw", "-", "synth", f"{seconds:.6f}", *args]
    out = subprocess.run(cmd, check=True, capture_output=True).stdout
    return _raw_to_int16(out)


def sox_effect(samples: np.ndarray, effects: list[str]) -> np.ndarray:
    """Run int16 8 kHz audio through sox effects (e.g. ['vol', '0.5'])."""
    fmt = ["-r", str(RATE), "-b", "16", "-e", "signed", "-c", "1", "-t", "raw"]
    cmd = [require("sox"), "-q", *fmt, "-", *fmt, "-", *effects]
    data = np.asarray(samples, dtype="<i2").tobytes()
    out = subprocess.run(cmd, check=True, input=data, capture_output=True).stdout
    return _raw_to_int16(out)


def minimodem_tx(data: bytes, mode: str, baud: float = 1200.0,
                 mark: float | None = None, space: float | None = None,
                 volume: float = 1.0) -> np.ndarray:
    """Bytes sent 8N1 by `minimodem --tx`: mode 'bell202' or 'v23'.

    `baud`, `mark` and `space` override the mode's figures, for offset tests.
    minimodem adds its own short mark leader and trailer around the data.
    It makes each bit a whole number of samples, so it runs at 40 samples a
    bit and the WAV is resampled to 8 kHz on reading (at 8 kHz its 1200 baud
    would really be 8000/7 = 1143 baud).
    """
    default_mark, default_space = MODEMS[mode]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "tx.wav"
        cmd = [require("minimodem"), "--tx", "-8", "-q", "-R", str(int(round(baud * 40))),
               "-M", f"{mark or default_mark}", "-S", f"{space or default_space}",
               "-v", f"{volume}", "-f", str(out), f"{baud}"]
        subprocess.run(cmd, check=True, input=data, capture_output=True)
        return read_wav(out)


def spandsp_tool() -> str:
    """Path of the compiled libspandsp helper, building it when stale."""
    if (not SPANDSP_BINARY.exists()
            or SPANDSP_BINARY.stat().st_mtime < SPANDSP_SOURCE.stat().st_mtime):
        SPANDSP_BINARY.parent.mkdir(exist_ok=True)
        cc = shutil.which("cc") or require("gcc")
        subprocess.run([cc, "-O2", "-o", str(SPANDSP_BINARY), str(SPANDSP_SOURCE),
                        "-lspandsp"], check=True, capture_output=True)
    return str(SPANDSP_BINARY)


def _spandsp(args: list[str], stdin: bytes = b"") -> bytes:
    return subprocess.run([spandsp_tool(), *args], check=True, input=stdin,
                          capture_output=True).stdout


def spandsp_dtmf_tx(digits: str, level_dbm0: float = -10.0, on_ms: int = 50,
                    off_ms: int = 50, twist_db: float = 0.0) -> np.ndarray:
    """libspandsp's dtmf_tx: low tone at level_dbm0, high tone twist_db above it."""
    args = ["dtmf-tx", digits, str(round(level_dbm0)), str(round(twist_db)),
            str(on_ms), str(off_ms)]
    return _raw_to_int16(_spandsp(args))


def spandsp_dtmf_rx(samples: np.ndarray) -> str:
    """Digits libspandsp's dtmf_rx hears in the audio."""
    out = _spandsp(["dtmf-rx"], np.asarray(samples, dtype="<i2").tobytes())
    return out.decode("ascii").strip()


def spandsp_adsi_tx(standard: str, message: bytes) -> np.ndarray:
    """A caller ID burst made by libspandsp's adsi_tx.

    standard 'clip' is Bell 202 per GR-30 (spandsp calls it CLASS), 'etsi' is
    V.23 per EN 300 659 (spandsp's CLIP), 'dtmf' is ETSI DTMF caller ID. For
    the FSK standards `message` is type, length and body without checksum
    (spandsp fixes the length and appends the checksum); for 'dtmf' it is the
    digit string, e.g. b'A5551234C'.
    """
    return _raw_to_int16(_spandsp(["adsi-tx", ADSI_STANDARDS[standard]], message))


def spandsp_adsi_rx(standard: str, samples: np.ndarray) -> list[bytes]:
    """Messages libspandsp's adsi_rx decodes (type, length, body; no checksum)."""
    out = _spandsp(["adsi-rx", ADSI_STANDARDS[standard]],
                   np.asarray(samples, dtype="<i2").tobytes())
    return [bytes.fromhex(line) for line in out.decode("ascii").split()]


def spandsp_tone_tx(f1: int, level1_dbm0: float, f2: int, level2_dbm0: float,
                    cadence_ms: list[int], seconds: float) -> np.ndarray:
    """libspandsp's tone_gen: up to two on/off pairs of cadence, repeated.

    An empty cadence means a continuous tone. f2 = 0 gives a single tone.
    """
    if not cadence_ms:
        cadence = [int(seconds * 1000) + 1000, 0, 0, 0]
    else:
        cadence = (list(cadence_ms) + [0, 0, 0, 0])[:4]
    repeat = "1"
    args = ["tone-tx", str(f1), str(round(level1_dbm0)), str(f2), str(round(level2_dbm0)),
            *[str(d) for d in cadence], repeat, str(int(round(seconds * RATE)))]
    return _raw_to_int16(_spandsp(args))
