"""Reports: figures over the call records, read-only (issue 5).

A reading layer over the store: it opens calls.sqlite read-only so a report
never blocks the engine, and it never writes.
"""

from .figures import Report, ReportError, compute_report

__all__ = ["Report", "ReportError", "compute_report"]
