"""What every request handler of the app shares: settings, users, the store reader, the clock."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable

from flask import current_app

from .limits import SigninLimits
from .reader import StoreReader
from .settings import WebSettings
from .users import Users


@dataclass
class WebState:
    settings: WebSettings
    users: Users
    reader: StoreReader
    clock: Callable[[], float]     # wall time for sessions and sign-in limits (tests inject one)
    limits: SigninLimits
    # set when the server stops, so open event streams end at once instead of at stream_s
    stopping: threading.Event = field(default_factory=threading.Event)
    streams: threading.BoundedSemaphore | None = None    # places for open event streams

    def __post_init__(self) -> None:
        if self.streams is None:
            self.streams = threading.BoundedSemaphore(self.settings.streams)


def state() -> WebState:
    return current_app.extensions["callgate"]
