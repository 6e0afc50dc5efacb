"""The block RAM FIFO: every word out once and in order under random valid and ready on both
sides, its capacity, its rate, and words of the widths and depths the boards use."""

from __future__ import annotations

import random
from collections import deque

import pytest

from hw_helpers import run_clocked
from sparsemac.hw.block_ram_fifo import BlockRAMFIFO


@pytest.mark.parametrize("width, depth, offer, take", [
    (8, 512, 0.3, 0.5),      # the boards' receive FIFO: bytes in slower than the engine
    (8, 16, 0.9, 0.2),       # a consumer that stalls: the FIFO fills
    (5, 3, 0.7, 0.7),        # a depth that is not a power of two
    (1, 1, 1.0, 0.9),
    (13, 7, 0.5, 1.0),
])
def test_every_word_out_once_in_order(width, depth, offer, take):
    rng = random.Random(f"{width} {depth} {offer} {take}")
    dut = BlockRAMFIFO(width, depth)
    sent = deque()

    async def bench(ctx):
        received = 0
        word = rng.randrange(1 << width)
        for cycle in range(3000):
            valid = rng.random() < offer
            ready = rng.random() < take
            ctx.set(dut.w_stream.valid, valid)
            ctx.set(dut.w_stream.payload, word)
            ctx.set(dut.r_stream.ready, ready)
            # Bounded: a FIFO that holds every word forever fails here, it does not hang.
            assert len(sent) <= dut.depth, f"cycle {cycle}: holds {len(sent)} words"
            if ctx.get(dut.r_stream.valid) and ready:
                assert sent, f"cycle {cycle}: a word out that never went in"
                assert ctx.get(dut.r_stream.payload) == sent.popleft(), f"cycle {cycle}"
                received += 1
            if valid and ctx.get(dut.w_stream.ready):
                sent.append(word)
                word = rng.randrange(1 << width)
            await ctx.tick()
        # Drain: everything still held comes out.
        ctx.set(dut.w_stream.valid, 0)
        ctx.set(dut.r_stream.ready, 1)
        for _ in range(depth + 10):
            if ctx.get(dut.r_stream.valid):
                assert ctx.get(dut.r_stream.payload) == sent.popleft()
                received += 1
            await ctx.tick()
        assert not sent, f"{len(sent)} words never came out"
        assert received > 100

    run_clocked(dut, bench)


@pytest.mark.parametrize("depth", [1, 6, 64])
def test_holds_its_depth_then_refuses(depth):
    dut = BlockRAMFIFO(8, depth)
    assert dut.depth == depth + BlockRAMFIFO.OUTPUT_WORDS

    async def bench(ctx):
        ctx.set(dut.r_stream.ready, 0)
        ctx.set(dut.w_stream.valid, 1)
        accepted = 0
        for cycle in range(3 * dut.depth + 20):
            ctx.set(dut.w_stream.payload, accepted & 0xFF)
            if ctx.get(dut.w_stream.ready):
                accepted += 1
            await ctx.tick()
        assert accepted == dut.depth
        ctx.set(dut.w_stream.valid, 0)
        ctx.set(dut.r_stream.ready, 1)
        out = []
        for _ in range(dut.depth + 10):
            if ctx.get(dut.r_stream.valid):
                out.append(ctx.get(dut.r_stream.payload))
            await ctx.tick()
        assert out == [n & 0xFF for n in range(dut.depth)]

    run_clocked(dut, bench)


def test_a_word_per_cycle_and_first_word_after_four():
    dut = BlockRAMFIFO(8, 32)

    async def bench(ctx):
        ctx.set(dut.r_stream.ready, 1)
        ctx.set(dut.w_stream.valid, 1)
        first_out = None
        outs = []
        for cycle in range(200):
            ctx.set(dut.w_stream.payload, cycle & 0xFF)
            assert ctx.get(dut.w_stream.ready), f"cycle {cycle}: refused while draining"
            if ctx.get(dut.r_stream.valid):
                first_out = cycle if first_out is None else first_out
                outs.append(ctx.get(dut.r_stream.payload))
            await ctx.tick()
        assert first_out == 4
        assert outs == [n & 0xFF for n in range(len(outs))]
        assert len(outs) == 200 - 4            # one word every cycle from the first on

    run_clocked(dut, bench)


@pytest.mark.parametrize("width, depth", [(0, 4), (8, 0), (8, 2.5)])
def test_refuses_shapes_it_cannot_be(width, depth):
    with pytest.raises(ValueError, match="must be a positive integer"):
        BlockRAMFIFO(width, depth)
