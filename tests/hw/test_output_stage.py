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
    dut = OutputStage(params)
    slots = len(acc)
    rng = random.Random(seed)
    results = {}

    async def producer(ctx):
        ctx.set(dut.relu, relu)
        ctx.set(dut.param_base, base)
        for slot in range(slots):
            record = row_param_layout(params).const(
                {"bias": int(bias[slot]), "multiplier": int(multiplier[slot]),
                 "shift": int(shift[slot])})
            ctx.set(dut.param_w.en, 1)
            ctx.set(dut.param_w.addr, base + slot)
            ctx.set(dut.param_w.data, Const.cast(record).value)
            await ctx.tick()
        ctx.set(dut.param_w.en, 0)
        slot = 0
        while slot < slots:
            issue = rng.random() < 0.6
            ctx.set(dut.en, issue)
            ctx.set(dut.slot, slot)
            await ctx.tick()
            # The lane's accumulator read answers in the cycle after the issue.
            ctx.set(dut.acc, int(acc[slot]) if issue else 0)
            slot += issue
        ctx.set(dut.en, 0)
        for _ in range(dut.latency + 2):
            await ctx.tick()

    async def consumer(ctx):
        while True:
            _, _, valid, slot, value = await ctx.tick().sample(
                dut.o.valid, dut.o.payload.slot, dut.o.payload.value)
            if valid:
                assert slot not in results, f"seed {seed}: slot {slot} twice"
                results[slot] = value

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer, background=True)
    sim.run()
    return np.array([results[s] for s in range(slots)])


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("activation_bits", [8, 16])
def test_requantize_matches_numerics(seed, activation_bits):
    rng = np.random.default_rng(seed)
    params = EngineParameters(lanes=1, activation_bits=activation_bits, accumulator_bits=47,
                              slot_depth=64, bank_depth=32)
    slots = 24
    big = 1 << 45
    acc = rng.integers(-big, big, size=slots)
    bias = rng.integers(-big, big, size=slots)
    acc[:6] = [5, -5, -7, 1000, -1000, 3]          # docs/numerics.md's worked cases
    bias[:6] = 0
    multiplier = rng.integers(0, 1 << 16, size=slots)
    multiplier[:6] = [32768, 32768, 32768, 65535, 65535, 1]
    shift = rng.integers(0, 64, size=slots)
    shift[:6] = [16, 16, 16, 16, 16, 0]
    shift[6:9] = [0, 63, 1]
    lo, hi = signed_range(46)
    acc, bias = np.clip(acc, lo, hi), np.clip(bias, lo, hi)
    relu = bool(seed % 2)
    got = run_output_stage(params, acc, bias, multiplier, shift, relu, base=seed * 3, seed=seed)
    expect = requantize(acc + bias, multiplier, shift, relu=relu,
                        activation_bits=activation_bits)
    assert np.array_equal(got, expect), f"seed {seed}: {got} != {expect}"
    if activation_bits == 8 and not relu:
        assert list(got[:6]) == [3, -2, -3, 127, -128, 3]
