"""Fixtures for cluster mode: real etcd in the test's sandbox."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from etcdrun import Etcd


@pytest.fixture
def etcd1(sandbox):
    etcd = Etcd(sandbox, 1)
    try:
        yield etcd.start()
    finally:
        etcd.stop()


@pytest.fixture
def etcd3(sandbox):
    etcd = Etcd(sandbox, 3)
    try:
        yield etcd.start()
    finally:
        etcd.stop()
