"""The skid buffer and the register stage: every payload once and in order under random gaps
and back-pressure, and registered ports (no combinational path from ``o.ready`` to
``i.ready``)."""

from __future__ import annotations

import random

import pytest

from hw_helpers import run_clocked
from sparsemac.hw.skid_buffer import RegisterStage, SkidBuffer


@pytest.mark.parametrize("stage, cycles_per_payload", [(SkidBuffer, 1), (RegisterStage, 2)])
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("gaps, stalls", [(0.0, 0.0), (0.3, 0.0), (0.0, 0.5), (0.4, 0.6)])
def test_random_gaps_and_back_pressure(stage, cycles_per_payload, seed, gaps, stalls):
    print(f"seed {seed}")
    rng_in, rng_out = random.Random(seed), random.Random(seed + 100)
    sent = [rng_in.randrange(256) for _ in range(200)]
    dut = stage(8)
    received, cycles = [], [0]

    async def producer(ctx):
        for byte in sent:
            while rng_in.random() < gaps:
                await ctx.tick()
            ctx.set(dut.i.payload, byte)
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)

    async def consumer(ctx):
        held = None
        while len(received) < len(sent):
            ready = rng_out.random() >= stalls
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            cycles[0] += 1
            assert cycles[0] < 50 * len(sent), f"seed {seed}: payloads lost"
            if valid and held is not None:
                assert payload == held, f"seed {seed}: payload changed while stalled"
            held = payload if valid and not ready else None
            if valid and ready:
                received.append(payload)

    run_clocked(dut, producer, consumer)
    assert received == sent, f"seed {seed}"
    if gaps == stalls == 0:
        assert cycles[0] <= cycles_per_payload * len(sent) + 2, f"seed {seed}: too slow"


def test_ready_is_registered():
    dut = SkidBuffer(8)

    async def bench(ctx):
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.i.payload, 1)
        ctx.set(dut.o.ready, 0)
        await ctx.tick()                      # taken into the output register
        assert ctx.get(dut.i.ready)
        await ctx.tick()                      # the output stalls: taken into the skid register
        assert not ctx.get(dut.i.ready)
        ctx.set(dut.o.ready, 1)               # o.ready alone does not open i.ready ...
        assert not ctx.get(dut.i.ready)
        await ctx.tick()                      # ... the cycle after the transfer does
        assert ctx.get(dut.i.ready)

    run_clocked(dut, bench)


def test_register_stage_ports_are_registers():
    dut = RegisterStage(8)

    async def bench(ctx):
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.i.payload, 7)
        ctx.set(dut.o.ready, 1)
        assert ctx.get(dut.i.ready) and not ctx.get(dut.o.valid)   # i.valid does not reach o
        await ctx.tick()                      # taken into the register
        assert ctx.get(dut.o.valid) and ctx.get(dut.o.payload) == 7
        assert not ctx.get(dut.i.ready)       # full: the next payload waits
        ctx.set(dut.i.payload, 8)
        await ctx.tick()                      # o took 7
        assert not ctx.get(dut.o.valid) and ctx.get(dut.i.ready)
        ctx.set(dut.o.ready, 0)
        await ctx.tick()                      # 8 taken; o stalls
        for _ in range(3):
            ctx.set(dut.o.ready, 0)
            assert ctx.get(dut.o.valid) and ctx.get(dut.o.payload) == 8
            ctx.set(dut.o.ready, 1)           # o.ready alone does not open i.ready
            assert not ctx.get(dut.i.ready)
            ctx.set(dut.o.ready, 0)
            await ctx.tick()

    run_clocked(dut, bench)
