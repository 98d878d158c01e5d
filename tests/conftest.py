"""Shared test set-up: tests/ on the import path for the external generators, and the
sample customer directory and a call store for the flow's tests."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture()
def directory(tmp_path):
    """The embedded directory loaded with tests/fixtures/customers.csv (cheap scrypt)."""
    from callgate.crm.directory import Directory

    d = Directory(tmp_path / "directory.sqlite", scrypt_n=16)
    d.import_csv(FIXTURES / "customers.csv")
    yield d
    d.close()


@pytest.fixture()
def store(tmp_path):
    """A real call store in tmp_path (synchronous=NORMAL: the tests need no fsync)."""
    from callgate.store.records import CallStore

    s = CallStore(tmp_path / "calls.sqlite", synchronous="NORMAL")
    yield s
    s.close()
