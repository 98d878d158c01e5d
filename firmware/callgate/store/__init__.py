"""Call records and attempt counters (SQLite, WAL): the source of every report.

records.py   the call-record file: calls, their trail, the attempt counter, line status
outbox.py    the write-back outbox in the same file
recorder.py  the one writer during calls, on its own thread (the audio thread never waits)
"""

from .records import AttemptCounter, CallStore, StoreError, time_to_authenticate  # noqa: F401
