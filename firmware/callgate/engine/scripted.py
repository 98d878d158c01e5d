"""A small scripted call handler: welcome, collect digits, transfer.

Used by the tests and by `callgate run` when no service line is configured.
It shows the contract in use: prompts with barge-in, one retry when nothing
is keyed, a transfer, and what to do when the transfer fails. It
keeps the events it saw (for tests) but never logs the digits.
"""

from __future__ import annotations

from ..call import (CallerHungUp, CallInfo, Collect, Digits, Handler, HangUp, Play,
                    PromptDone, Transfer, TransferResult)
from ..config import ConfigError, Table


class ScriptedHandler(Handler):
    """welcome + enter_digits -> Collect -> transferring -> Transfer(extension)."""

    prompts_needed = ("welcome", "enter_digits", "transferring", "no_input", "agent_busy",
                      "goodbye")

    def __init__(self, extension: str = "201", mode: str = "blind", min_digits: int = 1,
                 max_digits: int = 10, first_timeout_ms: int = 5000,
                 inter_timeout_ms: int = 3000, retries: int = 1, keep: bool = True) -> None:
        self.extension = extension
        self.mode = mode
        self.collect = Collect(min_digits, max_digits, first_timeout_ms, inter_timeout_ms)
        self.retries = retries
        self.keep = keep                   # record events/calls/digits (tests); off in `run`
        self.events: list = []
        self.calls: list[CallInfo] = []
        self.digits: list[str] = []        # what each call keyed (tests only; never printed)
        self._tries = 0

    @classmethod
    def from_config(cls, table: Table) -> "ScriptedHandler":
        """[engine.script]: extension, mode, min_digits, max_digits."""
        mode = table.choice("mode", ("blind", "supervised"), "blind")
        ext = table.get("extension", str, "201")
        if not ext or any(c not in "0123456789*#" for c in ext):
            raise ConfigError(f"{table.key('extension')}: {ext!r} is not DTMF digits")
        lo = table.get("min_digits", int, 1)
        hi = table.get("max_digits", int, 10)
        if not 0 <= lo <= hi or hi < 1:
            raise ConfigError(f"{table.key('max_digits')}: need 0 <= min_digits <= max_digits")
        unknown = table.unknown()
        if unknown:
            raise ConfigError(f"{unknown[0]}: unknown key")
        return cls(ext, mode, lo, hi, keep=False)

    def start(self, call: CallInfo) -> list:
        self._tries = 0
        if self.keep:
            self.events.append(("start", call.call_id))
        return [Play("welcome"), Play("enter_digits"), self.collect]

    def on_event(self, event) -> list:
        if self.keep:
            self.events.append(event)
        if isinstance(event, Digits):
            if event.reason == "no_input" and self._tries < self.retries:
                self._tries += 1
                return [Play("no_input"), Play("enter_digits"), self.collect]
            if self.keep:
                self.digits.append(event.digits)
            return [Play("transferring", barge_in=False), Transfer(self.extension, self.mode)]
        if isinstance(event, TransferResult):
            if event.outcome in ("completed", "answered"):
                return []
            return [Play("agent_busy", barge_in=False), Play("goodbye", barge_in=False),
                    HangUp()]
        if isinstance(event, (PromptDone, CallerHungUp)):
            return []
        return []

    def end(self, call: CallInfo) -> list:
        if self.keep:
            self.calls.append(call)
        return []
