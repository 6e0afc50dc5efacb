"""cocotb tests for the stand-in AddEcho, run by test_cocotb.py through sparsemac.sim.run_cocotb."""

import random

import cocotb
from cocotb.triggers import ClockCycles

from sparsemac.sim.streams import design_params, random_pauses, start


def expected(data: bytes, add: int) -> bytes:
    return bytes((b + add) % 256 for b in data)


@cocotb.test()
async def echo_full_speed(dut):
    """Back-to-back bytes with the sink always ready: one byte per cycle, in order."""
    params = design_params()
    source, sink = await start(dut)
    data = bytes(range(256)) * 2
    source.send(data)
    await ClockCycles(dut.clk, len(data) + 3)
    assert len(sink) == len(data), f"{len(sink)} of {len(data)} bytes after {len(data) + 3} cycles"
    assert await sink.read(len(data)) == expected(data, params["add"])


@cocotb.test()
async def echo_random_stalls(dut):
    """Random gaps on valid and random back-pressure on ready; bit-exact and in order."""
    params = design_params()
    rng = random.Random(cocotb.RANDOM_SEED)
    source, sink = await start(dut)
    for source_p, sink_p in [(0.5, 0.0), (0.0, 0.7), (0.4, 0.6)]:
        source.pauses = random_pauses(rng, source_p)
        sink.pauses = random_pauses(rng, sink_p)
        data = rng.randbytes(rng.randint(1, 600))
        source.send(data)
        got = await sink.read(len(data))
        assert got == expected(data, params["add"]), f"seed {cocotb.RANDOM_SEED}"


@cocotb.test()
async def backpressure_fills_fifo(dut):
    """With the sink stalled, the FIFO fills and i.ready drops; afterwards no byte is lost."""
    params = design_params()
    source, sink = await start(dut)
    sink.pause = True
    data = bytes(range(1, 40))
    source.send(data)
    await ClockCycles(dut.clk, 50)
    assert int(dut.i__ready.value) == 0
    assert source.sent == params["depth"]  # SyncFIFOBuffered holds `depth` bytes in all
    assert len(sink) == 0
    sink.pause = False
    assert await sink.read(len(data)) == expected(data, params["add"])
    await source.wait()
