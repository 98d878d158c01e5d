"""Shared test set-up: tests/ on the import path for the external generators."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
