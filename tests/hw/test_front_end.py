"""The front end alone: nonzeros in column order, one per cycle, under back-pressure."""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from sparsemac.hw.front_end import FrontEnd
from sparsemac.hw.parameters import EngineParameters


def run_front_end(params, x, ready_probability, seed):
    """Scan ``x`` with random back-pressure; return (transfers, cycle of each, done cycle)."""
    dut = FrontEnd(params)
    lanes = params.lanes
    groups = -(-len(x) // lanes)
    padded = np.zeros(params.bank_depth * lanes, dtype=np.int64)
    padded[:len(x)] = x
    padded[len(x):] = 5                        # beyond the layer's columns: must be ignored
    banks = padded.reshape(-1, lanes)
    rng = random.Random(seed)
    seen, when, state = [], [], {}

    async def banks_bench(ctx):
        """The activation banks' synchronous read port."""
        held = [0] * lanes
        while True:
            for lane in range(lanes):
                ctx.set(dut.rd_data[lane], held[lane])
            _, _, en, addr = await ctx.tick().sample(dut.rd_en, dut.rd_addr)
            if en:
                held = [int(v) for v in banks[addr]] if addr < len(banks) else [0] * lanes

    async def consumer(ctx):
        cycle, offered = 0, None
        while True:
            ready = rng.random() < ready_probability
            ctx.set(dut.o.ready, ready)
            _, _, valid, column, value, done = await ctx.tick().sample(
                dut.o.valid, dut.o.payload.column, dut.o.payload.value, dut.done)
            if offered is not None:
                assert valid and (column, value) == offered, \
                    f"seed {seed}: payload changed or valid fell before the transfer"
            offered = None
            if valid and ready:
                seen.append((column, value))
                when.append(cycle)
            elif valid:
                offered = (column, value)
            if done and "done" not in state:
                state["done"] = cycle
            cycle += 1

    async def driver(ctx):
        ctx.set(dut.columns, len(x))
        ctx.set(dut.groups, groups)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for _ in range(20 * len(x) + 50):
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(banks_bench, background=True)
    sim.add_testbench(consumer, background=True)
    sim.add_testbench(driver)
    sim.run()
    return seen, when, state.get("done")


@pytest.mark.parametrize("seed", range(6))
def test_nonzeros_in_order_under_back_pressure(seed):
    rng = np.random.default_rng(seed)
    lanes = int(rng.integers(1, 6))
    params = EngineParameters(lanes=lanes, bank_depth=16)
    x = rng.integers(-128, 128, size=int(rng.integers(1, lanes * 10)))
    x[rng.random(x.size) < 0.6] = 0
    seen, _, done = run_front_end(params, x, ready_probability=0.5, seed=seed)
    expect = [(c, int(x[c])) for c in np.flatnonzero(x)]
    assert seen == expect, f"seed {seed}"
    assert done is not None, f"seed {seed}: the front end never finished"


@pytest.mark.parametrize("seed", range(4))
def test_pace_without_back_pressure(seed):
    """Always ready: one nonzero per cycle, one cycle per group with none (docs/engine.md)."""
    rng = np.random.default_rng(50 + seed)
    lanes = int(rng.integers(1, 5))
    params = EngineParameters(lanes=lanes, bank_depth=16)
    x = rng.integers(-128, 128, size=int(rng.integers(1, lanes * 10)))
    x[rng.random(x.size) < 0.7] = 0
    _, when, done = run_front_end(params, x, ready_probability=1.0, seed=seed)
    # The driver's start is cycle -3 of the scan; the consumer counts from the start cycle.
    groups = -(-x.size // lanes)
    time, previous, expect = 0, None, []
    for column in np.flatnonzero(x):
        group = column // lanes
        time = group if previous is None else time + 1 + max(0, group - previous - 1)
        expect.append(time)
        previous = group
    scan_done = groups if previous is None else time + 1 + (groups - 1 - previous)
    setup = 3  # FrontEnd.setup_cycles
    assert [w - setup for w in when] == expect, f"seed {seed}"
    assert done - setup == scan_done, f"seed {seed}"


@pytest.mark.parametrize("lanes, columns", [(32, 1), (32, 31), (32, 32), (32, 33), (32, 95),
                                            (8, 8), (8, 17), (6, 11), (7, 7)])
def test_layer_ends_inside_a_group(lanes, columns):
    """Every column nonzero and the rest of the last group (and the next) nonzero too: only
    the layer's columns come out, whichever lane the layer ends in."""
    params = EngineParameters(lanes=lanes, bank_depth=16)
    x = np.arange(1, columns + 1) % 127 + 1
    seen, _, done = run_front_end(params, x, ready_probability=0.7, seed=columns)
    assert seen == [(c, int(x[c])) for c in range(columns)]
    assert done is not None
