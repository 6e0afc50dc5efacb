"""A stream FIFO held in a block RAM, whose output comes from registers."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .block_ram import BlockRAM, require_positive

__all__ = ["BlockRAMFIFO"]


class BlockRAMFIFO(wiring.Component):
    """A first-in first-out queue of ``width``-bit words in a :class:`BlockRAM`, read ahead
    into a few registers that give the output.

    Amaranth's ``SyncFIFOBuffered`` offers its block RAM's read data itself: on the ECP5 a
    DP16KD read without the block's output register leaves it 5.8 ns after the clock, and
    its route to the next register was the 16-lane ULX3S build's worst path at one seed
    (docs/fpga.md). Here the words are stored in a :class:`BlockRAM` (on the ECP5, read
    through the block's output register) and read ahead into a queue of
    :attr:`OUTPUT_WORDS` registers whose head is ``r_stream.payload``: only registers drive
    ``r_stream.valid`` and ``r_stream.payload``, and only register comparisons
    ``w_stream.ready``.

    A word leaves the block RAM when the queue has a place for it that no read in flight
    has claimed, so the queue never overflows, and with four places a word can leave every
    cycle: the FIFO passes one word per cycle while both sides keep up.

    Parameters
    ----------
    width : int
        Word width in bits.
    depth : int
        Words in the block RAM; the FIFO holds ``depth + OUTPUT_WORDS``.
    name : str
        The block RAM's name in the netlist.

    Members
    -------
    w_stream : In(stream.Signature(width))
        Words in; ``ready`` is low while the block RAM holds ``depth`` words not yet read.
    r_stream : Out(stream.Signature(width))
        Words out, in the order they came in.

    Latency: a word written in cycle ``t`` is offered from ``t + 4`` at the earliest (read
    from the block RAM in ``t + 1``, its word out in ``t + 3``, in the queue from ``t + 4``).
    """

    #: Registers the words wait in after the block RAM: one for each cycle a word spends
    #: between its read and the return of its place (read, two cycles of latency, taken).
    OUTPUT_WORDS = BlockRAM.LATENCY + 2

    def __init__(self, width: int, depth: int, *, name: str = "storage"):
        require_positive(self, "FIFO", width=width, depth=depth)
        self._width = width
        self._depth = depth
        self._name = name
        super().__init__({
            "w_stream": In(stream.Signature(width)),
            "r_stream": Out(stream.Signature(width)),
        })

    @property
    def width(self) -> int:
        return self._width

    @property
    def depth(self) -> int:
        """Words the FIFO holds: the block RAM's and the output queue's."""
        return self._depth + self.OUTPUT_WORDS

    def elaborate(self, platform):
        m = Module()
        depth = self._depth
        places = self.OUTPUT_WORDS
        m.submodules.storage = storage = BlockRAM(self._width, depth, name=self._name)
        (read,) = storage.read

        def advance(addr):
            return Mux(addr == depth - 1, 0, addr + 1) if depth & (depth - 1) else addr + 1

        # -- Into the block RAM ------------------------------------------------------------
        unread = Signal(range(depth + 1))        # words in the block RAM, not yet read
        write_addr = Signal(range(depth))
        write = Signal()
        m.d.comb += [
            self.w_stream.ready.eq(unread != depth),
            write.eq(self.w_stream.valid & self.w_stream.ready),
            storage.write.en.eq(write),
            storage.write.addr.eq(write_addr),
            storage.write.data.eq(self.w_stream.payload),
        ]
        with m.If(write):
            m.d.sync += write_addr.eq(advance(write_addr))

        # -- Read ahead: a word leaves when a place in the queue is free and unclaimed -----
        # ``unclaimed`` counts the places neither holding a word nor awaiting one in flight.
        # A word written in cycle t is read from t + 1 (the write lands at the end of t).
        unclaimed = Signal(range(places + 1), init=places)
        read_addr = Signal(range(depth))
        issue = Signal()
        arriving = Signal(BlockRAM.LATENCY)      # reads issued one and two cycles ago
        m.d.comb += [
            issue.eq((unread != 0) & (unclaimed != 0)),
            read.en.eq(issue),
            read.addr.eq(read_addr),
        ]
        m.d.sync += arriving.eq(Cat(issue, arriving[:-1]))
        with m.If(issue):
            m.d.sync += read_addr.eq(advance(read_addr))
        m.d.sync += unread.eq(unread + write - issue)

        # -- The output queue: its head is the output; words arrive behind the last held ---
        queue = [Signal(self._width, name=f"queue{index}", reset_less=True)
                 for index in range(places)]
        held = Signal(range(places + 1))
        push = arriving[-1]
        pop = Signal()
        m.d.comb += [
            self.r_stream.valid.eq(held != 0),
            self.r_stream.payload.eq(queue[0]),
            pop.eq(self.r_stream.valid & self.r_stream.ready),
        ]
        for index, place in enumerate(queue):
            with m.If(pop):
                if index + 1 < places:
                    m.d.sync += place.eq(queue[index + 1])
                with m.If(push & (held == index + 1)):
                    m.d.sync += place.eq(read.data)
            with m.Elif(push & (held == index)):
                m.d.sync += place.eq(read.data)
        m.d.sync += [
            held.eq(held + push - pop),
            unclaimed.eq(unclaimed - issue + pop),
        ]
        return m
