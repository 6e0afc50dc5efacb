"""The output stage alone: bias, requantization, ReLU and clamp, bit for bit."""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.hdl import Const
from amaranth.sim import Simulator

from sparsemac.hw.output_stage import OutputStage
from sparsemac.hw.parameters import EngineParameters, row_param_layout
from sparsemac.sw.numerics import requantize, signed_range


def run_output_stage(params, acc, bias, multiplier, shift, relu, base, seed):
    """Issue every (lane, slot) record of (lanes, slots) arrays once, in a random order with
    random gaps; every other lane's accumulator input carries garbage. Each output must come
    out :attr:`OutputStage.latency` cycles after its record was issued."""
    lanes, slots = acc.shape
    dut = OutputStage(params, lanes=lanes)
    rng = random.Random(seed)
    results = {}
    issued = {}                         # (lane, slot) -> the cycle its record was issued

    async def producer(ctx):
        cycle = 0
        ctx.set(dut.relu, relu)
        ctx.set(dut.param_base, base)
        for lane in range(lanes):
            for slot in range(slots):
                record = row_param_layout(params).const(
                    {"bias": int(bias[lane, slot]), "multiplier": int(multiplier[lane, slot]),
                     "shift": int(shift[lane, slot])})
                ctx.set(dut.param_w.en, 1)
                ctx.set(dut.param_w.lane, lane)
                ctx.set(dut.param_w.addr, base + slot)
                ctx.set(dut.param_w.data, Const.cast(record).value)
                await ctx.tick()
                cycle += 1
        ctx.set(dut.param_w.en, 0)
        order = [(lane, slot) for lane in range(lanes) for slot in range(slots)]
        rng.shuffle(order)
        lo, hi = signed_range(params.accumulator_bits)
        while order:
            issue = rng.random() < 0.6
            lane, slot = order[-1]
            ctx.set(dut.en, issue)
            ctx.set(dut.lane, lane)
            ctx.set(dut.slot, slot)
            if issue:
                issued[lane, slot] = cycle
            await ctx.tick()
            cycle += 1
            # The lanes' accumulator reads answer in the cycle after the issue.
            for other in range(lanes):
                ctx.set(dut.acc[other], rng.randint(lo, hi))
            if issue:
                ctx.set(dut.acc[lane], int(acc[lane, slot]))
                order.pop()
        ctx.set(dut.en, 0)
        for _ in range(dut.latency + 2):
            await ctx.tick()

    async def consumer(ctx):
        cycle = 0
        while True:
            _, _, valid, lane, slot, value = await ctx.tick().sample(
                dut.o.valid, dut.o.payload.lane, dut.o.payload.slot, dut.o.payload.value)
            if valid:
                assert (lane, slot) not in results, f"seed {seed}: lane {lane} slot {slot} twice"
                assert cycle - issued[lane, slot] == dut.latency, \
                    f"seed {seed}: lane {lane} slot {slot} out {cycle - issued[lane, slot]} " \
                    f"cycles after its issue, not {dut.latency}"
                results[lane, slot] = value
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer, background=True)
    sim.run()
    return np.array([[results[l, s] for s in range(slots)] for l in range(lanes)])


# Each test runs both stages: the standard one and the compact one (the same cycles).
both_stages = pytest.mark.parametrize("compact", [False, True], ids=["standard", "compact"])


@both_stages
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("activation_bits, lanes", [(8, 1), (16, 1), (8, 3), (16, 4)])
def test_requantize_matches_numerics(seed, activation_bits, lanes, compact):
    rng = np.random.default_rng(seed)
    params = EngineParameters(lanes=lanes, activation_bits=activation_bits,
                              accumulator_bits=47, slot_depth=48, bank_depth=32,
                              compact=compact)
    slots = 24
    big = 1 << 45
    acc = rng.integers(-big, big, size=(lanes, slots))
    bias = rng.integers(-big, big, size=(lanes, slots))
    acc[0, :6] = [5, -5, -7, 1000, -1000, 3]       # docs/numerics.md's worked cases
    bias[0, :6] = 0
    multiplier = rng.integers(0, 1 << 16, size=(lanes, slots))
    multiplier[0, :6] = [32768, 32768, 32768, 65535, 65535, 1]
    shift = rng.integers(0, 64, size=(lanes, slots))
    shift[0, :6] = [16, 16, 16, 16, 16, 0]
    shift[0, 6:9] = [0, 63, 1]
    lo, hi = signed_range(46)
    acc, bias = np.clip(acc, lo, hi), np.clip(bias, lo, hi)
    relu = bool(seed % 2)
    got = run_output_stage(params, acc, bias, multiplier, shift, relu, base=seed * 3, seed=seed)
    expect = requantize(acc + bias, multiplier, shift, relu=relu,
                        activation_bits=activation_bits)
    assert np.array_equal(got, expect), f"seed {seed}: {got} != {expect}"
    if activation_bits == 8 and not relu:
        assert list(got[0, :6]) == [3, -2, -3, 127, -128, 3]


@both_stages
@pytest.mark.parametrize("activation_bits", [8, 16])
@pytest.mark.parametrize("relu", [False, True])
def test_clamp_edges(activation_bits, relu, compact):
    # Multiplier 1 and shift 0 or 1: the shifted value is the sum itself, so these sums land
    # on either side of the activation range, of twice it (the rounding's input) and of the
    # output stage's saturation width (activation bits + 3).
    params = EngineParameters(lanes=2, activation_bits=activation_bits, accumulator_bits=47,
                              slot_depth=64, bank_depth=64, compact=compact)
    edges = []
    for bound in (1 << (activation_bits - 1), 1 << activation_bits,
                  1 << (activation_bits + 2), 1 << 40):
        edges += [bound + d for d in (-2, -1, 0, 1, 2)] + [-bound + d for d in (-2, -1, 0, 1, 2)]
    sums = np.array(edges * 2, dtype=np.int64)
    shift = np.array([0] * len(edges) + [1] * len(edges), dtype=np.int64)
    slots = len(sums) // 2
    shape = (2, slots)
    acc = sums.reshape(shape)
    got = run_output_stage(params, acc, np.zeros(shape, dtype=np.int64),
                           np.ones(shape, dtype=np.int64), shift.reshape(shape), relu,
                           base=0, seed=activation_bits)
    expect = requantize(acc, np.ones(shape, dtype=np.int64), shift.reshape(shape), relu=relu,
                        activation_bits=activation_bits)
    assert np.array_equal(got, expect), f"{got} != {expect}"
