"""The broadcast alone: its registered ready is every lane's credit count, cycle by cycle."""

from __future__ import annotations

import random

import pytest

from hw_helpers import run_clocked
from sparsemac.hw.broadcast import Broadcast
from sparsemac.hw.parameters import EngineParameters


@pytest.mark.parametrize("seed", range(6))
def test_ready_counts_each_lanes_credits(seed):
    """Random offers and random takes (never more than a lane holds): ``i.ready`` is high
    exactly when every lane holds fewer than ``capacity`` columns, ``o`` repeats each
    transfer one cycle later, ``empty`` says which lanes hold none."""
    rng = random.Random(seed)
    lanes = rng.randint(1, 6)
    capacity = rng.randint(1, 5)
    params = EngineParameters(lanes=lanes)
    dut = Broadcast(params, capacity=capacity)
    transfers = []

    async def bench(ctx):
        held = [0] * lanes
        previous = None
        column = 0
        for cycle in range(400):
            offer = rng.random() < 0.7
            takes = [held[lane] > 0 and rng.random() < 0.4 for lane in range(lanes)]
            ctx.set(dut.i.valid, offer)
            ctx.set(dut.i.payload.column, column)
            ctx.set(dut.i.payload.value, -column % 128)
            for lane in range(lanes):
                ctx.set(dut.take[lane], takes[lane])
            ready, valid, out_column, empty = (ctx.get(dut.i.ready), ctx.get(dut.o.valid),
                                               ctx.get(dut.o.payload.column), ctx.get(dut.empty))
            assert ready == all(h < capacity for h in held), \
                f"seed {seed}, cycle {cycle}: ready {ready}, lanes hold {held}"
            assert empty == sum(1 << lane for lane in range(lanes) if held[lane] == 0), \
                f"seed {seed}, cycle {cycle}: empty {empty:b}, lanes hold {held}"
            assert valid == (previous is not None), f"seed {seed}, cycle {cycle}"
            if previous is not None:
                assert out_column == previous, f"seed {seed}, cycle {cycle}"
            previous = None
            if offer and ready:
                transfers.append(column)
                previous = column
                column = (column + 1) % (lanes * params.bank_depth)
            held = [h + bool(offer and ready) - t for h, t in zip(held, takes)]
            await ctx.tick()

    run_clocked(dut, bench)
    assert transfers, f"seed {seed}: nothing was transferred"
