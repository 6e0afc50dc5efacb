"""System tests of the engine: cocotb + Verilator, bit- and cycle-exact against the golden model.

Four engine builds (:data:`BUILDS`) span the lane counts, weight, activation, accumulator and
run widths and the entry-word widths. Each is Verilated once into the shared cache by the
first ``run_cocotb`` that needs it (under ``-n 2`` the other worker waits on the build's lock
and reuses it), and every cocotb test module below runs on it. The cocotb side is
``cocotb_engine_*.py``; it reads the build's parameters through ``$SPARSEMAC_PARAMS`` and ends
every failure message with the run's seed, which :data:`SEED` fixes here so a failure replays
exactly.

Each build's memories are sized so that ``layer_depth`` layers of ``N x bank_depth`` rows and
columns fill the pointer and row-parameter memories exactly (docs/protocol.md section 5); the
entry memory is filled exactly by the largest-model test.
"""

from __future__ import annotations

from dataclasses import asdict

import pytest

from sparsemac.hw.engine import Engine
from sparsemac.hw.parameters import EngineParameters
from sparsemac.sim.testbench import run_cocotb


def _build(lanes: int, bank_depth: int, layer_depth: int, **fields) -> EngineParameters:
    side = lanes * bank_depth
    return EngineParameters(lanes=lanes, bank_depth=bank_depth, layer_depth=layer_depth,
                            pointer_depth=layer_depth * (side + 1),
                            slot_depth=layer_depth * bank_depth, **fields)


#: The engine builds under test. Entry widths (value + run bits) against word widths:
#: 7 of 8, 12 of 16, 18 of 32 and 23 of 64, so entries straddle words in every build. Output
#: stages: one for all 4 lanes, one per 2 of 8 lanes, one per lane of 16. Lanes: compact in
#: the small builds (as on the UP5K), standard in the large ones (as on the ECP5).
BUILDS = {
    "n1w4a8": _build(1, 48, 2, weight_bits=4, activation_bits=8, accumulator_bits=20,
                     max_run_bits=3, word_bits=8, entry_words=600, fifo_depth=1,
                     compact=True),
    "n4w8a16": _build(4, 32, 3, weight_bits=8, activation_bits=16, accumulator_bits=40,
                      max_run_bits=4, word_bits=16, entry_words=1200, fifo_depth=4,
                      lanes_per_output_stage=4, compact=True),
    "n8w12a8": _build(8, 16, 3, weight_bits=12, activation_bits=8, accumulator_bits=32,
                      max_run_bits=6, word_bits=32, entry_words=400, fifo_depth=2,
                      lanes_per_output_stage=2),
    "n16w16a16": _build(16, 8, 2, weight_bits=16, activation_bits=16, accumulator_bits=47,
                        max_run_bits=7, word_bits=64, entry_words=128, fifo_depth=3),
}

#: cocotb's random seed for every run; the cocotb modules print it with each failure.
SEED = 20261122

#: The cocotb test modules, in two groups per build so the two xdist workers share the work.
#: Each group is one simulator run (``run_cocotb`` converts the design on every call, 2-10 s
#: for these builds, so a call per module would cost more than it reports).
GROUPS = {
    "models": ["cocotb_engine_numerics", "cocotb_engine_edges"],
    "protocol": ["cocotb_engine_protocol", "cocotb_engine_reset"],
}


def engine_params(name: str) -> dict:
    """The build's parameters as the JSON dict that ``convert`` keys and cocotb reads."""
    return asdict(BUILDS[name])


@pytest.mark.slow
@pytest.mark.parametrize("group", sorted(GROUPS))
@pytest.mark.parametrize("build", sorted(BUILDS))
def test_engine(build, group, tmp_path):
    """Convert and Verilate the build once (cached and locked, shared with every other test
    and worker), then run the group's cocotb modules on it."""
    params = engine_params(build)
    print(f"cocotb seed {SEED} for {GROUPS[group]} on {build}: {params}")
    run_cocotb(Engine, params, GROUPS[group], test_dir=tmp_path, seed=SEED)
