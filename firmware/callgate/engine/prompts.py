"""Prompt sets: prompts_wav/<language>/<name>.wav, loaded once at start.

Every prompt is read (and converted to 8 kHz int16) when the set is loaded,
so a missing or unreadable prompt is a one-line error before the first call,
never a silence in the middle of one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ..config import ConfigError
from ..wav import WavError, read_wav

_HERE = Path(__file__).resolve()


def default_prompt_root() -> Path:
    """prompts_wav/ of the source tree (an editable install), else the release's own (an
    update bundle installs it in the venv: appliance/update.py), else the system copy."""
    for candidate in (_HERE.parents[3] / "prompts_wav", Path(sys.prefix) / "prompts_wav",
                      Path("/usr/share/callgate/prompts_wav")):
        if candidate.is_dir():
            return candidate
    return _HERE.parents[3] / "prompts_wav"


class PromptSet:
    """The prompts of one language, as int16 arrays by name."""

    def __init__(self, language: str = "en", root: str | Path | None = None,
                 require: tuple[str, ...] | list[str] = ()) -> None:
        self.language = language
        self.folder = Path(root) if root is not None else default_prompt_root()
        self.folder = self.folder / language
        if not self.folder.is_dir():
            raise ConfigError(f"prompts: no prompt folder {self.folder} for language {language!r}")
        self.prompts: dict[str, np.ndarray] = {}
        for path in sorted(self.folder.glob("*.wav")):
            try:
                audio = read_wav(path)
            except WavError as err:
                raise ConfigError(f"prompts: {err}") from None
            audio.setflags(write=False)
            self.prompts[path.stem] = audio
        missing = [name for name in require if name not in self.prompts]
        if missing:
            raise ConfigError(f"prompts: {self.folder} has no {', '.join(m + '.wav' for m in missing)}")

    def __contains__(self, name: str) -> bool:
        return name in self.prompts

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.prompts[name]
        except KeyError:
            raise KeyError(f"no prompt {name!r} in {self.folder}") from None

    def names(self) -> list[str]:
        return sorted(self.prompts)
