"""The modem's u-law coder against coders we did not write, over every input.

ITU-T G.711 fixes the 256 decoded values; its software reference (ITU-T G.191,
the STL's g711 module) fixes how each of the 65,536 int16 inputs is coded. Two
independent coders are at hand: sox (its mu-law encoder and decoder, dither off)
and Python's audioop (the stdlib module on 3.11/3.12, the audioop-lts port on
3.13). Both decode exactly as G.711 says. Neither encodes negative samples the
way G.191 does: they take |x| >> 2 where G.191 takes the one's complement
(~x >> 2), one 14-bit step less, so G.191's code for x equals audioop's code for
x + 4 (x <= -5), and -1..-4 are negative zero. The tests hold those relations
over all inputs, so our coder is checked input by input against audioop.
"""

from __future__ import annotations

import subprocess
import warnings

import numpy as np

from callgate.line.modem import audio as modem_audio

from external import require

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop                 # stdlib on 3.11/3.12; audioop-lts on 3.13 (test extra)

ALL = np.arange(-32768, 32768, dtype=np.int16)
CODES = bytes(range(256))


def _sox(data: bytes, src: list[str], dst: list[str]) -> bytes:
    cmd = [require("sox"), "-D", "-t", "raw", "-r", "8000", "-c", "1", *src, "-",
           "-t", "raw", *dst, "-"]
    return subprocess.run(cmd, input=data, check=True, capture_output=True).stdout


def test_decoding_matches_sox_and_audioop_on_all_256_codes():
    ours = modem_audio.decode(CODES, "ulaw")
    by_sox = np.frombuffer(_sox(CODES, ["-e", "mu-law", "-b", "8"],
                                ["-e", "signed", "-b", "16", "-L"]), "<i2")
    by_audioop = np.frombuffer(audioop.ulaw2lin(CODES, 2), np.int16)
    assert np.array_equal(ours, by_sox)
    assert np.array_equal(ours, by_audioop)
    assert ours[0x00] == -32124 and ours[0xFF] == 0 and ours[0x7F] == 0 and ours[0x80] == 32124


def test_encoding_is_g191_on_all_65536_inputs():
    """Issue 17 item 11: 508 inputs were coded one code away from G.191 (|x| >> 2 for x < 0)."""
    ours = np.frombuffer(modem_audio.encode(ALL, "ulaw"), np.uint8)
    by_audioop = np.frombuffer(audioop.lin2ulaw(ALL.tobytes(), 2), np.uint8)
    x = ALL.astype(np.int32)
    positive = x >= 0
    assert np.array_equal(ours[positive], by_audioop[positive])
    low = x <= -5
    shifted = np.frombuffer(audioop.lin2ulaw((ALL[low] + 4).astype(np.int16).tobytes(), 2),
                            np.uint8)
    assert np.array_equal(ours[low], shifted)
    assert set(ours[(x < 0) & (x >= -4)]) == {0x7F}          # negative zero
    # where audioop and G.191 part: one code apart, never more
    differ = ours != by_audioop
    assert int(differ.sum()) == 508
    assert np.all(np.abs(ours[differ].astype(int) - by_audioop[differ]) == 1)


def test_every_code_decodes_back_to_itself():
    """A decoded value is a G.711 reconstruction level: coding it again gives the code
    (negative zero 0x7F excepted: it decodes to 0, which codes as 0xFF)."""
    levels = modem_audio.decode(CODES, "ulaw")
    again = np.frombuffer(modem_audio.encode(levels, "ulaw"), np.uint8)
    codes = np.arange(256)
    assert np.array_equal(again[codes != 0x7F], codes[codes != 0x7F])
    by_sox = np.frombuffer(_sox(levels.astype("<i2").tobytes(),
                                ["-e", "signed", "-b", "16", "-L"], ["-e", "mu-law", "-b", "8"]),
                           np.uint8)
    assert np.array_equal(again[codes != 0x7F], by_sox[codes != 0x7F])
