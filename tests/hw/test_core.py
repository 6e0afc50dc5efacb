"""The core against the golden model: outputs and cycle counts, layer by layer."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from sparsemac.hw.core import Core, LoadTarget
from sparsemac.hw.parameters import EngineParameters
from sparsemac.sw.golden import run_golden

from hw_helpers import core_writes, pack, random_input, random_layer


async def load_core(ctx, core, writes):
    for target, lane, address, data in writes:
        ctx.set(core.load.en, 1)
        ctx.set(core.load.target, target)
        ctx.set(core.load.lane, lane)
        ctx.set(core.load.addr, address)
        ctx.set(core.load.data, data)
        await ctx.tick()
    ctx.set(core.load.en, 0)


async def write_input(ctx, core, params, x):
    mask = (1 << params.activation_bits) - 1
    for column, value in enumerate(x):
        ctx.set(core.load.en, 1)
        ctx.set(core.load.target, LoadTarget.INPUT)
        ctx.set(core.load.lane, column % params.lanes)
        ctx.set(core.load.addr, column // params.lanes)
        ctx.set(core.load.data, int(value) & mask)
        await ctx.tick()
    ctx.set(core.load.en, 0)


async def run_core(ctx, core, first, count, limit=100_000):
    ctx.set(core.first_layer, first)
    ctx.set(core.layer_count, count)
    ctx.set(core.start, 1)
    await ctx.tick()
    ctx.set(core.start, 0)
    for _ in range(limit):
        if not ctx.get(core.busy):
            return ctx.get(core.cycles)
        await ctx.tick()
    raise AssertionError("The core did not finish")


async def read_outputs(ctx, core, params, count):
    values = []
    for position in range(count):
        ctx.set(core.act_en, 1)
        ctx.set(core.act_lane, position % params.lanes)
        ctx.set(core.act_buffer, ctx.get(core.result_buffer))
        ctx.set(core.act_addr, position // params.lanes)
        await ctx.tick()
        values.append(ctx.get(core.act_data))
    ctx.set(core.act_en, 0)
    return np.array(values, dtype=np.int64)


def simulate_model(params, image, inputs):
    """Load ``image`` into a Core, run each input, return (outputs, cycles) per input."""
    core = Core(params)
    timing = core.timing
    writes = core_writes(image, params, timing)
    last = image.layers[-1]
    results = []

    async def bench(ctx):
        await load_core(ctx, core, writes)
        for x in inputs:
            await write_input(ctx, core, params, x)
            cycles = await run_core(ctx, core, 0, len(image.layers))
            physical = await read_outputs(ctx, core, params, last.lanes * last.slots)
            rows = last.row_of_slot.T.reshape(-1)
            out = np.zeros(last.rows, dtype=np.int64)
            out[rows[rows >= 0]] = physical[rows >= 0]
            results.append((out, cycles))

    sim = Simulator(core)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return results, timing


def check(params, layers, inputs, seed, **pack_kwargs):
    image = pack(layers, params, **pack_kwargs)
    results, timing = simulate_model(params, image, inputs)
    golden = run_golden(image, np.array(inputs), timing=timing)
    for index, (out, cycles) in enumerate(results):
        assert np.array_equal(out, golden.outputs[index]), \
            f"seed {seed}, input {index}: outputs {out} != golden {golden.outputs[index]}"
        assert cycles == golden.cycles[index], \
            f"seed {seed}, input {index}: {cycles} cycles, golden {golden.cycles[index]}"


@pytest.mark.parametrize("seed", range(4))
def test_one_layer(seed):
    rng = np.random.default_rng(seed)
    params = EngineParameters(lanes=4, max_run_bits=3, fifo_depth=2 + seed % 3)
    layer = random_layer(rng, "fc", rows=int(rng.integers(3, 14)),
                         columns=int(rng.integers(2, 20)), density=0.3)
    inputs = [random_input(rng, layer.shape[1]) for _ in range(3)]
    check(params, [layer], inputs, seed)


@pytest.mark.parametrize("seed", range(3))
def test_two_layers(seed):
    rng = np.random.default_rng(100 + seed)
    params = EngineParameters(lanes=3, word_bits=16, max_run_bits=4)
    first = random_layer(rng, "fc1", rows=10, columns=9, density=0.4)
    second = random_layer(rng, "fc2", rows=7, columns=10, density=0.5, relu=False)
    inputs = [random_input(rng, 9) for _ in range(2)]
    check(params, [first, second], inputs, seed)
