"""The core against the golden model: outputs and cycle counts, layer by layer."""

from __future__ import annotations

import numpy as np
import pytest

from sparsemac.hw.core import Core, LoadTarget
from sparsemac.hw.parameters import EngineParameters
from sparsemac.sw.golden import run_golden

from hw_helpers import core_writes, pack, random_input, random_layer, run_clocked


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
    # One read a cycle; each value is on act_data ACT_READ_LATENCY cycles after its read.
    values = []
    for cycle in range(count + Core.ACT_READ_LATENCY - 1):
        if cycle < count:
            ctx.set(core.act_en, 1)
            ctx.set(core.act_lane, cycle % params.lanes)
            ctx.set(core.act_buffer, ctx.get(core.result_buffer))
            ctx.set(core.act_addr, cycle // params.lanes)
        else:
            ctx.set(core.act_en, 0)
        await ctx.tick()
        if cycle + 1 >= Core.ACT_READ_LATENCY:
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

    run_clocked(core, bench)
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


def _layer(name, weight, rng, *, weight_bits=8, relu=False, activation_bits=8):
    """A layer with given weights and random requantization that keeps outputs in range."""
    from sparsemac.sw.quantize import QuantLayer
    rows = weight.shape[0]
    scale = max(1, int(np.abs(weight).sum(axis=1).max()) << (activation_bits - 1))
    shift = np.full(rows, max(1, scale.bit_length() + 16 - activation_bits), dtype=np.int64)
    return QuantLayer(name, weight.astype(np.int64), rng.integers(-300, 301, size=rows),
                      rng.integers(1 << 15, 1 << 16, size=rows), shift, relu, weight_bits)


def test_all_zero_matrix_and_input():
    rng = np.random.default_rng(11)
    params = EngineParameters(lanes=3, max_run_bits=2)
    layer = _layer("zero", np.zeros((5, 7), dtype=np.int64), rng)
    inputs = [random_input(rng, 7), np.zeros(7, dtype=np.int64)]
    check(params, [layer], inputs, 11)


def test_empty_rows_and_columns_one_nonzero():
    rng = np.random.default_rng(12)
    params = EngineParameters(lanes=4, max_run_bits=2)
    weight = np.zeros((9, 11), dtype=np.int64)
    weight[6, 8] = -77                                   # one nonzero, in a late row and column
    inputs = [random_input(rng, 11, zero_fraction=0.0), np.eye(11, dtype=np.int64)[8] * -128,
              np.zeros(11, dtype=np.int64)]
    check(params, [_layer("one", weight, rng)], inputs, 12)


@pytest.mark.parametrize("run_bits", [1, 2])
def test_longest_runs_and_fillers(run_bits):
    """Tall sparse columns: gaps far longer than a run field holds need filler entries."""
    rng = np.random.default_rng(13 + run_bits)
    params = EngineParameters(lanes=2, max_run_bits=2, bank_depth=16)
    weight = np.zeros((30, 6), dtype=np.int64)
    weight[29, :] = 5                                     # last slot of lane 1: longest gap
    weight[0, 2], weight[28, 3], weight[14, 4] = 3, -4, 7
    inputs = [random_input(rng, 6, zero_fraction=0.2) for _ in range(2)]
    # EIE's interleave keeps row 29 in the last slot of lane 1 (the balanced deal would not).
    image = pack([_layer("tall", weight, rng)], params, run_bits=run_bits, balance=False)
    assert image.layers[0].fillers >= 20
    check(params, [_layer("tall", weight, np.random.default_rng(13))], inputs, 13,
          run_bits=run_bits, balance=False)


def test_extreme_values():
    rng = np.random.default_rng(14)
    params = EngineParameters(lanes=3, max_run_bits=3)
    layer = random_layer(rng, "extreme", rows=7, columns=8, density=0.6, extreme=True)
    inputs = [np.full(8, -128), np.full(8, 127), random_input(rng, 8, zero_fraction=0.0)]
    check(params, [layer], inputs, 14)


@pytest.mark.parametrize("lanes,word_bits,weight_bits,run_bits", [
    (1, 8, 4, 4),       # one lane; 8-bit entries straddle every byte boundary
    (5, 32, 16, 6),     # widest weights; entries straddle 32-bit words
    (2, 64, 8, 8),      # widest runs, 64-bit words
])
def test_widths(lanes, word_bits, weight_bits, run_bits):
    rng = np.random.default_rng(15 + lanes)
    params = EngineParameters(lanes=lanes, word_bits=word_bits, weight_bits=weight_bits,
                              max_run_bits=run_bits, accumulator_bits=40, bank_depth=16)
    layer = random_layer(rng, "fc", rows=int(rng.integers(4, 12)), columns=9, density=0.35,
                         weight_bits=weight_bits)
    inputs = [random_input(rng, 9) for _ in range(2)]
    check(params, [layer], inputs, 15 + lanes)


def test_three_layers_mixed_widths_fifo_depth_one():
    """Layers of different weight widths back to back; a FIFO of one entry stalls the scan."""
    rng = np.random.default_rng(16)
    params = EngineParameters(lanes=3, weight_bits=8, max_run_bits=4, fifo_depth=1)
    layers = [random_layer(rng, "a", rows=8, columns=6, density=0.5, weight_bits=8),
              random_layer(rng, "b", rows=4, columns=8, density=0.7, weight_bits=5),
              random_layer(rng, "c", rows=7, columns=4, density=0.6, weight_bits=4, relu=False)]
    inputs = [random_input(rng, 6) for _ in range(2)]
    check(params, layers, inputs, 16)


def test_sixteen_bit_activations():
    rng = np.random.default_rng(17)
    params = EngineParameters(lanes=2, activation_bits=16, accumulator_bits=40,
                              max_run_bits=3)
    layers = [random_layer(rng, "a", rows=5, columns=6, density=0.5, activation_bits=16),
              random_layer(rng, "b", rows=3, columns=5, density=0.6, activation_bits=16,
                           relu=False)]
    inputs = [random_input(rng, 6, activation_bits=16), np.full(6, -32768)]
    check(params, layers, inputs, 17)


def test_full_banks_of_a_non_power_of_two_depth():
    """Layers that fill every bank address, in both buffers, of a 12-deep bank."""
    rng = np.random.default_rng(5)
    params = EngineParameters(lanes=2, bank_depth=12, max_run_bits=3)
    layers = [random_layer(rng, "a", rows=24, columns=24, density=0.3),
              random_layer(rng, "b", rows=24, columns=24, density=0.3),
              random_layer(rng, "c", rows=5, columns=24, density=0.3)]
    check(params, layers, [random_input(rng, 24) for _ in range(2)], 5)


@pytest.mark.parametrize("seed", range(8))
def test_random_builds_and_models(seed):
    """Random builds (lanes, output-stage sharing, FIFO depth, word and run widths; standard
    lanes at even seeds, compact at odd) and random 1 to 3 layer models."""
    rng = np.random.default_rng(1000 + seed)
    weight_bits = int(rng.choice([4, 6, 8]))
    run_bits = int(rng.integers(1, 5))
    word_bits = int(rng.choice([w for w in (8, 16, 32) if w >= weight_bits + run_bits]))
    lanes = int(rng.integers(1, 7))
    sharing = int(rng.choice([g for g in range(1, lanes + 1) if lanes % g == 0]))
    params = EngineParameters(lanes=lanes, fifo_depth=int(rng.integers(1, 6)),
                              weight_bits=weight_bits, max_run_bits=run_bits,
                              word_bits=word_bits, bank_depth=16,
                              lanes_per_output_stage=sharing, compact=bool(seed % 2))
    sizes = [int(rng.integers(2, 16)) for _ in range(int(rng.integers(2, 5)))]
    layers = [random_layer(rng, f"fc{k}", rows=sizes[k + 1], columns=sizes[k],
                           density=float(rng.uniform(0.05, 0.9)),
                           weight_bits=int(rng.integers(4, weight_bits + 1)),
                           relu=bool(rng.integers(0, 2)))
              for k in range(len(sizes) - 1)]
    inputs = [random_input(rng, sizes[0], zero_fraction=float(rng.uniform(0, 0.9)))
              for _ in range(2)]
    check(params, layers, inputs, 1000 + seed, balance=bool(rng.integers(0, 2)))
