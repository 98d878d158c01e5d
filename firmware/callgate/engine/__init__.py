"""The real-time engine: one loop per line, running calls for a call handler.

actions.py is the contract with the handler (issue 4's flow plugs in there);
loop.py is the engine; the other modules are its parts, one concept each.
"""

from .actions import (Action, CallerHungUp, CallInfo, Collect, Digits, Handler, HandlerEvent,
                      HangUp, Play, PromptDone, Transfer, TransferResult, Work, WorkDone)
from .loop import Engine, EngineConfig
from .prompts import PromptSet
from .scripted import ScriptedHandler

__all__ = ["Action", "CallInfo", "CallerHungUp", "Collect", "Digits", "Engine", "EngineConfig",
           "Handler", "HandlerEvent", "HangUp", "Play", "PromptDone", "PromptSet",
           "ScriptedHandler", "Transfer", "TransferResult", "Work", "WorkDone"]
