"""The engine's cocotb bench: a host that speaks docs/protocol.md over the byte streams, and
the models the system tests load (run inside the simulator by ``cocotb_engine_*.py``).

:class:`EngineBench` sends command frames through :class:`~sparsemac.sim.streams.ByteSource`
and parses response frames from :class:`~sparsemac.sim.streams.ByteSink`, with random gaps on
the input stream and random back-pressure on the output stream. :meth:`EngineBench.check`
runs input vectors and asserts the outputs equal ``run_golden(...).outputs`` bit for bit and
each RUN's cycle count equals ``run_golden(image, x, timing).cycles`` exactly. Every failure
message carries cocotb's seed, which ``test_engine_cocotb.py`` fixes, so it replays.
"""

from __future__ import annotations

import os
import random
import struct

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout

from sparsemac.hw.parameters import EngineParameters
from sparsemac.sim.streams import design_params, random_pauses, start
from sparsemac.sim.transport import engine_build_info, longest_run_bound
from sparsemac.sw import model_from_arrays, pack_model, quantize_model, run_golden
from sparsemac.sw.format import ModelImage
from sparsemac.sw.prune import magnitude_mask
from sparsemac.sw.protocol import (BuildInfo, Response, RunStatus, Status, load_commands,
                                   outputs_in_row_order, read_output_command, run_command,
                                   split_responses, status_command, info_command,
                                   reset_command, write_input_command)
from sparsemac.sw.quantize import QuantModel

__all__ = ["EngineBench", "pruned_model", "fit_model", "seed_note"]

#: Clock period of the bench, ns.
PERIOD_NS = 10


def seed_note() -> str:
    """Where a failure came from: the run's seed (cocotb derives each test's from it)."""
    seed = os.environ.get("COCOTB_RANDOM_SEED", "?")
    return (f"(COCOTB_RANDOM_SEED={seed}, this test's seed {cocotb.RANDOM_SEED}; replay with "
            f"run_cocotb(..., seed={seed}, testcase=...))")


class EngineBench:
    """A host for the engine under test.

    Attributes
    ----------
    params : EngineParameters of the build (from ``$SPARSEMAC_PARAMS``)
    info : what the build must answer to INFO
    rng : random.Random seeded from cocotb's seed and the test's salt
    np_rng : numpy Generator, same seed
    """

    def __init__(self, dut, source, sink, salt: int):
        self.dut = dut
        self.source, self.sink = source, sink
        self.params = EngineParameters(**design_params())
        self.info: BuildInfo = engine_build_info(self.params)
        seed = cocotb.RANDOM_SEED * 1000 + salt
        self.rng = random.Random(seed)
        self.np_rng = np.random.default_rng(seed)
        # The longest any response can take: the longest RUN of this build, plus sending
        # MAX_PAYLOAD-free frames at the slowest pause rate used here.
        self.timeout_cycles = 4 * longest_run_bound(self.params, self.info) + 200_000

    @classmethod
    async def start(cls, dut, salt: int, *, in_pause: float = 0.0, out_pause: float = 0.0,
                    clear: bool = True) -> "EngineBench":
        """Clock, reset, byte models; random gaps on ``i`` and back-pressure on ``o``.

        ``clear`` sends a soft RESET first: the tests of one module share the simulator, and
        a hard reset in the middle of a run leaves partial sums in the accumulators.
        """
        source, sink = await start(dut, period_ns=PERIOD_NS)
        bench = cls(dut, source, sink, salt)
        bench.pauses(in_pause, out_pause)
        if clear:
            await bench.expect(reset_command(), Status.OK)
        return bench

    def pauses(self, in_pause: float, out_pause: float) -> None:
        self.source.pauses = random_pauses(self.rng, in_pause) if in_pause else None
        self.sink.pauses = random_pauses(self.rng, out_pause) if out_pause else None

    # -- Frames ---------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.source.send(data)

    async def read(self, n: int, what: str = "response") -> bytes:
        try:
            return await with_timeout(self.sink.read(n), self.timeout_cycles * PERIOD_NS, "ns")
        except TimeoutError:
            raise AssertionError(f"No {what} within {self.timeout_cycles} cycles "
                                 f"({len(self.sink)} bytes waiting) {seed_note()}") from None

    async def response(self, what: str = "response") -> Response:
        header = await self.read(6, what)
        sync, status, length = struct.unpack("<BBI", header)
        assert sync == 0x5A, f"{what}: response starts with {sync:#04x} {seed_note()}"
        payload = await self.read(length, what) if length else b""
        responses, rest = split_responses(header + payload)
        assert len(responses) == 1 and not rest
        return responses[0]

    async def command(self, frame: bytes, what: str = "command") -> Response:
        self.send(frame)
        return await self.response(what)

    async def expect(self, frame: bytes, status: Status, what: str = "command",
                     payload: bytes | None = None) -> Response:
        response = await self.command(frame, what)
        assert response.status == status, \
            f"{what}: status {response.status!r}, expected {status!r} {seed_note()}"
        if payload is not None:
            assert response.payload == payload, \
                f"{what}: payload {response.payload.hex()}, expected {payload.hex()} {seed_note()}"
        return response

    async def quiet(self, cycles: int = 50) -> None:
        """Assert the engine sends nothing unasked for ``cycles`` cycles."""
        await ClockCycles(self.dut.clk, cycles)
        assert len(self.sink) == 0, \
            f"{len(self.sink)} bytes nobody asked for: {self.sink.read_nowait().hex()} {seed_note()}"

    # -- Commands -------------------------------------------------------------------------

    async def status(self) -> RunStatus:
        return RunStatus.from_bytes((await self.expect(status_command(), Status.OK, "STATUS")).payload)

    async def check_info(self) -> None:
        await self.expect(info_command(), Status.OK, "INFO", self.info.to_bytes())

    async def load(self, image: ModelImage, frames: list[bytes] | None = None) -> None:
        """Send every load frame back to back, then check each answer: OK and its item count."""
        frames = load_commands(image, self.info) if frames is None else frames
        for frame in frames:
            self.send(frame)
        for number, frame in enumerate(frames):
            response = await self.response(f"load frame {number}")
            assert response.status == Status.OK, \
                f"load frame {number}: {response.status!r} {seed_note()}"
            target = frame[6]
            size = self.info.word_bits // 8 if target == 1 else {0: 4, 2: 11, 3: 24}[target]
            assert response.payload == struct.pack("<I", (len(frame) - 12) // size)

    async def run(self, image: ModelImage, x: np.ndarray, *, first: int = 0,
                  count: int | None = None) -> tuple[np.ndarray, int]:
        """WRITE_INPUT, RUN and READ_OUTPUT, pipelined; the outputs in row order and cycles."""
        count = len(image.layers) if count is None else count
        last = image.layers[first + count - 1]
        n = self.params.lanes * last.slots
        self.send(write_input_command(np.asarray(x), image.activation_bits))
        self.send(run_command(first, count))
        self.send(read_output_command(n))
        written = await self.response("WRITE_INPUT")
        assert written.status == Status.OK, f"WRITE_INPUT: {written.status!r} {seed_note()}"
        ran = await self.response("RUN")
        assert ran.status == Status.OK, f"RUN: {ran.status!r} {seed_note()}"
        (cycles,) = struct.unpack("<I", ran.payload)
        read = await self.response("READ_OUTPUT")
        assert read.status == Status.OK, f"READ_OUTPUT: {read.status!r} {seed_note()}"
        width = image.activation_bits // 8
        assert len(read.payload) == n * width
        physical = np.frombuffer(read.payload, dtype="<i1" if width == 1 else "<i2").astype(np.int64)
        return outputs_in_row_order(physical, last), cycles

    async def check(self, image: ModelImage, xs: np.ndarray, what: str) -> None:
        """Run each vector; outputs bit-exact and cycles exact against the golden model."""
        golden = run_golden(image, xs, self.info.timing)
        for k, x in enumerate(np.atleast_2d(xs)):
            outputs, cycles = await self.run(image, x)
            bad = np.flatnonzero(outputs != golden.outputs[k])
            assert bad.size == 0, (
                f"{what}, vector {k}: {bad.size} outputs differ, first rows {bad[:8].tolist()}: "
                f"engine {outputs[bad[:8]].tolist()}, golden {golden.outputs[k][bad[:8]].tolist()} "
                f"{seed_note()}")
            assert cycles == golden.cycles[k], \
                f"{what}, vector {k}: {cycles} cycles, golden {golden.cycles[k]} {seed_note()}"
        cocotb.log.info(f"{what}: {len(np.atleast_2d(xs))} vectors exact, "
                        f"cycles {golden.cycles.tolist()}")

    async def load_and_check(self, image: ModelImage, xs: np.ndarray, what: str) -> None:
        await self.load(image)
        await self.check(image, xs, what)

    async def hard_reset(self, cycles: int = 3) -> None:
        """Pulse ``rst`` for ``cycles`` clock cycles, synchronously."""
        await RisingEdge(self.dut.clk)
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, cycles)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 1)

    # -- Inputs ---------------------------------------------------------------------------

    def inputs(self, image: ModelImage, batch: int, zero_fraction: float) -> np.ndarray:
        """Random activations over the whole range with ``zero_fraction`` zeros."""
        lo, hi = -(1 << (image.activation_bits - 1)), (1 << (image.activation_bits - 1)) - 1
        x = self.np_rng.integers(lo, hi + 1, (batch, image.input_size))
        return x * (self.np_rng.random(x.shape) >= zero_fraction)


# -- Models ------------------------------------------------------------------------------------

def pruned_model(rng: np.random.Generator, sizes: list[int], sparsities: list[float], *,
                 weight_bits: int, activation_bits: int) -> QuantModel:
    """A float MLP with real-shaped weights, magnitude-pruned per layer and quantized.

    Rows get uneven scales (a few strong units, many weak ones), so magnitude pruning leaves
    very uneven rows, as in trained layers; weights are heavy-tailed (Student t).
    """
    weights, biases = [], []
    for inp, out, sparsity in zip(sizes, sizes[1:], sparsities):
        scale = rng.lognormal(0.0, 0.8, (out, 1)) / np.sqrt(inp)
        w = rng.standard_t(3, (out, inp)) * scale
        w = np.where(magnitude_mask(w, sparsity), w, 0.0)
        weights.append(w)
        biases.append(rng.normal(0.0, 0.1, out))
    model = model_from_arrays(weights, biases)
    calibration = rng.standard_normal((256, sizes[0]))
    return quantize_model(model, calibration, weight_bits=weight_bits,
                          activation_bits=activation_bits)


def fit_model(model: QuantModel, info: BuildInfo, **pack) -> ModelImage:
    """Pack ``model`` for the build; ImageTooLargeError if it does not fit."""
    image = pack_model(model, lanes=info.lanes, max_run_bits=info.max_run_bits, **pack)
    load_commands(image, info)          # raises if it does not fit
    return image
