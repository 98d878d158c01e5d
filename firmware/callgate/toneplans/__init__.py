"""The tone plans: which call-progress tones and ringing cadence a network uses.

The shipped plans are TOML files beside this module (us.toml documents the
keys); a site can give its own file by path. A plan is read and checked once
per name or path and then shared: the engine, the ring counter and the
simulated exchange all use the same `TonePlan` object, so a plan given as a
file keeps every table of it (its [ring] cadence included) wherever it is used.

`callgate decode` listens for every shipped plan at once by default
(`auto_toneplan`): a recording may come from any network. The engine always
uses one plan, its line's country.

The signal core (dsp/) only ever receives the parsed `TonePlan`: it does no I/O.
"""

from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ..dsp.tones import TonePlan, combined_plan, plan_from_dict

__all__ = ["AUTO", "TonePlan", "auto_toneplan", "available_toneplans", "decode_toneplan",
           "load_toneplan"]

AUTO = "auto"
"""The name `callgate decode` takes for every shipped plan at once."""

PREFERRED = ("us", "uk", "etsi")
"""Named first when plans fit a tone equally: the regional references before
the national plans that share their figures (us before ca, etsi before nl)."""


def available_toneplans() -> list[str]:
    """Names of the tone plans shipped with callgate."""
    folder = resources.files(__package__)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


@lru_cache(maxsize=1)
def auto_toneplan() -> TonePlan:
    """Every shipped plan combined (dsp.tones.combined_plan), in PREFERRED order."""
    names = available_toneplans()
    order = [n for n in PREFERRED if n in names] + [n for n in names if n not in PREFERRED]
    return combined_plan([_shipped(n) for n in order], AUTO,
                         "every built-in plan: " + ", ".join(order))


def decode_toneplan(spec: str | os.PathLike) -> TonePlan:
    """What `callgate decode --toneplan` takes: "auto", a plan name or a TOML file."""
    if isinstance(spec, str) and spec == AUTO:
        return auto_toneplan()
    return load_toneplan(spec)


def load_toneplan(name_or_path: str | os.PathLike | TonePlan) -> TonePlan:
    """A shipped plan by name ("us", "de", ...; not "auto") or a TOML file by path; ValueError
    with one line naming the plan and the problem. A TonePlan is returned as it is."""
    if isinstance(name_or_path, TonePlan):
        return name_or_path
    spec = os.fspath(name_or_path) if isinstance(name_or_path, (str, os.PathLike)) else None
    if not isinstance(spec, str) or not spec:
        raise ValueError("tone plan: give a plan name or a path to a TOML file")
    if _is_name(spec):
        return _shipped(spec)
    path = Path(spec)
    try:
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = None                      # _from_file says why it cannot be read
    return _from_file(str(path.resolve()), stamp, spec)


def _is_name(spec: str) -> bool:
    return "/" not in spec and os.sep not in spec and not spec.endswith(".toml")


@lru_cache(maxsize=None)
def _shipped(name: str) -> TonePlan:
    res = resources.files(__package__).joinpath(f"{name}.toml")
    if name == AUTO:
        raise ValueError(f"tone plan {AUTO!r} (every plan at once) is for callgate decode; "
                         f"a line needs its country's plan: {', '.join(available_toneplans())}")
    if not res.is_file():
        raise ValueError(f"tone plan {name!r} is unknown; "
                         f"built-in plans: {', '.join(available_toneplans())}")
    return _parse(res.read_text(encoding="utf-8"), name)


@lru_cache(maxsize=32)
def _from_file(resolved: str, stamp: tuple | None, given: str) -> TonePlan:
    """Read once per file and version of it (a file edited since is read again)."""
    path = Path(given)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ValueError(f"tone plan {path}: cannot read ({err.strerror or err})") from None
    except UnicodeDecodeError:
        raise ValueError(f"tone plan {path}: not UTF-8 text") from None
    return _parse(text, str(path))


def _parse(text: str, origin: str) -> TonePlan:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"tone plan {origin}: not valid TOML ({err})") from None
    return plan_from_dict(data, origin)
