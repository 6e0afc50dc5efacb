"""The front end: scan the activation banks a group at a time, broadcast the nonzeros."""

from __future__ import annotations

import functools
import operator

from amaranth.hdl import C, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from .parameters import EngineParameters, column_layout

__all__ = ["FrontEnd"]


class _Phase(enum.Enum, shape=2):
    IDLE = 0
    PRIME = 1
    LOAD = 2
    SCAN = 3


class FrontEnd(wiring.Component):
    """Scan one group of N activations per cycle; offer its nonzeros one per cycle.

    A *group* is the N activations at one bank address (physical columns ``g*N`` to
    ``g*N + N - 1``, docs/format.md section 2). The front end keeps the current group and
    the next one in registers and the one after on the banks' read port (whose data goes
    straight into a register), so moving on costs nothing after a group's last nonzero is
    taken, and exactly one cycle for a group with no nonzero.
    Columns at or past ``columns`` are treated as zero.

    Parameters
    ----------
    params : EngineParameters

    Members
    -------
    start : In(1)
        Pulse to scan a new layer; ``columns`` and ``groups`` must hold from the next cycle
        until the next ``start``.
    columns : In(column_bits)
        The layer's physical columns.
    groups : In(...)
        ``ceil(columns / N)``.
    rd_addr : Out(...)
        Group address for the activation banks' synchronous read port.
    rd_en : Out(1)
        Read enable; while low the read port must keep its data.
    rd_data : In(data.ArrayLayout(signed(activation_bits), N))
        The banks' read data, one activation per bank.
    o : Out(stream.Signature(column_layout(params)))
        The nonzero activations in ascending physical column order.
    done : Out(1)
        High from the cycle after the last group has been scanned until the next ``start``.

    Latency and back-pressure: after ``start`` in cycle -3, group 0 is scanned in cycle 0.
    A nonzero is offered on ``o`` from the cycle its group is current; the front end holds it
    while ``o.ready`` is low and moves to the next one the cycle after the transfer.
    ``o.valid`` never depends on ``o.ready``.
    """

    def __init__(self, params: EngineParameters):
        if not isinstance(params, EngineParameters):
            raise TypeError(f"Parameters must be an EngineParameters, not {params!r}")
        self._params = params
        group_shape = unsigned(max(1, params.bank_depth.bit_length()))
        super().__init__({
            "start": In(1),
            "columns": In(params.column_bits),
            "groups": In(group_shape),
            "rd_addr": Out(unsigned(max(1, (params.bank_depth + 3).bit_length()))),
            "rd_en": Out(1),
            "rd_data": In(data.ArrayLayout(signed(params.activation_bits), params.lanes)),
            "o": Out(stream.Signature(column_layout(params))),
            "done": Out(1),
        })

    @property
    def setup_cycles(self) -> int:
        """Cycles from ``start`` to the first group being scanned."""
        return 3

    def elaborate(self, platform):
        m = Module()
        p = self._params
        lanes = p.lanes

        phase = Signal(_Phase)
        # The current group's number plus one: the end test compares it with the layer's
        # groups, no adder before the comparison.
        groups_scanned = Signal(range(p.bank_depth + 2))
        base = Signal(p.column_bits + 1)          # the current group's number times lanes
        current = Signal(data.ArrayLayout(signed(p.activation_bits), lanes))
        following = Signal(data.ArrayLayout(signed(p.activation_bits), lanes))
        # The layer's columns from the group after the following one on (negative past the
        # end): each group's in-layer test is then this register against a constant.
        columns_after = Signal(signed(p.column_bits + 2))
        # The current group's pending nonzeros: the lowest, one-hot, and the others. Both are
        # registers, so the carry chain that splits off the lowest is before them and not in
        # the path from them through the value's selection into the broadcast's register (on
        # the 16-lane ULX3S, that path crossed the device after the chain).
        lowest = Signal(lanes)
        others = Signal(lanes)
        # Whether none or at most one nonzero is pending, kept beside them, so that the
        # decision to move on is one gate after the ready register.
        empty = Signal()
        last = Signal()

        def ones_up_to_3(bits):
            """How many bits are set, 3 for three or more: a tree of small adders, a few LUT
            levels deep, where ``x & (x - 1)`` twice would chain two carry chains."""
            if len(bits) == 1:
                return bits
            half = len(bits) // 2
            total = ones_up_to_3(bits[:half]) + ones_up_to_3(bits[half:])
            return Mux(total > 3, 3, total)[:2]

        # Which of the following group's columns are in the layer: a register, set for group 0
        # in PRIME and for each next group as the front end moves on, from comparisons of one
        # register with constants (a subtraction, then a comparison, were the ECP5's path).
        live = Signal(lanes)

        def in_layer(count):
            """Bit ``k`` is ``count > k``: one test of ``count``'s high bits shared by all
            lanes, then each lane's test of its low bits. Written as 32 comparisons, Yosys'
            mapping shared terms between them and chained eight LUTs (the 32-lane ULX3S's
            worst path)."""
            low_bits = (lanes - 1).bit_length()            # 2 ** low_bits >= lanes
            negative = count[-1] if count.shape().signed else C(0, 1)
            above = ~negative & (count[low_bits:] != 0)    # count >= 2 ** low_bits
            low = count[:low_bits]
            return Cat(above | (~negative & (low > lane)) for lane in range(lanes))

        # The nonzeros of the following group (from registers only).
        incoming = Signal(lanes)
        for lane in range(lanes):
            m.d.comb += incoming[lane].eq((following[lane] != 0) & live[lane])

        def split_lowest(bits, name):
            """The lowest set bit of ``bits``, one-hot, and the others: a carry chain, not a
            priority chain."""
            first = Signal(lanes, name=f"{name}_lowest")
            rest = Signal(lanes, name=f"{name}_others")
            m.d.comb += [rest.eq(bits & (bits - 1)), first.eq(bits & ~rest)]
            return first, rest

        # What the registers take next: from the following group, or after a transfer.
        incoming_lowest, incoming_others = split_lowest(incoming, "incoming")
        next_lowest, next_others = split_lowest(others, "next")

        pick = Signal(range(lanes))
        value = Signal(signed(p.activation_bits))
        for bit in range(len(pick)):
            m.d.comb += pick[bit].eq(Cat(lowest[lane] for lane in range(lanes)
                                         if lane >> bit & 1).any())
        picked = [Mux(lowest[lane], current[lane], 0) for lane in range(lanes)]
        m.d.comb += value.eq(functools.reduce(operator.or_, picked))

        # Whether the current group is past the layer's last, and whether the front end is
        # scanning (phase SCAN, not past the end): registers, set as the front end moves on,
        # so neither the end test nor the phase is in the path of the decision to move on
        # (on the UP5K they were, into the clock enable of ``following``).
        past_end = Signal()
        scanning = Signal()
        m.d.comb += [
            self.done.eq((phase == _Phase.SCAN) & past_end),
            self.o.valid.eq(scanning & ~empty),
            self.o.payload.column.eq(base + pick),
            self.o.payload.value.eq(value),
        ]

        advance = Signal()
        with m.If(scanning):
            with m.If(empty | (self.o.ready & last)):
                m.d.comb += advance.eq(1)
            with m.Elif(self.o.ready):
                # What is left after this transfer holds at most one nonzero if the others
                # hold at most one now.
                m.d.sync += [lowest.eq(next_lowest), others.eq(next_others),
                             last.eq(ones_up_to_3(others) <= 1)]

        # Groups are read in order, so the read address is a register: a counter, group + 3
        # while scanning, back at zero between layers.
        fetch = Signal.like(self.rd_addr)
        m.d.comb += self.rd_addr.eq(fetch)
        with m.If(self.rd_en):
            m.d.sync += fetch.eq(fetch + 1)
        with m.Elif((phase == _Phase.IDLE) | self.done):
            m.d.sync += fetch.eq(0)

        with m.If(self.start):
            m.d.comb += self.rd_en.eq(1)
            m.d.sync += [phase.eq(_Phase.PRIME), groups_scanned.eq(1), base.eq(0),
                         scanning.eq(0)]
        with m.Elif(phase == _Phase.PRIME):
            m.d.comb += self.rd_en.eq(1)
            m.d.sync += [phase.eq(_Phase.LOAD), following.eq(self.rd_data),
                         past_end.eq(self.groups == 0),
                         live.eq(in_layer(self.columns)),
                         columns_after.eq(self.columns - lanes)]
        with m.Elif((phase == _Phase.LOAD) | advance):
            m.d.comb += self.rd_en.eq(1)
            m.d.sync += [
                phase.eq(_Phase.SCAN),
                current.eq(following),
                lowest.eq(incoming_lowest),
                others.eq(incoming_others),
                empty.eq(incoming == 0),
                last.eq(ones_up_to_3(incoming) <= 1),
                following.eq(self.rd_data),
                live.eq(in_layer(columns_after)),
                columns_after.eq(columns_after - lanes),
            ]
            with m.If(phase == _Phase.SCAN):
                at_end = groups_scanned == self.groups
                m.d.sync += [groups_scanned.eq(groups_scanned + 1), base.eq(base + lanes),
                             past_end.eq(at_end), scanning.eq(~at_end)]
            with m.Else():
                m.d.sync += scanning.eq(~past_end)
        return m
