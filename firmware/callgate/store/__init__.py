"""Call records and attempt counters (SQLite, WAL): the source of every report."""

from .records import (AttemptCounter, CallStore, StoreError, mask,  # noqa: F401
                      time_to_authenticate)
