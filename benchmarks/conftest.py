"""Shared pieces of the benchmark suites: executors that live for the whole session."""

from __future__ import annotations

import pytest

import fastdag as fd


@pytest.fixture(scope="session")
def fd_local():
    ex = fd.LocalExecutor()
    yield ex
    ex.shutdown()


@pytest.fixture(scope="session")
def fd_threads():
    ex = fd.ThreadExecutor()
    yield ex
    ex.shutdown()
