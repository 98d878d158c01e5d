"""Talk-off: speech and music on the line must not be heard as DTMF digits.

The corpus is built on the fly from things installed on the machine:
espeak-ng speech in several languages, voices, pitches and speeds; real
recorded voices (the alsa-utils channel announcements, and the Mandarin
syllables of gcin-voice, sung-out vowels with steady pitch, which are the
hardest case for a tone receiver); and music (the asc-music soundtrack).
bench/talkoff.py builds a larger corpus with the same helpers.
"""

from __future__ import annotations

import glob
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from callgate.dsp.dtmf import DtmfReceiver, dtmf_tx
from callgate.dsp.level import dbm0_to_rms
from callgate.wav import read_wav

RATE = 8000
ALSA_SPEECH = "/usr/share/sounds/alsa"
GCIN_VOICE = "/usr/share/gcin-voice/ogg"
ASC_MUSIC = "/usr/share/games/asc/music"

TEXTS = {
    "en": ("Thank you for calling. Please say or key in your account number, "
           "followed by the hash key. For billing, press one. To speak with an "
           "agent, please hold the line; your call is important to us. Nine, "
           "five, two, seven, zero, zero, four, six, one, eight."),
    "de": ("Guten Tag, bitte nennen Sie Ihre Kundennummer. Wir verbinden Sie "
           "sofort mit einem Mitarbeiter. Vielen Dank fuer Ihre Geduld."),
    "fr": ("Bonjour, veuillez composer votre numero de client suivi de la "
           "touche diese. Un conseiller va vous repondre dans un instant."),
    "es": ("Buenos dias, por favor marque su numero de cliente. Un agente le "
           "atendera en breve. Gracias por su paciencia."),
    "it": ("Buongiorno, la preghiamo di attendere in linea. Un operatore le "
           "rispondera al piu presto."),
    "ru": "Здравствуйте, пожалуйста, назовите номер вашего договора. Спасибо.",
    "cmn": "您好，请输入您的账号，然后按井号键。谢谢您的耐心等待。",
    "ja": "お電話ありがとうございます。口座番号を入力してください。",
    "hi": "नमस्ते, कृपया अपना खाता संख्या बताइए। धन्यवाद।",
    "ar": "مرحبا، من فضلك أدخل رقم حسابك. شكرا لك على الانتظار.",
}

# (language, variant, words per minute, pitch 0-99): a spread of voices.
QUICK_VOICES = [
    ("en-us", "", 160, 50), ("en-gb", "+f3", 140, 70), ("en-us", "+m3", 190, 35),
    ("de", "+f2", 150, 60), ("fr-fr", "+m1", 170, 40), ("es", "+f4", 165, 80),
    ("it", "+klatt2", 150, 55), ("ru", "+m5", 140, 45), ("cmn", "+f1", 130, 65),
    ("ja", "+m7", 150, 50), ("hi", "+f5", 150, 75), ("ar", "+klatt4", 160, 30),
    ("en-us", "+whisper", 150, 50), ("en-us", "+f2", 110, 99), ("en-gb", "+m2", 220, 10),
]


def level_to(x: np.ndarray, dbm0: float) -> np.ndarray:
    """Scale audio to an RMS level (clipping where it must, as a codec does)."""
    x = np.asarray(x, dtype=np.float64)
    rms = np.sqrt(np.mean(x * x)) if x.size else 0.0
    if rms == 0.0:
        return x.astype(np.int16)
    y = x * (dbm0_to_rms(dbm0) / rms)
    return np.clip(np.round(y), -32768, 32767).astype(np.int16)


def espeak(text: str, voice: str, wpm: int, pitch: int) -> np.ndarray:
    """espeak-ng speech at 8 kHz."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "s.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-p", str(pitch),
                        "-w", str(out), text], check=True, capture_output=True)
        return read_wav(out)


def espeak_corpus(voices: list[tuple[str, str, int, int]]) -> list[tuple[str, np.ndarray]]:
    clips = []
    for lang, variant, wpm, pitch in voices:
        text = TEXTS.get(lang.split("-")[0], TEXTS["en"])
        clips.append((f"espeak {lang}{variant} {wpm}wpm p{pitch}",
                      espeak(text, lang + variant, wpm, pitch)))
    return clips


def sox_decode(paths: list[str], seconds: float | None = None) -> np.ndarray:
    """Decode and concatenate audio files (ogg, mp3, wav) to 8 kHz mono int16."""
    trim = ["trim", "0", f"{seconds}"] if seconds else []
    cmd = ["sox", "-q", *paths, "-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed",
           "-t", "raw", "-", *trim]
    out = subprocess.run(cmd, check=True, capture_output=True).stdout
    return np.frombuffer(out, "<i2").copy()


def alsa_speech() -> list[tuple[str, np.ndarray]]:
    paths = sorted(glob.glob(os.path.join(ALSA_SPEECH, "*.wav")))
    return [("alsa-utils announcements", np.concatenate([read_wav(p) for p in paths]))]


def gcin_syllables(count: int | None, seed: int = 1) -> list[tuple[str, np.ndarray]]:
    """Real Mandarin syllables (one speaker), `count` chosen at random or all."""
    paths = sorted(glob.glob(os.path.join(GCIN_VOICE, "*", "*.ogg")))
    if count is not None:
        rng = np.random.default_rng(seed)
        paths = sorted(rng.choice(paths, size=min(count, len(paths)), replace=False))
    chunks = [sox_decode(paths[i:i + 400]) for i in range(0, len(paths), 400)]
    return [(f"gcin-voice {len(paths)} syllables", np.concatenate(chunks))]


def music(seconds: float | None) -> list[tuple[str, np.ndarray]]:
    paths = sorted(glob.glob(os.path.join(ASC_MUSIC, "*.mp3")))
    return [(f"asc-music {Path(p).stem}", sox_decode([p], seconds)) for p in paths]


def false_digits(audio: np.ndarray, receiver: DtmfReceiver | None = None) -> str:
    receiver = receiver or DtmfReceiver()
    events = receiver.feed(audio) + receiver.flush()
    return "".join(e.digit for e in events)


def quick_corpus() -> list[tuple[str, np.ndarray]]:
    """About three minutes: quick enough for every test run."""
    return (espeak_corpus(QUICK_VOICES) + alsa_speech() + gcin_syllables(250)
            + music(25.0))


@pytest.fixture(scope="module")
def corpus() -> list[tuple[str, np.ndarray]]:
    return quick_corpus()


def test_corpus_is_substantial(corpus):
    seconds = sum(x.size for _, x in corpus) / RATE
    assert seconds > 150
    assert all(np.sqrt(np.mean(x.astype(float) ** 2)) > 100 for _, x in corpus)


@pytest.mark.parametrize("level", [-30.0, -15.0, -5.0])
def test_no_digits_from_speech_or_music(corpus, level):
    heard = {name: false_digits(level_to(x, level)) for name, x in corpus}
    assert {n: d for n, d in heard.items() if d} == {}


@pytest.mark.parametrize("normal, reverse", [(8.0, 4.0), (6.0, 6.0)])
def test_digits_mixed_into_speech_are_still_heard(corpus, normal, reverse):
    """The guards are not so tight that a real digit over speech is lost."""
    speech = np.concatenate([x for name, x in corpus if name.startswith("espeak")][:3])
    speech = level_to(speech, -25.0).astype(np.int32)
    digits = "1590*#AD" * 3
    tones = dtmf_tx(digits, level_dbm0=-12.0, on_ms=60, off_ms=440)
    assert speech.size >= tones.size
    mixed = np.clip(speech[: tones.size] + tones, -32768, 32767).astype(np.int16)
    rx = DtmfReceiver(normal_twist_db=normal, reverse_twist_db=reverse)
    assert false_digits(mixed, rx) == digits
