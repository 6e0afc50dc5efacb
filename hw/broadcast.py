"""The broadcast: admit the front end's nonzeros into every lane, deciding from registers."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .parameters import EngineParameters, column_layout

__all__ = ["Broadcast"]


class Broadcast(wiring.Component):
    """Pass one (column, value) per cycle to all lanes while every lane has a credit.

    Each lane may hold at most ``capacity`` columns accepted and not yet taken from its FIFO
    (its fetch pipeline and its FIFO). The broadcast keeps one credit counter per lane beside
    the front end, counting up when a column is accepted and down when the lane takes one, so
    whether every lane has room is known here and not gathered from the lanes each cycle.
    ``i.ready`` is a register: at the end of each cycle both outcomes of the cycle's transfer
    are evaluated (every lane has room with this transfer counted, or without it) and the
    transfer selects one. The accepted column goes into a register that fans out to the lanes.

    Parameters
    ----------
    params : EngineParameters
    capacity : int
        Columns accepted and not yet taken that each lane can hold.

    Members
    -------
    i : In(stream.Signature(column_layout(params)))
        Nonzero activations, from the front end. ``ready`` is high while every lane holds
        fewer than ``capacity`` columns accepted and not taken.
    o : Out(stream.Signature(column_layout(params), always_ready=True))
        The columns for every lane's ``i``, one cycle after their transfer on ``i``.
    take : In(lanes)
        Lane ``l`` takes a column from its FIFO this cycle.
    empty : Out(lanes)
        Lane ``l`` holds no column accepted and not yet taken (its credits are all back).

    Latency and back-pressure: a column transferred on ``i`` in cycle ``B`` is on ``o`` in
    ``B + 1`` (:attr:`LATENCY`). A take in cycle ``P`` returns the lane's credit in ``P + 1``:
    ``i.ready`` in ``P + 1`` counts it, exactly as if each lane's own count decided.
    """

    #: Cycles from a transfer on ``i`` to the column on ``o``.
    LATENCY = 1

    def __init__(self, params: EngineParameters, capacity: int):
        if not isinstance(params, EngineParameters):
            raise TypeError(f"Parameters must be an EngineParameters, not {params!r}")
        if not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"Lane capacity must be a positive integer, not {capacity!r}")
        self._params = params
        self._capacity = capacity
        super().__init__({
            "i": In(stream.Signature(column_layout(params))),
            "o": Out(stream.Signature(column_layout(params), always_ready=True)),
            "take": In(params.lanes),
            "empty": Out(params.lanes),
        })

    @property
    def capacity(self) -> int:
        return self._capacity

    def elaborate(self, platform):
        m = Module()
        capacity = self._capacity

        accept = Signal()
        room = Signal(init=1)
        m.d.comb += [
            self.i.ready.eq(room),
            accept.eq(self.i.valid & room),
        ]

        # Per lane: room in the next cycle if this cycle's transfer happens (with) or not.
        room_with, room_without = [], []
        for lane in range(self._params.lanes):
            credits = Signal(range(capacity + 1), name=f"credits{lane}")
            take = self.take[lane]
            with m.If(accept & ~take):
                m.d.sync += credits.eq(credits + 1)
            with m.Elif(~accept & take):
                m.d.sync += credits.eq(credits - 1)
            m.d.comb += self.empty[lane].eq(credits == 0)
            with_ = Signal(name=f"room_with{lane}")
            without = Signal(name=f"room_without{lane}")
            # credits + 1 - take < capacity, and credits - take < capacity.
            m.d.comb += [
                with_.eq(Mux(take, credits < capacity, credits < capacity - 1)),
                without.eq(take | (credits < capacity)),
            ]
            room_with.append(with_)
            room_without.append(without)
        m.d.sync += room.eq(Mux(accept, Cat(*room_with).all(), Cat(*room_without).all()))

        m.d.sync += [self.o.valid.eq(accept), self.o.payload.eq(self.i.payload)]
        return m
