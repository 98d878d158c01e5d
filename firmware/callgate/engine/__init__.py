"""The real-time engine: one loop per line, running calls for a call handler.

The contract with the handler (actions, events, CallInfo, the Handler base)
is callgate.call; loop.py is the frame loop, runner.py carries out the
handler's actions, and the other modules are their parts, one concept each.
"""

from .config import EngineConfig
from .loop import Engine
from .prompts import PromptSet
from .scripted import ScriptedHandler

__all__ = ["Engine", "EngineConfig", "PromptSet", "ScriptedHandler"]
