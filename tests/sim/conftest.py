"""Shared builds for the simulation tests.

Each design is converted once per parameter set and Verilated once into the shared cache
(``$SPARSEMAC_CACHE`` or ``~/.cache/sparsemac/sim``); with pytest-xdist the workers' session
fixtures race for the same file lock, one builds and the others reuse its build.
"""

import pytest

from sparsemac.sim.build import build_harness, convert

from standin import AddEcho

#: The stand-in's parameters used by most tests.
ADD_ECHO = {"add": 7, "depth": 4}


@pytest.fixture(scope="session")
def add_echo_harness():
    """Path of the pipe harness built for AddEcho(**ADD_ECHO)."""
    return build_harness(convert(AddEcho, ADD_ECHO))
