"""Reliability tests: SIGKILL at random moments of ADD, and many workers
churning one network.  Both take long, so they are marked ``slow``
(``-m 'not slow'`` skips them; CI runs them)."""
from __future__ import annotations

import os
import random

import pytest


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: long-running reliability test (random SIGKILLs, churn); CI runs it")


@pytest.fixture(scope="session")
def crash_seed() -> int:
    """The seed of the crash tests' random kill moments: DOCKLINE_CRASH_SEED
    replays a run; otherwise a fresh one, printed (pytest -s shows it, and
    every failure message names it)."""
    value = os.environ.get("DOCKLINE_CRASH_SEED")
    seed = int(value) if value else random.SystemRandom().randrange(1 << 32)
    print(f"\nDOCKLINE_CRASH_SEED={seed}")
    return seed
