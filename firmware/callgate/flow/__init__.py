"""The ID&V call flow: a pure state machine on the engine's handler contract (call.py).

policy.py  the per-service-line configuration ([[service]] / [service.NAME])
machine.py the state machine (IdvFlow: start / on_event / end)
outcome.py what the agent is shown (verified / identified / not identified, and why)
trail.py   the call record and the line's live state, as record steps (actions)

No module here does I/O, reads a clock, or imports the store, the engine or numpy.
"""

from __future__ import annotations

from .machine import IdvFlow
from .outcome import Outcome, outcome_for
from .policy import PROMPT_ROLES, Policy, load_services, policy_from_table, service_for_line

__all__ = ["IdvFlow", "Outcome", "PROMPT_ROLES", "Policy", "load_services", "outcome_for",
           "policy_from_table", "service_for_line"]
