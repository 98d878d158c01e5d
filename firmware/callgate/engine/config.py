"""The [engine] table: how the engine answers, listens, dials and hangs up.

Every time is in milliseconds and is counted on the line's sample clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import ConfigError, Table
from ..toneplans import load_toneplan


@dataclass
class EngineConfig:
    """The [engine] table. Times in ms on the line's sample clock."""

    rings: int | None = None          # answer on this ring; None ("auto"): caller ID, else ring 3
    cpc_ms: int = 250                 # loop current drop that means the caller hung up
    silence_ms: int = 30000           # silence (both ways) that ends a call; 0: never
    abandon_ms: int = 8000            # no ring for this long: the caller gave up
    min_ring_ms: int = 200            # shorter ring bursts are noise
    flash_ms: int = 600               # hook flash length for transfers
    blind_settle_ms: int = 500        # after dialling, before hanging up (blind transfer)
    dial_level_dbm0: float = -7.0
    dial_on_ms: int = 80
    dial_off_ms: int = 80
    language: str = "en"
    prompts: str | None = None        # folder holding <language>/<name>.wav
    fallback_extension: str | None = None
    toneplan: str | None = None       # default: the line's country, else "us"
    max_call_ms: int = 3_600_000
    dtmf_min_level_dbm0: float = -40.0  # weakest key tone heard (a long rural loop: -36)

    @classmethod
    def from_table(cls, t: Table) -> "EngineConfig":
        """Read and check [engine]; ConfigError names the bad key."""
        rings = t.get("rings", (str, int), "auto")
        if isinstance(rings, str):
            if rings != "auto":
                raise ConfigError(f"{t.key('rings')}: expected \"auto\" or a number of rings, "
                                  f"got {rings!r}")
            rings = None
        elif not 1 <= rings <= 15:
            raise ConfigError(f"{t.key('rings')}: {rings} is outside 1..15")

        def ms(name: str, default: int, low: int, high: int) -> int:
            value = t.get(name, int, default)
            if not low <= value <= high:
                raise ConfigError(f"{t.key(name)}: {value} is outside {low}..{high}")
            return value

        fallback = t.get("fallback_extension", str, "") or None
        if fallback and any(c not in "0123456789*#" for c in fallback):
            raise ConfigError(f"{t.key('fallback_extension')}: {fallback!r} is not DTMF digits")
        toneplan = t.get("toneplan", str, "") or None
        if toneplan:
            try:
                load_toneplan(toneplan)
            except (ValueError, OSError) as err:
                raise ConfigError(f"{t.key('toneplan')}: {err}") from None
        cfg = cls(
            rings=rings,
            cpc_ms=ms("cpc_ms", 250, 20, 5000),
            silence_ms=ms("silence_ms", 30000, 0, 600_000),
            abandon_ms=ms("abandon_ms", 8000, 1000, 60_000),
            min_ring_ms=ms("min_ring_ms", 200, 20, 2000),
            flash_ms=ms("flash_ms", 600, 50, 2000),
            blind_settle_ms=ms("blind_settle_ms", 500, 0, 10_000),
            dial_level_dbm0=t.number("dial_level_dbm0", -7.0, -30.0, -3.0),
            dial_on_ms=ms("dial_on_ms", 80, 40, 500),
            dial_off_ms=ms("dial_off_ms", 80, 40, 500),
            language=t.get("language", str, "en"),
            prompts=t.get("prompts", str, "") or None,
            fallback_extension=fallback,
            toneplan=toneplan,
            max_call_ms=ms("max_call_s", 3600, 10, 86_400) * 1000,
            dtmf_min_level_dbm0=t.number("dtmf_min_level_dbm0", -40.0, -50.0, -20.0),
        )
        t.sub("script")     # read by the scripted handler
        unknown = t.unknown()
        if unknown:
            raise ConfigError(f"{unknown[0]}: unknown key")
        return cfg
