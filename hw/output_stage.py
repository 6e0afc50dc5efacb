"""The output stage of a group of lanes: bias, requantize, ReLU and clamp (docs/numerics.md 4-5)."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from sparsemac.sw.numerics import MULTIPLIER_BITS, signed_range

from .multiplier import PipelinedMultiplier
from .parameters import EngineParameters, row_param_layout

__all__ = ["OutputStage", "output_layout", "param_load_signature"]


def output_layout(params: EngineParameters, lanes: int) -> data.StructLayout:
    """One requantized output: the lane (of the stage's ``lanes``) and slot it belongs to,
    and its activation."""
    return data.StructLayout({
        "lane": unsigned(max(1, (lanes - 1).bit_length())),
        "slot": unsigned(max(1, (params.bank_depth - 1).bit_length())),
        "value": signed(params.activation_bits),
    })


def param_load_signature(params: EngineParameters, lanes: int) -> wiring.Signature:
    """Host writes of the row-parameter record ``addr`` of one of ``lanes`` lanes."""
    return wiring.Signature({
        "en": Out(1),
        "lane": Out(range(lanes)),
        "addr": Out(max(1, (params.slot_depth - 1).bit_length())),
        "data": Out(row_param_layout(params).size),
    })


class OutputStage(wiring.Component):
    """Turn a group of lanes' accumulators into the next layer's activations, one record a
    cycle.

    One stage serves ``lanes`` lanes (``params.lanes_per_output_stage``; lane numbers here are
    within the group): the core issues (lane, slot) records one per cycle. It holds its
    lanes' row parameters (bias, multiplier, shift per slot, all layers, lane ``l``'s
    at ``param_base + slot``, in one memory). For each record issued on
    ``en``/``lane``/``slot`` it reads the parameters while the lane reads the accumulator,
    takes that lane's accumulator from ``acc`` the next cycle, then computes, exactly as
    docs/numerics.md section 5: ``acc + bias``, times the multiplier, ``+ 2**(shift-1)`` when
    ``shift > 0``, arithmetic right shift, and clamp to
    ``[0 if relu else -2**(a-1), 2**(a-1) - 1]``.

    Parameters
    ----------
    params : EngineParameters
    lanes : int
        The lanes this stage serves.

    Members
    -------
    en, lane, slot : In
        Issue lane ``lane``'s slot ``slot`` this cycle.
    param_base, relu : In
        The current layer's configuration, held during a layer.
    acc : In(data.ArrayLayout(signed(accumulator_bits), lanes))
        Its lanes' accumulator reads; the stage takes the one of the lane issued in the
        previous cycle.
    o : Out(stream.Signature(output_layout(params, lanes), always_ready=True))
        The requantized output, :attr:`latency` cycles after its record was issued.
    param_w : In(param_load_signature(params, lanes))
        Host writes of the row parameters, ``data`` in :func:`row_param_layout` order.

    Latency and back-pressure: a fixed pipeline of :attr:`latency` cycles, one record per
    cycle, with no back-pressure (``o`` is always ready).
    """

    def __init__(self, params: EngineParameters, lanes: int):
        if not isinstance(params, EngineParameters):
            raise TypeError(f"Parameters must be an EngineParameters, not {params!r}")
        if not 1 <= lanes <= params.lanes:
            raise ValueError(f"An output stage serves 1 to {params.lanes} lanes, not {lanes!r}")
        self._params = params
        self._lanes = lanes
        p = params
        self._row = row_param_layout(p)
        super().__init__({
            "en": In(1),
            "lane": In(range(lanes)),
            "slot": In(range(p.bank_depth)),
            "param_base": In(max(1, p.slot_depth.bit_length())),
            "relu": In(1),
            "acc": In(data.ArrayLayout(signed(p.accumulator_bits), lanes)),
            "o": Out(stream.Signature(output_layout(p, lanes), always_ready=True)),
            "param_w": In(param_load_signature(p, lanes)),
        })

    #: Cycles from issuing a slot to its output on ``o``.
    LATENCY = 13

    @property
    def latency(self) -> int:
        """Cycles from issuing a slot to its output on ``o``."""
        return self.LATENCY

    def elaborate(self, platform):
        m = Module()
        p = self._params
        # Lane l's record r is at address r * 2**lane_bits + l: an address is two fields, no
        # multiplication.
        lane_bits = (self._lanes - 1).bit_length()
        row_bits = max(1, (p.slot_depth - 1).bit_length())
        m.submodules.params = rows = Memory(shape=self._row, depth=p.slot_depth << lane_bits,
                                            init=[])
        row_wr = rows.write_port()
        row_rd = rows.read_port()
        row = Signal(row_bits)
        m.d.comb += [
            row_wr.en.eq(self.param_w.en),
            row_wr.addr.eq(Cat(self.param_w.lane[:lane_bits], self.param_w.addr)),
            row_wr.data.eq(self.param_w.data),
        ]

        # Cycle +1: each lane's accumulator read is registered straight out of its memory
        # (the lanes' memories are spread over the device: no select in this cycle), and the
        # record's parameters are read. A compact stage (``params.compact``) selects the
        # record's accumulator in this cycle instead, and reads its parameters a cycle
        # later, straight into the bias adder: one accumulator register, not one a lane, and
        # no register of the parameters.
        s1_valid = Signal()
        s1_lane = Signal.like(self.lane)
        s1_slot = Signal.like(self.slot)
        m.d.sync += [s1_valid.eq(self.en), s1_lane.eq(self.lane), s1_slot.eq(self.slot)]
        a_valid = Signal()
        a_lane = Signal.like(self.lane)
        a_slot = Signal.like(self.slot)
        m.d.sync += [a_valid.eq(s1_valid), a_lane.eq(s1_lane), a_slot.eq(s1_slot)]

        def lane_select(accumulators, lane):
            return accumulators[lane] if self._lanes > 1 else accumulators[0]

        r_valid = Signal()
        r_lane = Signal.like(self.lane)
        r_slot = Signal.like(self.slot)
        r_acc = Signal(signed(p.accumulator_bits))
        m.d.sync += [r_valid.eq(a_valid), r_lane.eq(a_lane), r_slot.eq(a_slot)]
        if p.compact:
            a_acc = Signal(signed(p.accumulator_bits))
            m.d.sync += [a_acc.eq(lane_select(self.acc, s1_lane)), r_acc.eq(a_acc),
                         row.eq(self.param_base + s1_slot)]
            m.d.comb += row_rd.addr.eq(Cat(a_lane[:lane_bits], row))
            r_row = row_rd.data
        else:
            s1_acc = Signal.like(self.acc)
            m.d.sync += s1_acc.eq(self.acc)
            # The parameter row's address is added before its register: the stages' slot
            # registers hold the same values, Yosys merges them, and one adder after them
            # fed every stage's parameter block RAM (6.2 ns of routing on the 16-lane ULX3S).
            m.d.sync += row.eq(self.param_base + self.slot)
            m.d.comb += row_rd.addr.eq(Cat(s1_lane[:lane_bits], row))
            # Cycle +2: the record's accumulator, through the lane select, and its
            # parameters, both registered.
            r_row = Signal(self._row)
            m.d.sync += [r_acc.eq(lane_select(s1_acc, a_lane)), r_row.eq(row_rd.data)]

        # Cycle +3: add the bias.
        s2_valid = Signal()
        s2_slot = Signal.like(self.slot)
        s2_lane = Signal.like(self.lane)
        s2_sum = Signal(signed(p.accumulator_bits + 1))
        s2_multiplier = Signal(MULTIPLIER_BITS)
        s2_shift = Signal(6)
        m.d.sync += [
            s2_valid.eq(r_valid),
            s2_slot.eq(r_slot),
            s2_lane.eq(r_lane),
            s2_sum.eq(r_acc + r_row.bias),
            s2_multiplier.eq(r_row.multiplier),
            s2_shift.eq(r_row.shift),
        ]

        # Cycles +4 to +6: two partial products, each one hardware multiplier wide (the sum's
        # low bits unsigned, its high bits signed), in PipelinedMultipliers (operands, product
        # and product registered; on the ECP5 a DSP block's own registers); +7: the exact
        # product. A 33 x 16 product in one cycle is two multipliers and their carry chain
        # back to back, and with fabric registers on each side of a multiplier the routes to
        # and from the ECP5's DSP columns were the 16-lane build's critical path.
        def registered(stage, **signals):
            """Copies of ``signals`` one cycle later, named ``<stage>_<name>``."""
            copies = [Signal.like(signal, name=f"{stage}_{name}")
                      for name, signal in signals.items()]
            m.d.sync += [copy.eq(signal) for copy, signal in zip(copies, signals.values())]
            return copies

        low_bits = len(s2_sum) // 2 + 1
        m.submodules.low_product = low = PipelinedMultiplier(
            unsigned(low_bits), s2_multiplier.shape())
        m.submodules.high_product = high = PipelinedMultiplier(
            signed(len(s2_sum) - low_bits), s2_multiplier.shape())
        m.d.comb += [
            low.a.eq(s2_sum[:low_bits]), low.b.eq(s2_multiplier),
            high.a.eq(s2_sum[low_bits:].as_signed()), high.b.eq(s2_multiplier),
        ]
        q_valid, q_slot, q_lane, q_shift = s2_valid, s2_slot, s2_lane, s2_shift
        for stage in range(low.latency):
            q_valid, q_slot, q_lane, q_shift = registered(
                f"product{stage}", valid=q_valid, slot=q_slot, lane=q_lane, shift=q_shift)
        q_low, q_high = low.p, high.p
        s3_valid = Signal()
        s3_slot = Signal.like(self.slot)
        s3_lane = Signal.like(self.lane)
        s3_product = Signal(signed(p.accumulator_bits + 1 + MULTIPLIER_BITS + 1))
        # The shifter's amount (shift - 1, or 0 for no shift) and whether to round,
        # registered here rather than computed in the shifter's path (on the UP5K, the
        # subtraction was its longest part).
        s3_amount = Signal(6)
        s3_shifts = Signal()
        m.d.sync += [
            s3_valid.eq(q_valid),
            s3_slot.eq(q_slot),
            s3_lane.eq(q_lane),
            s3_product.eq((q_high << low_bits) + q_low),
            s3_amount.eq(Mux(q_shift != 0, q_shift - 1, 0)),
            s3_shifts.eq(q_shift != 0),
        ]

        # Cycles +8 to +11: shift in two steps, then round half up. For shift > 0,
        # (x + 2**(s-1)) >> s == ((x >> (s-1)) + 1) >> 1, which needs no 64-bit rounding term.
        # The shift by the amount's multiple of 8 first, then by the rest: a 50-bit shift by
        # 0 to 63 in one cycle was six levels of logic, the 16-lane ECP5 build's worst path
        # at two placement seeds of four.
        width = s3_product.shape().width
        coarse_valid, coarse_slot, coarse_lane, coarse_round, coarse_fine = registered(
            "coarse", valid=s3_valid, slot=s3_slot, lane=s3_lane, round=s3_shifts,
            fine=s3_amount[:3])
        coarse = Signal(signed(width))
        m.d.sync += coarse.eq(s3_product >> Cat(Const(0, 3), s3_amount[3:]))
        sh_valid, sh_slot, sh_lane, sh_round = registered(
            "sh", valid=coarse_valid, slot=coarse_slot, lane=coarse_lane, round=coarse_round)
        sh_partial = Signal(signed(width))
        m.d.sync += sh_partial.eq(coarse >> coarse_fine)
        # The rounding increment's carry chain in two halves, one a cycle (on the UP5K, one
        # 51-bit chain was a path of its own).
        half = width // 2
        inc_valid, inc_slot, inc_lane, inc_round, inc_high = registered(
            "inc", valid=sh_valid, slot=sh_slot, lane=sh_lane, round=sh_round,
            high=sh_partial[half:].as_signed())
        inc_low = Signal(half + 1)
        m.d.sync += inc_low.eq(sh_partial[:half] + sh_round)
        incremented = Cat(inc_low[:half], inc_high + inc_low[half]).as_signed()
        s4_valid, s4_slot, s4_lane = registered(
            "s4", valid=inc_valid, slot=inc_slot, lane=inc_lane)
        s4_scaled = Signal(signed(width + 1))
        m.d.sync += s4_scaled.eq(Mux(inc_round, incremented >> 1, incremented))

        # Cycle +12: clamp (ReLU is a clamp at 0). The value fits the activation width when
        # its bits from the activation's sign bit up are all equal: a wide AND and OR, not a
        # comparison along a 50-bit carry chain.
        lo, hi = signed_range(p.activation_bits)
        top = s4_scaled[p.activation_bits - 1:]
        negative = s4_scaled[-1]
        clamped = Signal(signed(p.activation_bits))
        with m.If(negative & self.relu):
            m.d.comb += clamped.eq(0)
        with m.Elif((top == 0) | top.all()):
            m.d.comb += clamped.eq(s4_scaled[:p.activation_bits])
        with m.Elif(negative):
            m.d.comb += clamped.eq(lo)
        with m.Else():
            m.d.comb += clamped.eq(hi)
        m.d.sync += [
            self.o.valid.eq(s4_valid),
            self.o.payload.lane.eq(s4_lane),
            self.o.payload.slot.eq(s4_slot),
            self.o.payload.value.eq(clamped),
        ]
        return m
