"""The engine in Verilator as a host-driver transport, and the build an image was packed for.

``SimulatorTransport.start(params)`` builds (or reuses the cached build of) the engine with
the pipe harness and starts it; :class:`sparsemac.sw.driver.Device` then talks to it exactly as
to a board. A user never writes cocotb or touches Verilator to use it.
"""

from __future__ import annotations

import os
from dataclasses import asdict, replace
from pathlib import Path

from sparsemac.hw import Engine, EngineParameters
from sparsemac.hw.command import build_info
from sparsemac.hw.core import core_timing
from sparsemac.sw.driver import LinkError
from sparsemac.sw.format import ModelImage
from sparsemac.sw.protocol import BuildInfo, Target, memory_writes

from .build import Progress, build_harness, convert
from .process import HarnessProcess, SimulatorDied, SimulatorTimeout

__all__ = ["SimulatorTransport", "parameters_for", "longest_run_bound", "engine_build_info"]


def engine_build_info(params: EngineParameters) -> BuildInfo:
    """What an engine built with ``params`` answers to INFO, without building it."""
    return build_info(params, core_timing(params))


def _power_of_two_at_least(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def parameters_for(image: ModelImage, **overrides) -> EngineParameters:
    """The smallest engine build that holds ``image`` whole, with 32-bit accumulators
    (wider if the image needs it); ``overrides`` replace any field."""
    weight_bits = image.max_value_bits
    run_bits = image.max_run_bits
    word_bits = max(8, _power_of_two_at_least(weight_bits + run_bits))
    bank_depth = max(max(layer.slots, -(-layer.physical_columns // image.lanes))
                     for layer in image.layers)
    base = EngineParameters(
        lanes=image.lanes, weight_bits=weight_bits, activation_bits=image.activation_bits,
        accumulator_bits=max(32, image.accumulator_bits()), max_run_bits=run_bits,
        word_bits=word_bits, bank_depth=bank_depth, layer_depth=len(image.layers))
    # Ask the loader how deep each memory must be, with room to spare everywhere, rather than
    # restating docs/protocol.md section 5's layout here.
    roomy = replace(base, entry_words=1 << 24, pointer_depth=1 << 24, slot_depth=1 << 24)
    extent = {Target.ENTRY: 2, Target.POINTER: 2, Target.PARAM: 1}
    for write in memory_writes(image, engine_build_info(roomy)):
        if write.target in extent:
            extent[write.target] = max(extent[write.target], write.address + len(write.items))
    fitted = replace(base, entry_words=extent[Target.ENTRY] + extent[Target.ENTRY] % 2,
                     pointer_depth=extent[Target.POINTER], slot_depth=extent[Target.PARAM])
    return replace(fitted, **overrides)


def longest_run_bound(params: EngineParameters, info: BuildInfo) -> int:
    """Cycles no RUN on this build can exceed, whatever is loaded: every layer-table row
    at its largest, every column active, every broadcast waiting out its full latency."""
    t = info.timing
    per_column = 1 + t.broadcast_latency
    lane_work = params.pointer_depth * per_column + params.max_entries
    per_layer = (t.layer_overhead + params.bank_depth + lane_work + t.mac_latency
                 + t.lanes_per_output_stage * params.bank_depth + t.output_latency)
    return params.layer_depth * per_layer


class SimulatorTransport:
    """A Verilator simulation of the engine, as a byte transport.

    Use :meth:`start`. Failures of the simulator process become
    :class:`~sparsemac.sw.driver.LinkError`, as a dead serial link would.
    """

    def __init__(self, process: HarnessProcess, params: EngineParameters):
        self._process = process
        self.params = params

    @classmethod
    def start(cls, params: EngineParameters, *, trace: str | os.PathLike | None = None,
              progress: Progress | None = None) -> "SimulatorTransport":
        """Build (or reuse) the engine for ``params`` and start it (:meth:`launch`)."""
        design = convert(Engine, asdict(params), name="sparsemac_engine")
        return cls.launch(build_harness(design, progress=progress), params, trace=trace)

    @classmethod
    def launch(cls, executable: str | os.PathLike, params: EngineParameters, *,
               trace: str | os.PathLike | None = None) -> "SimulatorTransport":
        """Start ``executable``, a pipe harness of an engine built with ``params`` (its RTL,
        or its netlist: sim/gate_level.py).

        The harness keeps clocking for as long as the longest possible RUN before it waits
        for input, so a run is never stalled waiting for bytes that will not come.
        """
        idle = longest_run_bound(params, engine_build_info(params)) + 1000
        process = HarnessProcess(executable, idle_cycles=idle,
                                 trace=None if trace is None else Path(trace))
        return cls(process, params)

    def write(self, data: bytes, timeout: float | None = 10.0) -> None:
        try:
            self._process.write(data, timeout)
        except (SimulatorDied, SimulatorTimeout) as error:
            raise LinkError(f"Simulated engine: {error}") from None

    def read(self, n: int, timeout: float | None = 10.0) -> bytes:
        try:
            return self._process.read(n, timeout)
        except (SimulatorDied, SimulatorTimeout) as error:
            raise LinkError(f"Simulated engine: {error}") from None

    def close(self) -> None:
        self._process.kill()

    @property
    def process(self) -> HarnessProcess:
        return self._process
