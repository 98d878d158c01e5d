"""Voice modem sample formats <-> int16, by table look-up (audioop is gone in 3.13).

A voice modem carries 8 kHz audio as one byte a sample, in the format chosen
with AT+VSM:

- "ulaw": G.711 mu-law (ITU-T G.711, the North American companding law), the
  format with the best dynamic range a modem offers at 8 bits.
- "linear8": 8-bit linear PCM in offset binary (0x80 is zero), what
  "8-BIT LINEAR" / "UNSIGNED PCM" deliver on the USR and Conexant parts (it is
  also how an 8-bit WAV stores samples).

Both directions are one NumPy fancy-index over the whole frame: a 256-entry
table to decode, a 65536-entry table (indexed by the int16 bit pattern) to
encode.
"""

from __future__ import annotations

import numpy as np

FORMATS = ("ulaw", "linear8")

_BIAS = 0x84      # G.711 mu-law bias (132)


def _ulaw_decode_table() -> np.ndarray:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
    return np.where(code & 0x80, -magnitude, magnitude).astype(np.int16)


def _ulaw_encode_table() -> np.ndarray:
    # As the ITU-T G.191 reference coder does it: the 14-bit magnitude of a
    # negative sample is its one's complement shifted (~x >> 2), not |x| >> 2,
    # so -1..-4 code as negative zero; bias by 33, clip to 13 bits (0x1FFF).
    value = np.arange(65536, dtype=np.int32)
    value = np.where(value >= 32768, value - 65536, value)       # the int16 bit patterns
    negative = value < 0
    magnitude = np.where(negative, ~value, value) >> 2
    magnitude = np.minimum(magnitude + 33, 0x1FFF)
    exponent = np.floor(np.log2(magnitude)).astype(np.int32) - 5  # 0..7
    mantissa = (magnitude >> (exponent + 1)) & 0x0F
    sign = np.where(negative, 0x80, 0)
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8)


_ULAW_DECODE = _ulaw_decode_table()
_ULAW_ENCODE = _ulaw_encode_table()
_LINEAR8_DECODE = ((np.arange(256, dtype=np.int32) - 128) << 8).astype(np.int16)


def decode(data: bytes, fmt: str) -> np.ndarray:
    """Modem bytes -> int16 samples."""
    codes = np.frombuffer(data, dtype=np.uint8)
    table = _ULAW_DECODE if fmt == "ulaw" else _LINEAR8_DECODE
    return table[codes]


def encode(samples: np.ndarray, fmt: str) -> bytes:
    """int16 samples -> modem bytes (before DLE shielding)."""
    pcm = np.asarray(samples, dtype=np.int16)
    if fmt == "ulaw":
        return _ULAW_ENCODE[pcm.view(np.uint16)].tobytes()
    return ((pcm >> 8).astype(np.int16) + 128).astype(np.uint8).tobytes()


def silence(n: int, fmt: str) -> bytes:
    """`n` samples of digital silence in the modem format."""
    return bytes([0xFF if fmt == "ulaw" else 0x80]) * n
