"""A power-on reset: held until the clock has been locked for a number of cycles."""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["PowerOnReset"]


class PowerOnReset(wiring.Component):
    """Hold ``reset`` high until ``locked`` has been high for ``cycles`` cycles.

    Meant for a domain without a reset of its own (its registers start from their initial
    values at configuration). The timer and its run-out flag are registers that feed only
    each other, and ``reset`` is a register of its own driven by the flag alone: ``reset``
    reaches every flip-flop of the design and is placed among them, and when the timer's
    compare also fed ``reset``, the timer's loop ran through that far-away placement (the
    16-lane ULX3S's critical path, 10.4 ns).

    Parameters
    ----------
    cycles : int
        How long ``locked`` must have been high, in cycles (at least 1).

    Members
    -------
    locked : In(1)
        The clock is stable (synchronous to this component's clock).
    reset : Out(1, init=1)
        High from configuration; falls ``cycles + 1`` cycles after ``locked`` is first
        high, and rises again two cycles after ``locked`` falls (then waits as from
        configuration).
    """

    def __init__(self, cycles: int):
        if not isinstance(cycles, int) or cycles < 1:
            self._MustUse__silence = True           # refused: no "never used" warning later
            raise ValueError(f"Reset cycles must be a positive integer, not {cycles!r}")
        self._cycles = cycles
        super().__init__({"locked": In(1), "reset": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self._cycles))
        done = Signal()
        with m.If(~self.locked):
            m.d.sync += [timer.eq(0), done.eq(0)]
        with m.Elif(~done):
            m.d.sync += [timer.eq(timer + 1), done.eq(timer == self._cycles - 1)]
        m.d.sync += self.reset.eq(~done)
        return m
