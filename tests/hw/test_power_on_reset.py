"""The power-on reset: how long it holds after lock, and that losing lock resets again."""

from __future__ import annotations

import pytest

from hw_helpers import run_clocked
from sparsemac.hw.power_on_reset import PowerOnReset


def reset_trace(cycles, locked_trace):
    """``reset`` after each tick, with ``locked`` set to each value of ``locked_trace``
    before that tick."""
    dut = PowerOnReset(cycles)
    trace = []

    async def bench(ctx):
        assert ctx.get(dut.reset) == 1              # from configuration
        for locked in locked_trace:
            ctx.set(dut.locked, locked)
            await ctx.tick()
            trace.append(ctx.get(dut.reset))

    run_clocked(dut, bench)
    return trace


@pytest.mark.parametrize("cycles", [1, 2, 5, 8, 13])
def test_released_cycles_plus_one_after_lock(cycles):
    unlocked = 3
    trace = reset_trace(cycles, [0] * unlocked + [1] * (cycles + 6))
    # Held while unlocked and for ``cycles`` ticks of lock; low from the tick after.
    assert trace == [1] * (unlocked + cycles) + [0] * 6


def test_losing_lock_resets_and_waits_again():
    cycles = 4
    trace = reset_trace(cycles, [1] * 8 + [0] * 3 + [1] * 8)
    assert trace[:8] == [1] * cycles + [0] * 4
    # Lock lost before tick 9: reset is back high after tick 10, and held until the timer has
    # run out again.
    assert trace[8:11] == [0, 1, 1]
    assert trace[11:] == [1] * cycles + [0] * 4


@pytest.mark.parametrize("cycles", [0, -1, 2.5])
def test_refuses_a_delay_that_is_not_a_positive_integer(cycles):
    with pytest.raises(ValueError, match="Reset cycles must be a positive integer"):
        PowerOnReset(cycles)
