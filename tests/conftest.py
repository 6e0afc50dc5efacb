"""Shared fixtures."""

from __future__ import annotations

import zlib

import numpy as np
import pytest


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A generator seeded from the test's name, so a failure replays exactly."""
    seed = zlib.crc32(request.node.nodeid.encode())
    print(f"rng seed {seed} for {request.node.nodeid}")
    return np.random.default_rng(seed)
