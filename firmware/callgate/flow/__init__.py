"""The ID&V call flow (issue 4): a pure state machine on the engine's handler contract.

policy.py  the per-service-line configuration ([[service]] / [service.NAME])
machine.py the state machine (IdvFlow: start / on_event / end)
outcome.py what the agent is shown (verified / identified / not identified, and why)
record.py  the call record, written step by step through store.CallStore
"""

from __future__ import annotations

from .machine import IdvFlow
from .outcome import Outcome, outcome_for
from .policy import PROMPT_ROLES, Policy, load_services, policy_from_table, service_for_line
from .record import CallRecord

__all__ = ["CallRecord", "IdvFlow", "Outcome", "PROMPT_ROLES", "Policy", "load_services",
           "outcome_for", "policy_from_table", "service_for_line"]
