"""Stand-in for the device-state snapshot until health.py lands: nothing of its own."""

from __future__ import annotations

from typing import Callable


def health_of(app) -> Callable[[], dict]:
    recorder = app.recorder

    def snapshot() -> dict:
        return {"records": {"dropped": recorder.stats.dropped if recorder else 0}}
    return snapshot
