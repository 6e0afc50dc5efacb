"""A stand-in for ``sparsemac.hw.engine.Engine`` with the same ports, for testing sim/.

It adds a constant to every byte and passes it through a small FIFO, so a stalled consumer
back-pressures the producer after ``depth`` bytes.
"""

from amaranth import Module
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out


class AddEcho(wiring.Component):
    """Byte stream in, byte stream out: ``o = (i + add) % 256``, in order, through a FIFO.

    Members
    -------
    i : In(stream.Signature(8))
    o : Out(stream.Signature(8))

    At most ``depth`` bytes are in flight; ``i.ready`` is low while the FIFO is full.
    """

    i: In(stream.Signature(8))
    o: Out(stream.Signature(8))

    def __init__(self, add=1, depth=4):
        if not isinstance(add, int) or not 0 <= add < 256:
            raise ValueError(f"Addend must be an integer in [0, 256), not {add!r}")
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"FIFO depth must be a positive integer, not {depth!r}")
        self._add = add
        self._depth = depth
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = buf = fifo.SyncFIFOBuffered(width=8, depth=self._depth)
        m.d.comb += [
            buf.w_data.eq(self.i.payload + self._add),
            buf.w_en.eq(self.i.valid),
            self.i.ready.eq(buf.w_rdy),
            self.o.payload.eq(buf.r_data),
            self.o.valid.eq(buf.r_rdy),
            buf.r_en.eq(self.o.ready),
        ]
        return m
