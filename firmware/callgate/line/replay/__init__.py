"""The `replay` backend: a recorded call played back as a line (line.py), with the
sidecar of line events and controls that travels with the WAV (sidecar.py)."""

from .line import ReplayLine
from .sidecar import (CAPABILITY_KEYS, CONTROLS, EVENT_TYPES, SIDECAR_SUFFIX, SIDECAR_VERSION,
                      Control, Sidecar, event_entry, load_sidecar, parse_sidecar, seconds,
                      sidecar_object, sidecar_path)

__all__ = ["CAPABILITY_KEYS", "CONTROLS", "EVENT_TYPES", "SIDECAR_SUFFIX", "SIDECAR_VERSION",
           "Control", "ReplayLine", "Sidecar", "event_entry", "load_sidecar", "parse_sidecar",
           "seconds", "sidecar_object", "sidecar_path"]
