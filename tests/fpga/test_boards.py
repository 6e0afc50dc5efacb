"""Board tops without the tools: PLL settings, pin constraints, the report reader, the CLI."""

import importlib.resources
import json
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from sparsemac.hw import EngineParameters
from sparsemac.hw.boards import BOARDS, ROUTE_DELAY_UP5K, board_resources, get_board
from sparsemac.hw.pll import ecp5_pll, ice40_pll
from sparsemac.sw.fpga_report import (critical_path_from_log, critical_path_from_report,
                                      fmax_from_log, read_nextpnr_report, read_yosys_stat)

pytest.importorskip("amaranth_boards")


@pytest.mark.parametrize("target", [24e6, 36e6, 42e6, 48e6, 60e6])
def test_ice40_pll_settings(target):
    pll = ice40_pll(12e6, target)
    assert pll.frequency == target                      # all exact from 12 MHz
    assert 10e6 <= pll.f_pfd <= 133e6 and 533e6 <= pll.f_vco <= 1066e6
    assert pll.frequency == 12e6 * (pll.divf + 1) / ((pll.divr + 1) * 2 ** pll.divq)


def test_ice40_pll_matches_icepll():
    # icepll -i 12 -o 48: DIVR 0, DIVF 63, DIVQ 4, FILTER_RANGE 1
    pll = ice40_pll(12e6, 48e6)
    assert (pll.divr, pll.divf, pll.divq, pll.filter_range) == (0, 63, 4, 1)


@pytest.mark.parametrize("target", [50e6, 75e6, 100e6, 125e6])
def test_ecp5_pll_settings(target):
    pll = ecp5_pll(25e6, target)
    assert pll.frequency == target
    assert 400e6 <= pll.f_vco <= 800e6


def test_pll_refuses_what_it_cannot_make():
    with pytest.raises(ValueError, match="16 to 275 MHz"):
        ice40_pll(12e6, 300e6)
    with pytest.raises(ValueError, match="cannot make"):
        ice40_pll(5e6, 48e6)                            # no divider gives a 10 MHz PFD
    with pytest.raises(ValueError, match="3.125 to 400 MHz"):
        ecp5_pll(25e6, 500e6)


def test_board_registry():
    assert set(BOARDS) == {"icebreaker", "ulx3s-85f"}
    with pytest.raises(ValueError, match="Unknown board"):
        get_board("de10-nano")
    for name in BOARDS:
        assert board_resources(BOARDS[name].module)


def test_board_engine_parameters():
    # The UP5K shares one output stage among however many lanes it is built with; the ECP5
    # gives each lane its own up to 16 stages, then shares them as little as a divisor of
    # the lanes allows, unless told otherwise.
    icebreaker, ulx3s = get_board("icebreaker"), get_board("ulx3s-85f")
    assert icebreaker.engine_parameters(lanes=4).lanes_per_output_stage == 4
    assert icebreaker.engine_parameters(lanes=4, lanes_per_output_stage=2).output_stages == 2
    assert ulx3s.engine_parameters().output_stages == ulx3s.params.lanes == 16
    for lanes, share in ((1, 1), (8, 1), (16, 1), (17, 17), (24, 2), (31, 31), (32, 2)):
        assert ulx3s.engine_parameters(lanes=lanes).lanes_per_output_stage == share, lanes
    assert ulx3s.engine_parameters(lanes=32, lanes_per_output_stage=1).output_stages == 32


def test_synthesis_commands():
    # The iCEBreaker's LUT mapping runs on its own, told the UP5K's route delay and device;
    # the ULX3S keeps synth_ecp5 whole, and a route delay is refused outside the iCE40.
    icebreaker, ulx3s = get_board("icebreaker"), get_board("ulx3s-85f")
    options, after = icebreaker.synthesis("top")
    assert options == "-dsp -spram -device u -run :map_luts"
    assert f"abc9 -W {ROUTE_DELAY_UP5K}" in after and any("-D ICE40_U " in c for c in after)
    assert after[-1] == "synth_ice40 -dsp -spram -device u -top top -run map_cells:"
    assert ulx3s.synthesis("top") == (" ".join(ulx3s.synth_opts), ())
    with pytest.raises(ValueError, match="setting of iCE40 builds, not of ecp5 ones"):
        replace(ulx3s, route_delay=1000).synthesis("top")
    assert replace(icebreaker, route_delay=None).synthesis("top") == ("-dsp -spram -device u", ())


def test_constraints_are_package_data():
    # A wheel carries constraints/ as the package sparsemac.constraints; it is read from the
    # installed package, not from the source tree.
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    setuptools = pyproject["tool"]["setuptools"]
    assert setuptools["package-dir"]["sparsemac.constraints"] == "constraints"
    assert "sparsemac.constraints" in setuptools["packages"]
    try:
        installed = importlib.resources.files("sparsemac.constraints")
    except ModuleNotFoundError:
        pytest.fail("sparsemac.constraints is not installed: an editable install made before "
                    "pyproject.toml mapped it needs 'pip install -e .' again")
    for name in BOARDS:
        assert (installed / f"{BOARDS[name].module}.py").is_file()
    assert [r.name for r in board_resources("icebreaker")] == ["uart", "debug"]
    with pytest.raises(FileNotFoundError, match="No constraints for 'de10'"):
        board_resources("de10")


@pytest.mark.parametrize("name, clock, pins", [
    ("icebreaker", "set_frequency clk12_0__io 12.0", ["set_io uart_0__rx__io 6", "set_io uart_0__tx__io 9",
                                              "set_io clk12_0__io 35"]),
    ("ulx3s-85f", 'FREQUENCY PORT "clk25_0__io" 25000000.0 HZ;', ['LOCATE COMP "uart_0__rx__io" SITE "M1";',
                                                         'LOCATE COMP "uart_0__tx__io" SITE "L4";']),
])
def test_top_constraints(tmp_path, name, clock, pins):
    """The board top elaborates for its platform with a PLL to the board's clock (nextpnr
    derives the engine clock's constraint from the oscillator's) and the UART on the USB
    bridge's pins."""
    from sparsemac.hw.boards.top import BoardTop

    board = get_board(name)
    small = EngineParameters(lanes=1, entry_words=16, pointer_depth=8, slot_depth=8,
                             bank_depth=8, layer_depth=1)
    top = BoardTop(board, small)
    board.platform().prepare(top, name="sparsemac").extract(tmp_path)
    constraints = (tmp_path / ("sparsemac.pcf" if board.family == "ice40"
                               else "sparsemac.lpf")).read_text()
    assert clock in constraints
    for pin in pins:
        assert pin in constraints
    rtlil = (tmp_path / "sparsemac.il").read_text()
    assert ("SB_PLL40_PAD" if board.family == "ice40" else "EHXPLLL") in rtlil
    # nextpnr-ecp5 promotes only clocks to global networks: the top puts the reset on one.
    assert ("DCCA" in rtlil) == (board.family == "ecp5")
    assert top.divisor == round(top.frequency / top.baudrate)


def test_top_refuses_a_baud_rate_the_clock_cannot_make():
    from sparsemac.hw.boards.top import BoardTop

    with pytest.raises(ValueError, match="off at"):
        BoardTop(get_board("ulx3s-85f"), frequency=25e6, baudrate=3_000_000)   # 8.33 cycles


def test_report_readers(tmp_path):
    (tmp_path / "report.json").write_text(json.dumps({
        "utilization": {"ICESTORM_LC": {"used": 4000, "available": 5280},
                        "ICESTORM_DSP": {"used": 4, "available": 8},
                        "ICESTORM_RAM": {"used": 13, "available": 30},
                        "ICESTORM_SPRAM": {"used": 0, "available": 4}},
        "fmax": {"clk": {"achieved": 45.5, "constraint": 42.0}},
        "critical_paths": [{"from": "posedge clk", "to": "posedge clk", "path": [
            {"type": "clk-to-q", "delay": 5.83, "from": {"cell": "lane.ptr", "port": "DOB1"},
             "to": {"cell": "lane.ptr", "port": "DOB1"}},
            {"type": "routing", "delay": 1.7, "net": "lane.ptr_DOB1[2]",
             "from": {"cell": "lane.ptr", "port": "DOB1"}, "to": {"cell": "lut", "port": "D"}},
            {"type": "setup", "delay": 0.1, "from": {"cell": "ff", "port": "DI"},
             "to": {"cell": "ff", "port": "DI"}}]}],
    }))
    path = critical_path_from_report(tmp_path / "report.json")
    assert [line.split()[0] for line in path] == ["clk-to-q", "routing", "setup"]
    assert "lane.ptr.DOB1" in path[0] and "lane.ptr_DOB1[2]" in path[1] and "7.63" in path[2]
    resources, clocks = read_nextpnr_report(tmp_path / "report.json", "ice40")
    assert {r.name: (r.used, r.available) for r in resources} == {
        "LC": (4000, 5280), "DSP": (4, 8), "BRAM": (13, 30), "SPRAM": (0, 4)}
    assert clocks[0].name == "clk" and clocks[0].met
    (tmp_path / "stat.json").write_text(json.dumps({"design": {"num_cells_by_type": {
        "SB_LUT4": 10, "SB_DFFE": 3, "SB_DFFSR": 2, "SB_MAC16": 1, "SB_RAM40_4K": 2}}}))
    counts = {r.name: r.used for r in read_yosys_stat(tmp_path / "stat.json", "ice40")}
    assert counts["LUT"] == 10 and counts["FF"] == 5 and counts["DSP"] == 1 and counts["BRAM"] == 2
    (tmp_path / "nextpnr.log").write_text(
        "Info: Max frequency for clock 'clk': 14.40 MHz (FAIL at 42.00 MHz)\n"
        "Info: Critical path report for clock 'clk' (posedge -> posedge):\n"
        "Info:       type curr  total name\n"
        "Info:   clk-to-q  1.39  1.39 Source a.q\n"
        "Info:    routing  1.76  3.15 Net a.item[48] (15,4) -> (14,4)\n"
        "Info:                          Defined in:\n"
        "Info:                               /x/hw/command.py:169\n"
        "Info:      setup  0.10  3.25 Sink b.d\n"
        "\n"
        "ERROR: Max frequency for clock 'clk': 15.69 MHz (FAIL at 42.00 MHz)\n")
    clocks = fmax_from_log(tmp_path / "nextpnr.log")
    assert [(c.achieved_mhz, c.constraint_mhz, c.met) for c in clocks] == [(15.69, 42.0, False)]
    path = critical_path_from_log(tmp_path / "nextpnr.log")
    assert len(path) == 3 and "command.py:169" in path[1] and path[2].startswith("setup")


def test_cli_build_options():
    from sparsemac.cli import build_parser

    args = build_parser().parse_args(["build", "--board", "icebreaker", "--lanes", "1",
                                      "--seed", "3", "--json", "--stage", "synth"])
    assert (args.board, args.lanes, args.seed, args.json, args.stage, args.program) == \
        ("icebreaker", 1, 3, True, "synth", False)
    assert args.seeds is None               # the board's placement_seeds
    assert build_parser().parse_args(["build", "--board", "ulx3s-85f", "--seeds", "3"]).seeds == 3
    assert get_board("icebreaker").placement_seeds == 4
    assert get_board("ulx3s-85f").placement_seeds == 4
    with pytest.raises(SystemExit):
        build_parser().parse_args(["build", "--board", "arty"])


@pytest.mark.parametrize("failing, seeds, met_at", [
    ({1}, 4, 2),            # the second seed meets the clock: its report is the build's
    ({1, 2, 3}, 4, 4),
    ({1, 2, 3}, None, 4),   # not told: the iCEBreaker's placement_seeds, 4
    ({1, 2}, 2, None),      # no seed tried meets it: one error naming every seed's Fmax
    (set(), 1, 1),
])
def test_build_tries_seeds_until_one_meets_the_clock(tmp_path, monkeypatch, failing, seeds,
                                                     met_at):
    """The seed loop of ``build``, with Yosys and nextpnr replaced by stand-ins that write
    what the tools would: a log ending in a FAIL for the seeds in ``failing`` (nextpnr
    exits non-zero after writing its report), a report with the clock met for the others."""
    from sparsemac.hw.boards import build as build_module
    from sparsemac.hw.boards.build import NAME, TimingError, build

    ran = []
    messages = []

    def fake_run(step, command, directory, log, progress):
        if step == "yosys":
            (directory / f"{NAME}.json").write_text("{}")
            (directory / f"{NAME}.stat.json").write_text(json.dumps({"design": {
                "num_cells_by_type": {"SB_LUT4": 1000, "SB_DFF": 500, "SB_MAC16": 1}}}))
            return 0.0
        assert step == "nextpnr"
        seed = int(command[command.index("--seed") + 1])
        ran.append(seed)
        achieved = 30.0 + seed if seed in failing else 41.0 + seed
        (directory / "nextpnr.log").write_text(
            f"Info: seed {seed}\n"
            f"{'ERROR' if seed in failing else 'Info'}: Max frequency for clock 'clk': "
            f"{achieved:.2f} MHz ({'FAIL' if seed in failing else 'PASS'} at 40.50 MHz)\n")
        (directory / "nextpnr-report.json").write_text(json.dumps({
            "utilization": {"ICESTORM_DSP": {"used": 1, "available": 8}},
            "fmax": {"clk": {"achieved": achieved, "constraint": 40.5}}}))
        if seed in failing:
            raise build_module.FPGABuildError("nextpnr failed")
        return 1.0

    monkeypatch.setattr(build_module, "_run", fake_run)
    small = EngineParameters(lanes=1, entry_words=64, pointer_depth=32, slot_depth=16,
                             bank_depth=16, layer_depth=2, fifo_depth=2)
    directory = tmp_path / "build"

    def attempt():
        return build("icebreaker", small, directory=directory, stage="pnr", seed=1,
                     seeds=seeds, progress=lambda step, line: messages.append((step, line)))

    if met_at is None:
        with pytest.raises(TimingError, match=r"any of nextpnr seeds 1 to 2 \(31\.00, "
                                              r"32\.00 MHz\)") as error:
            attempt()
        assert error.value.report.clocks[0].achieved_mhz == 32.0
        # The placed counts with the device's totals, and Yosys' LUTs, which nextpnr has not.
        resources = {r.name: (r.used, r.available) for r in error.value.report.resources}
        assert resources["DSP"] == (1, 8) and resources["LUT"] == (1000, None)
        assert ran == [1, 2]
        recorded = json.loads((directory / "build.json").read_text())
        assert [miss["seed"] for miss in recorded["missed_seeds"]] == [1, 2]
        return
    result = attempt()
    assert ran == list(range(1, met_at + 1))
    assert result.seed == met_at and result.report.timing_met
    assert result.report.clocks[0].achieved_mhz == 41.0 + met_at
    assert [miss["seed"] for miss in result.missed] == sorted(failing)
    assert [miss["clocks"][0]["achieved_mhz"] for miss in result.missed] == \
        [30.0 + seed for seed in sorted(failing)]
    for seed in failing:        # each missed seed's log kept beside the one that met
        assert f"seed {seed}\n" in (directory / f"nextpnr-seed{seed}.log").read_text()
    assert "seed {met_at}\n".format(met_at=met_at) in (directory / "nextpnr.log").read_text()
    retries = [line for step, line in messages if step == "retry"]
    assert len(retries) == len(failing)
    recorded = json.loads((directory / "build.json").read_text())
    assert recorded["seed"] == met_at and len(recorded["missed_seeds"]) == len(failing)


def test_build_refuses_no_seeds(tmp_path):
    from sparsemac.hw.boards.build import build

    with pytest.raises(ValueError, match="at least 1, not 0"):
        build("icebreaker", directory=tmp_path, seeds=0)
