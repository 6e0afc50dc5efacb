"""Board tops: the engine on real FPGA boards, behind the board's USB serial bridge.

- :mod:`.serial_engine` - :class:`SerialEngine`, the engine behind a UART (what a board top
  holds and what the pty link test simulates);
- :mod:`.top` - :class:`BoardTop`, clock (PLL), reset, pins;
- :mod:`.icebreaker`, :mod:`.ulx3s` - each board's clock and defaults;
- :mod:`.build` - :func:`build`: Yosys, nextpnr and the packer through YoWASP, and a report.

``BOARDS`` maps a board's command-line name to its :class:`Board`. Importing this package
needs only Amaranth; the platforms (amaranth-boards) are imported when a top is elaborated
for a board (``pip install -e '.[fpga]'``).
"""

from __future__ import annotations

import importlib
import importlib.resources
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from ..parameters import EngineParameters

__all__ = ["Board", "BOARDS", "get_board", "board_resources"]


@dataclass(frozen=True)
class Board:
    """One FPGA board the engine is built for.

    Attributes
    ----------
    name : the command-line name (``icebreaker``)
    title : what it is, for reports
    family : ``ice40`` or ``ecp5`` (selects the PLL, the tools and the report's resources)
    device : the FPGA, for reports
    oscillator : the board's clock, Hz
    frequency : the engine clock a default build asks for, Hz (made by the PLL)
    baudrate : the default UART rate on the USB serial bridge
    params : the default engine build
    max_output_stages : the most output stages a build spreads its lanes over (each holds
        block RAM and multipliers; see :meth:`engine_parameters`)
    synth_opts : extra options of Yosys' ``synth_<family>``
    synth_script : Yosys commands run on the design before ``synth_<family>``
    route_delay : picoseconds the LUT mapper is told a route between two LUTs takes
        (``abc9 -W``; iCE40 only), or None for ``synth_<family>``'s own (250 on the iCE40;
        see :data:`ROUTE_DELAY_UP5K`)
    nextpnr_args : nextpnr's device and package options
    placement_seeds : how many nextpnr seeds a build tries until one meets the clock when
        it is not told (placement alone moves Fmax by a few percent; a seed costs about a
        minute on the UP5K and about 10 on the ECP5-85F at 16 lanes)
    """
    name: str
    title: str
    family: str
    device: str
    oscillator: float
    frequency: float
    baudrate: int
    params: EngineParameters
    max_output_stages: int | None = None
    synth_opts: tuple[str, ...] = ()
    synth_script: tuple[str, ...] = ()
    route_delay: int | None = None
    nextpnr_args: tuple[str, ...] = ()
    placement_seeds: int = 1
    module: str = field(default="", repr=False)

    def engine_parameters(self, **changes: int) -> EngineParameters:
        """The board's default engine with ``changes`` (EngineParameters fields) made.

        Unless ``lanes_per_output_stage`` is given, it is the smallest divisor of ``lanes``
        that keeps the output stages within ``max_output_stages``.
        """
        params = replace(self.params, **changes)
        if self.max_output_stages is not None and "lanes_per_output_stage" not in changes:
            lanes = params.lanes
            fewest = -(-lanes // self.max_output_stages)
            share = next(n for n in range(fewest, lanes + 1) if lanes % n == 0)
            params = replace(params, lanes_per_output_stage=share)
        return params

    def synthesis(self, top: str) -> tuple[str, tuple[str, ...]]:
        """How Yosys synthesises ``top`` after :attr:`synth_script`: the options of
        ``synth_<family>`` (which ends with ``-top top``) and the commands that follow it.

        With a :attr:`route_delay`, ``synth_ice40`` stops before its LUT mapping, the
        mapping runs with that delay, and a second ``synth_ice40`` runs the rest.
        """
        options = " ".join(self.synth_opts)
        if self.route_delay is None:
            return options, ()
        if self.family != "ice40":
            raise ValueError(f"A route delay is a setting of iCE40 builds, not of "
                             f"{self.family} ones ({self.name})")
        device = dict(zip(self.synth_opts, self.synth_opts[1:])).get("-device", "hx")
        # synth_ice40's map_luts step (Yosys 0.70) with abc9's -W set.
        mapping = ("techmap -map +/ice40/latches_map.v",
                   f"read_verilog -D ICE40_{device.upper()} -icells -lib -specify "
                   f"+/ice40/abc9_model.v",
                   f"abc9 -W {self.route_delay}",
                   "ice40_wrapcarry -unwrap",
                   "techmap -map +/ice40/ff_map.v",
                   "clean",
                   "opt_lut -tech ice40")
        return (f"{options} -run :map_luts",
                (*mapping, f"synth_ice40 {options} -top {top} -run map_cells:"))

    def platform(self) -> Any:
        """A fresh amaranth-boards platform with ``constraints/``'s extra resources."""
        platform = self._module().platform()
        platform.add_resources(board_resources(self.module))
        return platform

    def make_clock(self) -> Callable:
        """``make_clock(m, platform, frequency) -> (clk, locked)`` of this board."""
        return self._module().make_clock

    def distribute_reset(self) -> Callable:
        """``distribute_reset(m, reset) -> Signal`` of this board: ``reset`` as it reaches
        the engine's flip-flops (on a global network where the board's nextpnr does not
        put it there itself)."""
        return self._module().distribute_reset

    def _module(self):
        """This board's module (``hw/boards/<module>.py``)."""
        return importlib.import_module(f"{__name__}.{self.module}")


def board_resources(module: str) -> list:
    """The Resource list ``RESOURCES`` of ``constraints/<module>.py``.

    ``constraints/`` is installed as the package ``sparsemac.constraints`` and read with
    :mod:`importlib.resources`, so an installed wheel has it too.
    """
    source = _constraints() / f"{module}.py"
    if not source.is_file():
        raise FileNotFoundError(f"No constraints for {module!r}: expected {source}")
    namespace = {"__name__": f"sparsemac.constraints.{module}"}
    exec(compile(source.read_text(encoding="utf-8"), str(source), "exec"), namespace)
    return list(namespace["RESOURCES"])


def _constraints():
    try:
        return importlib.resources.files("sparsemac.constraints")
    except ModuleNotFoundError:
        # An editable install made before ``sparsemac.constraints`` was mapped does not know
        # the package (``pip install -e .`` again fixes it); its source tree still has it.
        return Path(__file__).resolve().parents[2] / "constraints"


#: Yosys re-encodes a state machine (one-hot) only if its state register has no initial
#: value, and Amaranth gives every FSM one. The reset state is 0, as iCE40 and ECP5
#: flip-flops power up, and the board top holds the design in reset after power-up.
ONE_HOT_STATE_MACHINES = "setattr -unset init w:*fsm_state"


#: Memories in which a read never meets a write to its address, or whose logic does not use
#: what such a read returns: the ones written over the load bus (only while the core is
#: idle), the activation banks (a layer reads one buffer and writes the other), the lanes'
#: accumulators (an update's read that meets a write of the same slot takes that write's
#: sum instead, hw/lane.py) and the UART's FIFOs (a word is read after it is written).
NO_READ_MEETS_WRITE = ("bank*", "params", "layer_table", "pointers", "even", "odd",
                       "accumulators", "rx_bytes", "tx_bytes")


#: Each lane synthesised as a module of its own (the ECP5's 16 lanes). Flattened, the
#: lanes' registers with the same inputs (their copies of the layer's configuration and of
#: the broadcast column) become one register, Yosys' ``opt_merge``, and so does the logic
#: after them: the 16-lane build's worst path at two seeds of four was a lane's pointer
#: adder that all lanes shared, 6.95 ns of routing to another lane's block RAM. Apart, the
#: lanes take 3,364 LUTs and 2,425 flip-flops more (docs/fpga.md).
SEPARATE_LANES = "setattr -mod -set keep_hierarchy 1 *.core.lane* *.core.lane*.* %d"


#: The route between two LUTs the UP5K's LUT mapping assumes, in picoseconds. Yosys' ABC
#: maps logic for the shortest path it can find, then saves LUTs wherever that does not
#: lengthen the longest path. At synth_ice40's 250 ps a route, a 32-bit carry chain counts
#: for as much as seven LUTs in a row, so the command processor's decisions came out six
#: or seven LUTs deep, where at 94% of the cells each route takes 1.8 to 4 ns. Told 3 ns,
#: ABC keeps every register within five LUTs of the last (tests/fpga/test_fpga_build.py
#: checks the default build), with as many LUTs: two lanes meet 42 MHz at six placement
#: seeds of eight, against three with synth_ice40's own mapping (docs/fpga.md).
ROUTE_DELAY_UP5K = 3000


def _collision_x_mask(memories: tuple[str, ...]) -> tuple[str, ...]:
    """Yosys commands telling it that a read of these memories in the cycle of a write to
    the same address may return anything. Without them Yosys emulates Amaranth's
    read-before-write (the old data) on block RAMs that do not declare it, with an address
    compare and a bypass register per memory, on the memory's read path."""
    return tuple(f"setparam -set COLLISION_X_MASK 1 t:$memrd_v2 r:MEMID=\\{memory} %i"
                 for memory in memories)


#: The lane's entry memories: one address, no read while written (hw/lane.py), never read
#: where the host has not written. Yosys maps a memory to the UP5K's SPRAM only without
#: initial contents, which Amaranth always gives (zeros).
SINGLE_PORT = ("even", "odd")


#: Memories too small for Yosys to put in a block RAM by its own choice. The layer table (4
#: rows of 60 bits on the UP5K) became 240 flip-flops and their write and read multiplexers,
#: each flip-flop a logic cell of its own: about 400 of the 5,280 cells. In four of the 30
#: block RAMs it takes none (docs/fpga.md).
SMALL_BLOCK_RAMS = ("layer_table",)


def _in_block_ram(memories: tuple[str, ...]) -> tuple[str, ...]:
    """Yosys commands mapping these memories to block RAM whatever their size."""
    return tuple(f'setattr -set ram_style "block" m:{memory}' for memory in memories)


def _no_initial_contents(memories: tuple[str, ...]) -> tuple[str, ...]:
    """Yosys commands removing these memories' initial contents."""
    return tuple(f"delete t:$meminit_v2 r:MEMID=\\{memory} %i" for memory in memories)


BOARDS: dict[str, Board] = {
    "icebreaker": Board(
        name="icebreaker", title="iCEBreaker", family="ice40", device="iCE40UP5K-SG48",
        # 42 MHz (PLL 12 x 56 / 16) and 3 Mbaud (divisor 14, exact; the FT2232H makes it
        # exactly too).
        oscillator=12e6, frequency=42e6, baudrate=3_000_000,
        # Two compact lanes, the most the UP5K holds: a lane takes 2 of the 8 SB_MAC16 (its
        # product and its columns' first bit positions), two of the 4 SPRAMs (its 32,768
        # entry words), 9 of the 30 block RAMs (pointers, accumulators, FIFO) and about 900
        # of the 5,280 logic cells. Two lanes take 4,944 cells, every SPRAM and block RAM and
        # 6 SB_MAC16s, and meet 42 MHz at six placement seeds of eight since the LUT mapping
        # knows the UP5K's routes (ROUTE_DELAY_UP5K; docs/fpga.md).
        params=EngineParameters(lanes=2, entry_words=32768, pointer_depth=256, slot_depth=64,
                                bank_depth=32, layer_depth=4, fifo_depth=4, compact=True),
        # Its 5,280 logic cells and 8 multipliers hold one output stage, not one per lane.
        max_output_stages=1,
        synth_opts=("-dsp", "-spram", "-device", "u"), route_delay=ROUTE_DELAY_UP5K,
        nextpnr_args=("--up5k", "--package", "sg48"),
        placement_seeds=4,
        # See ONE_HOT_STATE_MACHINES, NO_READ_MEETS_WRITE, SINGLE_PORT and SMALL_BLOCK_RAMS.
        synth_script=(ONE_HOT_STATE_MACHINES,
                      *_collision_x_mask(NO_READ_MEETS_WRITE),
                      *_no_initial_contents(SINGLE_PORT),
                      *_in_block_ram(SMALL_BLOCK_RAMS)),
        module="icebreaker"),
    "ulx3s-85f": Board(
        name="ulx3s-85f", title="ULX3S-85F", family="ecp5", device="LFE5U-85F-6BG381C",
        oscillator=25e6, frequency=100e6, baudrate=3_000_000,
        params=EngineParameters(lanes=16, entry_words=1024, pointer_depth=512, slot_depth=64,
                                bank_depth=64, layer_depth=8, fifo_depth=4),
        # A stage takes 2 of the 208 block RAMs (its rows' 54-bit parameters) and 2 of the
        # 156 multipliers, a lane 5 block RAMs: one stage a lane up to 16 lanes; 32 lanes
        # share a stage by two and take 194 block RAMs (226 with a stage each).
        max_output_stages=16,
        # One-hot state machines as on the iCEBreaker: with binary-coded states the command
        # processor's decoded state was the 16-lane build's critical path.
        synth_script=(ONE_HOT_STATE_MACHINES, SEPARATE_LANES,
                      *_collision_x_mask(NO_READ_MEETS_WRITE)),
        # The placer fills a region to 70% of its cells, not 90%: set while about half the
        # seeds stuck in routing at either density, before the reset went onto a global
        # network (ulx3s.distribute_reset), which made every seed route; the four seeds
        # measured since are at 70% (docs/fpga.md).
        nextpnr_args=("--85k", "--package", "CABGA381", "--speed", "6",
                      "--placer-heap-beta", "0.7"),
        placement_seeds=4, module="ulx3s"),
}


def get_board(name: str) -> Board:
    try:
        return BOARDS[name]
    except KeyError:
        raise ValueError(f"Unknown board {name!r}; known: {', '.join(BOARDS)}") from None
