"""The output stage of one lane: bias, requantize, ReLU and clamp (docs/numerics.md 4-5)."""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from sparsemac.sw.numerics import MULTIPLIER_BITS, signed_range

from .lane import LoadSignature
from .parameters import EngineParameters, row_param_layout

__all__ = ["OutputStage", "output_layout"]


def output_layout(params: EngineParameters) -> data.StructLayout:
    """One requantized output: the slot it belongs to and its activation."""
    return data.StructLayout({
        "slot": unsigned(max(1, (params.bank_depth - 1).bit_length())),
        "value": signed(params.activation_bits),
    })


class OutputStage(wiring.Component):
    """Turn a lane's accumulators into the next layer's activations.

    Holds the lane's row parameters (bias, multiplier, shift per slot, all layers, at
    ``param_base + slot``). For each slot issued on ``en``/``slot`` it reads the parameters
    while the lane reads the accumulator, then computes, exactly as docs/numerics.md section 5:
    ``acc + bias``, times the multiplier, ``+ 2**(shift-1)`` when ``shift > 0``, arithmetic
    right shift, and clamp to ``[0 if relu else -2**(a-1), 2**(a-1) - 1]``.

    Parameters
    ----------
    params : EngineParameters

    Members
    -------
    en, slot : In
        Issue slot ``slot`` this cycle.
    param_base, relu : In
        The current layer's configuration, held during a layer.
    acc : In(signed(accumulator_bits))
        The accumulator of the slot issued in the previous cycle.
    o : Out(stream.Signature(output_layout(params), always_ready=True))
        The requantized output, :attr:`latency` cycles after its slot was issued.
    param_w : In(LoadSignature)
        Host writes of the row parameters, ``data`` in :func:`row_param_layout` order.

    Latency and back-pressure: a fixed pipeline of :attr:`latency` cycles, one slot per
    cycle, with no back-pressure (``o`` is always ready).
    """

    def __init__(self, params: EngineParameters):
        if not isinstance(params, EngineParameters):
            raise TypeError(f"Parameters must be an EngineParameters, not {params!r}")
        self._params = params
        p = params
        self._row = row_param_layout(p)
        super().__init__({
            "en": In(1),
            "slot": In(range(p.bank_depth)),
            "param_base": In(max(1, p.slot_depth.bit_length())),
            "relu": In(1),
            "acc": In(signed(p.accumulator_bits)),
            "o": Out(stream.Signature(output_layout(p), always_ready=True)),
            "param_w": In(LoadSignature(max(1, (p.slot_depth - 1).bit_length()),
                                        self._row.size)),
        })

    #: Cycles from issuing a slot to its output on ``o``.
    LATENCY = 7

    @property
    def latency(self) -> int:
        """Cycles from issuing a slot to its output on ``o``."""
        return self.LATENCY

    def elaborate(self, platform):
        m = Module()
        p = self._params
        m.submodules.params = rows = Memory(shape=self._row, depth=p.slot_depth, init=[])
        row_wr = rows.write_port()
        row_rd = rows.read_port()
        m.d.comb += [
            row_wr.en.eq(self.param_w.en),
            row_wr.addr.eq(self.param_w.addr),
            row_wr.data.eq(self.param_w.data),
            row_rd.addr.eq(self.param_base + self.slot),
        ]

        # Cycle +1: parameters and accumulator arrive, registered straight out of the
        # memories.
        s1_valid = Signal()
        s1_slot = Signal.like(self.slot)
        m.d.sync += [s1_valid.eq(self.en), s1_slot.eq(self.slot)]
        r_valid = Signal()
        r_slot = Signal.like(self.slot)
        r_acc = Signal(signed(p.accumulator_bits))
        r_row = Signal(self._row)
        m.d.sync += [r_valid.eq(s1_valid), r_slot.eq(s1_slot), r_acc.eq(self.acc),
                     r_row.eq(row_rd.data)]

        # Cycle +2: add the bias.
        s2_valid = Signal()
        s2_slot = Signal.like(self.slot)
        s2_sum = Signal(signed(p.accumulator_bits + 1))
        s2_multiplier = Signal(MULTIPLIER_BITS)
        s2_shift = Signal(6)
        m.d.sync += [
            s2_valid.eq(r_valid),
            s2_slot.eq(r_slot),
            s2_sum.eq(r_acc + r_row.bias),
            s2_multiplier.eq(r_row.multiplier),
            s2_shift.eq(r_row.shift),
        ]

        # Cycle +3: the exact product.
        s3_valid = Signal()
        s3_slot = Signal.like(self.slot)
        s3_product = Signal(signed(p.accumulator_bits + 1 + MULTIPLIER_BITS + 1))
        s3_shift = Signal(6)
        m.d.sync += [
            s3_valid.eq(s2_valid),
            s3_slot.eq(s2_slot),
            s3_product.eq(s2_sum * s2_multiplier),
            s3_shift.eq(s2_shift),
        ]

        # Cycles +4 and +5: shift, then round half up. For shift > 0,
        # (x + 2**(s-1)) >> s == ((x >> (s-1)) + 1) >> 1, which needs no 64-bit rounding term.
        width = s3_product.shape().width
        sh_valid = Signal()
        sh_slot = Signal.like(self.slot)
        sh_partial = Signal(signed(width))
        sh_round = Signal()
        m.d.sync += [
            sh_valid.eq(s3_valid),
            sh_slot.eq(s3_slot),
            sh_partial.eq(Mux(s3_shift == 0, s3_product, s3_product >> (s3_shift - 1)[:6])),
            sh_round.eq(s3_shift != 0),
        ]
        scaled = Signal(signed(width + 1))
        with m.If(sh_round):
            m.d.comb += scaled.eq((sh_partial + 1) >> 1)
        with m.Else():
            m.d.comb += scaled.eq(sh_partial)
        s4_valid = Signal()
        s4_slot = Signal.like(self.slot)
        s4_scaled = Signal.like(scaled)
        m.d.sync += [s4_valid.eq(sh_valid), s4_slot.eq(sh_slot), s4_scaled.eq(scaled)]

        # Cycle +6: clamp (ReLU is a clamp at 0).
        lo, hi = signed_range(p.activation_bits)
        low = Signal(signed(p.activation_bits))
        m.d.comb += low.eq(Mux(self.relu, 0, lo))
        clamped = Signal(signed(p.activation_bits))
        with m.If(s4_scaled > hi):
            m.d.comb += clamped.eq(hi)
        with m.Elif(s4_scaled < low):
            m.d.comb += clamped.eq(low)
        with m.Else():
            m.d.comb += clamped.eq(s4_scaled)
        m.d.sync += [
            self.o.valid.eq(s4_valid),
            self.o.payload.slot.eq(s4_slot),
            self.o.payload.value.eq(clamped),
        ]
        return m
