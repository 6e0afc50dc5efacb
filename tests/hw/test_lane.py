"""One lane alone: decoded entries accumulate exactly, one entry per cycle."""

from __future__ import annotations

import random

import numpy as np
import pytest

from sparsemac.hw.lane import Lane
from sparsemac.hw.parameters import EngineParameters
from sparsemac.sw.golden import EngineTiming, layer_matrix
from sparsemac.sw.protocol import Target, memory_writes

from hw_helpers import build_info, pack, random_input, random_layer, run_clocked


async def write_memory(ctx, port, address, items):
    """Write ``items`` through a lane's load ``port`` from ``address`` on, one a cycle."""
    for offset, item in enumerate(items):
        ctx.set(port.en, 1)
        ctx.set(port.addr, address + offset)
        ctx.set(port.data, int(item))
        await ctx.tick()
    ctx.set(port.en, 0)


async def read_accumulators(ctx, dut, slots):
    """The lane's accumulators of slots 0 to ``slots - 1``, one read a cycle."""
    values = []
    for slot in range(slots):
        ctx.set(dut.out_en, 1)
        ctx.set(dut.out_addr, slot)
        await ctx.tick()
        values.append(ctx.get(dut.out_data))
    ctx.set(dut.out_en, 0)
    return values


def run_lane(params, layer, lane, x, valid_probability, seed):
    """Feed lane ``lane`` the nonzeros of ``x``, keeping at most the lane's capacity accepted
    and not taken (as the broadcast's credits do); return (accumulators, take cycles)."""
    dut = Lane(params, capacity=params.fifo_depth + Lane.FETCH_CYCLES)
    image = pack([layer], params)
    packed = image.layers[0]
    writes = [w for w in memory_writes(image, build_info(params, EngineTiming()))
              if w.lane == lane and w.target in (Target.POINTER, Target.ENTRY)]
    columns = [(int(c), int(x[c])) for c in np.flatnonzero(x)]
    rng = random.Random(seed)
    takes, accumulators = [], []

    async def bench(ctx):
        ctx.set(dut.value_bits, packed.value_bits)
        ctx.set(dut.run_bits, packed.run_bits)
        ctx.set(dut.slots, packed.slots)
        for write in writes:
            port = dut.pointer_w if write.target == Target.POINTER else dut.entry_w
            await write_memory(ctx, port, write.address, write.items)
        cycle = 0
        pending = list(columns)
        while pending:
            accepted = len(columns) - len(pending)
            if accepted - len(takes) < dut.capacity and rng.random() < valid_probability:
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload.column, pending[0][0])
                ctx.set(dut.i.payload.value, pending[0][1])
                pending.pop(0)
            else:
                ctx.set(dut.i.valid, 0)
            _, _, take = await ctx.tick().sample(dut.take)
            if take:
                takes.append(cycle)
            cycle += 1
        ctx.set(dut.i.valid, 0)
        while len(takes) < len(columns) or not ctx.get(dut.free):
            _, _, take = await ctx.tick().sample(dut.take)
            if take:
                takes.append(cycle)
            cycle += 1
        for _ in range(Lane.DRAIN_CYCLES + 1):
            await ctx.tick()
        accumulators.extend(await read_accumulators(ctx, dut, packed.slots))

    run_clocked(dut, bench)
    matrix = layer_matrix(packed)[lane * packed.slots:(lane + 1) * packed.slots]
    expect = matrix @ np.asarray(x, dtype=np.int64)
    work = np.maximum(packed.column_entries[lane], 1)
    return np.array(accumulators), expect, takes, [int(work[c]) for c, _ in columns]


# Each test runs both lanes: the standard one and the compact one (the same cycles).
both_lanes = pytest.mark.parametrize("compact", [False, True], ids=["standard", "compact"])


@both_lanes
@pytest.mark.parametrize("seed", range(5))
def test_accumulates_with_gaps(seed, compact):
    rng = np.random.default_rng(seed)
    params = EngineParameters(lanes=2, word_bits=16, max_run_bits=int(rng.integers(1, 5)),
                              weight_bits=8, compact=compact)
    layer = random_layer(rng, "fc", rows=int(rng.integers(2, 20)),
                         columns=int(rng.integers(1, 12)), density=0.4)
    x = random_input(rng, layer.shape[1])
    got, expect, _, _ = run_lane(params, layer, seed % 2, x, 0.5, seed)
    assert np.array_equal(got, expect), f"seed {seed}: {got} != {expect}"


@both_lanes
@pytest.mark.parametrize("seed", range(4))
def test_one_entry_per_cycle(seed, compact):
    """With a column always waiting, the lane takes the next one after max(1, n) cycles."""
    rng = np.random.default_rng(20 + seed)
    params = EngineParameters(lanes=1, word_bits=16, max_run_bits=2, compact=compact)
    layer = random_layer(rng, "fc", rows=int(rng.integers(4, 16)), columns=10,
                         density=0.5)
    x = random_input(rng, 10, zero_fraction=0.2)
    got, expect, takes, work = run_lane(params, layer, 0, x, 1.0, seed)
    assert np.array_equal(got, expect), f"seed {seed}"
    assert list(np.diff(takes)) == work[:-1], f"seed {seed}: takes {takes}, work {work}"


@both_lanes
@pytest.mark.parametrize("rows", range(1, 7))
def test_updates_of_one_slot_at_every_distance(rows, compact):
    """A dense layer of ``rows`` rows updates each slot every ``rows`` cycles: in the standard
    lane distances 1 and 2 are each one of the forwarded writes and 3 to 6 read what the
    memory holds, in the compact lane distance 1 is its one forwarded sum and 2 to 6 read (a
    deeper accumulate pipeline forwards more: the test covers the depths it has been built
    with)."""
    rng = np.random.default_rng(40 + rows)
    params = EngineParameters(lanes=1, word_bits=16, max_run_bits=2, compact=compact)
    layer = random_layer(rng, "fc", rows=rows, columns=12, density=1.0, extreme=True)
    x = random_input(rng, 12, zero_fraction=0.0)
    got, expect, takes, work = run_lane(params, layer, 0, x, 1.0, rows)
    assert np.array_equal(got, expect), f"{rows} rows: {got} != {expect}"
    assert list(np.diff(takes)) == work[:-1], f"{rows} rows: takes {takes}, work {work}"


@both_lanes
def test_a_column_whose_pointers_decrease_is_empty(compact):
    """A column whose end pointer is below its start (no packer writes one) holds the lane one
    cycle and adds nothing, like a column without entries: the count, a wrapped difference
    there, is not read."""
    params = EngineParameters(lanes=1, word_bits=16, max_run_bits=2, compact=compact)
    dut = Lane(params, capacity=params.fifo_depth + Lane.FETCH_CYCLES)
    columns = 3
    takes, accumulators = [], []

    async def bench(ctx):
        ctx.set(dut.value_bits, 8)
        ctx.set(dut.run_bits, 2)
        ctx.set(dut.slots, 4)
        await write_memory(ctx, dut.pointer_w, 0, [5, 2])   # column 0: entries 5 .. 1
        for cycle in range(40):
            ctx.set(dut.i.valid, cycle < columns)
            ctx.set(dut.i.payload.column, 0)
            ctx.set(dut.i.payload.value, 7)
            _, _, take = await ctx.tick().sample(dut.take)
            if take:
                takes.append(cycle)
        ctx.set(dut.i.valid, 0)
        accumulators.extend(await read_accumulators(ctx, dut, 4))

    run_clocked(dut, bench)
    assert len(takes) == columns and list(np.diff(takes)) == [1] * (columns - 1), takes
    assert accumulators == [0, 0, 0, 0]
