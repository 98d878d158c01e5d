"""What the simulated exchange plays: the tone plan's tones, caller ID, alerts, a "hello".

Pre-rendered once per line (float32 arrays, cached), so mixing a frame is a
few slice additions. Levels follow the signals' standards where they set one
(caller ID, DT-AS/CAS); call-progress tones play at a typical CO level.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, sosfilt

from ...dsp import RATE
from ...dsp.callerid import build_mdmf, callerid_tx
from ...dsp.dtmf import dtmf_tx
from ...dsp.fsk import BELL202, V23
from ...dsp.level import dbm0_to_rms
from ...dsp.tones import TonePlan, plan_tone_tx, tone_tx
from .calls import CallWaiting
from .mixer import ms

DTAS_MS = 100                # ETSI dual-tone alerting signal before on-hook caller ID
CAS_MS = 80                  # call-waiting CPE alerting signal
SAS_MS = 300                 # North American subscriber alerting signal (call waiting)
CW_FSK_DELAY_MS = 250        # CAS end -> off-hook FSK (as if acknowledged)
TONE_DBM0 = -16.0            # call-progress tones
ALERT_DBM0 = -15.0           # DT-AS / CAS, per component
CID_DBM0 = -13.5
CID_DTMF_DBM0 = -10.0
HELLO_DBM0 = -20.0

class Signals:
    """The exchange's pre-rendered audio for one tone plan (float32 arrays)."""

    def __init__(self, plan: TonePlan, country: str, rng: np.random.Generator) -> None:
        self.plan = plan
        self.cw_spec = BELL202 if country == "us" else V23
        self._loops: dict[str, np.ndarray] = {}
        self._cache: dict[tuple, np.ndarray] = {}
        self.dtas = _f32(tone_tx([2130, 2750], ALERT_DBM0, [], DTAS_MS / 1000))
        cas = _f32(tone_tx([2130, 2750], ALERT_DBM0, [], CAS_MS / 1000))
        sas = _f32(tone_tx([440], -13.0, [], SAS_MS / 1000)) if country == "us" else np.zeros(0)
        self.cw_alert = np.concatenate([sas, np.zeros(ms(20) if sas.size else 0, np.float32), cas,
                                        np.zeros(ms(CW_FSK_DELAY_MS), np.float32)])
        self.hello = _speechlike(rng, 0.6, HELLO_DBM0)

    def loop(self, name: str) -> np.ndarray:
        """One seamless cycle of a plan tone (1 s for a steady one)."""
        if name not in self._loops:
            tone = self.plan.tone(name)
            seconds = sum(tone.cadence_ms) / 1000 if tone.cadence_ms else 1.0
            self._loops[name] = _f32(plan_tone_tx(self.plan, name, seconds, TONE_DBM0))
        return self._loops[name]

    def fsk(self, message: bytes, kind: str, offhook: bool = False) -> np.ndarray:
        key = ("fsk", message, kind, offhook)
        if key not in self._cache:
            spec = BELL202 if kind == "bell202" else V23
            extra = {"seizure": 0, "mark": 80} if offhook else {}
            self._cache[key] = _f32(callerid_tx(message, spec, CID_DBM0, **extra))
        return self._cache[key]

    def dtmf(self, digits: str, on_ms: float, off_ms: float, level: float) -> np.ndarray:
        key = ("dtmf", digits, on_ms, off_ms, level)
        if key not in self._cache:
            self._cache[key] = _f32(dtmf_tx(digits, level, 0.0, on_ms, off_ms))
        return self._cache[key]

    def callwaiting(self, step: CallWaiting, datetime: str) -> np.ndarray:
        msg = build_mdmf(step.number, None, datetime)
        return np.concatenate([self.cw_alert, self.fsk(msg, self.cw_spec.name, offhook=True)])


def _f32(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def _speechlike(rng: np.random.Generator, seconds: float, level_dbm0: float) -> np.ndarray:
    """A short "hello": band-limited noise in three syllables (no tone, no DTMF)."""
    n = ms(seconds * 1000)
    sos = butter(4, [300, 3000], btype="bandpass", fs=RATE, output="sos")
    noise = sosfilt(sos, rng.standard_normal(n))
    envelope = np.zeros(n)
    syllable = np.hanning(ms(170))
    for at in (0, ms(210), ms(420)):
        part = envelope[at:at + syllable.size]
        part += syllable[:part.size]
    x = noise * envelope
    x *= dbm0_to_rms(level_dbm0) / np.sqrt(np.mean(x * x))
    return _f32(x)
