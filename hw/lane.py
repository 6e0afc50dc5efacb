"""One lane: column pointers, CSR(C) entry decode and multiply-accumulate into its slots."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .parameters import EngineParameters, column_layout

__all__ = ["Lane", "LoadSignature"]


def LoadSignature(addr_bits: int, data_bits: int) -> wiring.Signature:
    """A write strobe into one of a block's memories, from the host's loader."""
    return wiring.Signature({
        "en": Out(1),
        "addr": Out(addr_bits),
        "data": Out(data_bits),
    })


class Lane(wiring.Component):
    """Retire one CSR(C) entry per cycle into the lane's accumulators.

    For each (column, value) taken from ``i`` the lane reads ``pointers[c]`` and
    ``pointers[c + 1]`` (two read ports, ``pointer_base`` added), then walks the column's
    entries in the lane's bit stream (docs/format.md section 3): the stream is held in two
    W-bit memories, even and odd words, so an entry straddling two words is read in one cycle.
    Each entry advances the slot by ``run + 1`` and adds ``value * x`` to that slot's
    accumulator. The accumulators are a memory whose read port is transparent to its write
    port, so consecutive updates of the same slot are forwarded and never stall.

    Pipeline (cycle ``P`` is the cycle the lane takes a column from ``i``):
    ``P`` pointer read; ``P+1`` entry count (and whether the next column may be taken);
    ``P+2`` first bit position; ``P+3 ..`` one entry address per cycle; +1 word data and the
    entry's bits; +2 field extraction and slot; +3 accumulator read and product; +4
    accumulator write.

    Parameters
    ----------
    params : EngineParameters

    Members
    -------
    i : In(stream.Signature(column_layout(params)))
        Nonzero activations, from this lane's FIFO.
    value_bits, run_bits, entry_base, pointer_base, slots : In
        The current layer's configuration (entry base in words); held during a layer.
    idle : Out(1)
        The lane would take a column this cycle: it has finished the cycles of the last one.
    out_en, out_addr : In
        The output stage reads accumulator ``out_addr`` (data on ``out_data`` the next cycle)
        and the lane clears it to zero the cycle after. Only while the lane is idle and drained.
    out_data : Out(signed(accumulator_bits))
    pointer_w, entry_w : In(LoadSignature)
        Host writes of the pointer memory and of entry word ``addr``.

    Latency and back-pressure: ``i.ready`` is high in the cycle ``P + max(1, n)`` after the
    previous column was taken at ``P`` with ``n`` entries (or whenever the lane is idle), so a
    lane retires one entry per cycle in steady state and a column with no entries costs one
    cycle. The last accumulator write lands 6 cycles after the lane becomes idle; the read
    port's transparency makes it visible to a read in that same cycle.
    """

    #: Cycles from the lane going idle to its accumulators being final for a read.
    DRAIN_CYCLES = 6

    def __init__(self, params: EngineParameters):
        if not isinstance(params, EngineParameters):
            raise TypeError(f"Parameters must be an EngineParameters, not {params!r}")
        self._params = params
        p = params
        super().__init__({
            "i": In(stream.Signature(column_layout(p))),
            "value_bits": In(5),
            "run_bits": In(4),
            "entry_base": In(max(1, p.entry_words.bit_length())),
            "pointer_base": In(max(1, p.pointer_depth.bit_length())),
            "slots": In(max(1, p.bank_depth.bit_length())),
            "idle": Out(1),
            "out_en": In(1),
            "out_addr": In(range(p.bank_depth)),
            "out_data": Out(signed(p.accumulator_bits)),
            "pointer_w": In(LoadSignature(max(1, (p.pointer_depth - 1).bit_length()),
                                          p.pointer_bits)),
            "entry_w": In(LoadSignature(max(1, (p.entry_words - 1).bit_length()), p.word_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        p = self._params
        word_bits = p.word_bits
        word_shift = word_bits.bit_length() - 1
        entry_width = p.weight_bits + p.max_run_bits

        # -- Memories -----------------------------------------------------------------------
        m.submodules.pointers = pointers = Memory(shape=p.pointer_bits, depth=p.pointer_depth,
                                                  init=[])
        pointer_wr = pointers.write_port()
        pointer_start = pointers.read_port()
        pointer_end = pointers.read_port()
        m.d.comb += [
            pointer_wr.en.eq(self.pointer_w.en),
            pointer_wr.addr.eq(self.pointer_w.addr),
            pointer_wr.data.eq(self.pointer_w.data),
        ]

        half = p.entry_words // 2
        m.submodules.even = even = Memory(shape=word_bits, depth=half, init=[])
        m.submodules.odd = odd = Memory(shape=word_bits, depth=half, init=[])
        even_wr, odd_wr = even.write_port(), odd.write_port()
        even_rd, odd_rd = even.read_port(), odd.read_port()
        m.d.comb += [
            even_wr.en.eq(self.entry_w.en & ~self.entry_w.addr[0]),
            odd_wr.en.eq(self.entry_w.en & self.entry_w.addr[0]),
            even_wr.addr.eq(self.entry_w.addr >> 1),
            odd_wr.addr.eq(self.entry_w.addr >> 1),
            even_wr.data.eq(self.entry_w.data),
            odd_wr.data.eq(self.entry_w.data),
        ]

        m.submodules.accumulators = accumulators = Memory(
            shape=signed(p.accumulator_bits), depth=p.bank_depth, init=[])
        acc_wr = accumulators.write_port()
        acc_rd = accumulators.read_port(transparent_for=(acc_wr,))

        # -- Take a column, fetch its pointers (cycle P) ------------------------------------
        s1_valid = Signal()
        s1_x = Signal(signed(p.activation_bits))
        hold = Signal(p.pointer_bits)
        m.d.comb += [
            pointer_start.addr.eq(self.pointer_base + self.i.payload.column),
            pointer_end.addr.eq(self.pointer_base + self.i.payload.column + 1),
        ]
        take = Signal()
        m.d.comb += take.eq(self.i.valid & self.i.ready)
        m.d.sync += [s1_valid.eq(take)]
        with m.If(take):
            m.d.sync += s1_x.eq(self.i.payload.value)

        # -- Entry count and first bit position (cycle P + 1) -------------------------------
        count = Signal(p.pointer_bits)
        with m.If(pointer_end.data > pointer_start.data):
            m.d.comb += count.eq(pointer_end.data - pointer_start.data)
        entry_bits = Signal(range(2 * 16 + 1))
        m.d.comb += entry_bits.eq(self.value_bits + self.run_bits)

        with m.If(s1_valid):
            m.d.comb += self.idle.eq(count <= 1)
            with m.If(count > 1):
                m.d.sync += hold.eq(count - 2)
        with m.Else():
            m.d.comb += self.idle.eq(hold == 0)
            with m.If(hold != 0):
                m.d.sync += hold.eq(hold - 1)
        m.d.comb += self.i.ready.eq(self.idle)

        # -- Column hand-off: the column's first bit position (cycle P + 2) ----------------
        s2_valid = Signal()
        s2_start = Signal(p.pointer_bits)
        s2_count = Signal(p.pointer_bits)
        s2_x = Signal(signed(p.activation_bits))
        m.d.sync += s2_valid.eq(s1_valid & (count != 0))
        with m.If(s1_valid):
            m.d.sync += [s2_start.eq(pointer_start.data), s2_count.eq(count), s2_x.eq(s1_x)]

        # -- Entry generator: one bit position per cycle (cycles P + 3 ..) ------------------
        gen_bit = Signal(p.bit_address_bits + 1)
        gen_left = Signal(p.pointer_bits)
        gen_x = Signal(signed(p.activation_bits))
        gen_first = Signal()
        issue = Signal()
        m.d.comb += issue.eq(gen_left != 0)
        with m.If(s2_valid):
            m.d.sync += [
                gen_bit.eq((self.entry_base << word_shift) + s2_start * entry_bits),
                gen_left.eq(s2_count),
                gen_x.eq(s2_x),
                gen_first.eq(1),
            ]
        with m.Elif(issue):
            m.d.sync += [
                gen_bit.eq(gen_bit + entry_bits),
                gen_left.eq(gen_left - 1),
                gen_first.eq(0),
            ]

        word = Signal(p.bit_address_bits + 1 - word_shift)
        m.d.comb += [
            word.eq(gen_bit >> word_shift),
            even_rd.addr.eq((word + 1) >> 1),
            odd_rd.addr.eq(word >> 1),
        ]
        s3_valid = Signal()
        s3_offset = Signal(range(word_bits))
        s3_odd = Signal()
        s3_x = Signal(signed(p.activation_bits))
        s3_first = Signal()
        m.d.sync += [
            s3_valid.eq(issue),
            s3_offset.eq(gen_bit[:word_shift] if word_shift else 0),
            s3_odd.eq(word[0]),
            s3_x.eq(gen_x),
            s3_first.eq(gen_first),
        ]

        # -- Entry bits out of the two words (entry cycle + 1) -----------------------------
        low = Mux(s3_odd, odd_rd.data, even_rd.data)
        high = Mux(s3_odd, even_rd.data, odd_rd.data)
        raw = Signal(entry_width)
        raw_valid = Signal()
        raw_x = Signal(signed(p.activation_bits))
        raw_first = Signal()
        m.d.sync += [
            raw.eq(Cat(low, high) >> s3_offset),
            raw_valid.eq(s3_valid),
            raw_x.eq(s3_x),
            raw_first.eq(s3_first),
        ]

        # -- Field extraction and slot (entry cycle + 2) ------------------------------------
        value_mask = Signal(p.weight_bits)
        m.d.comb += value_mask.eq((Const(1, p.weight_bits + 1) << self.value_bits) - 1)
        magnitude = Signal(p.weight_bits)
        m.d.comb += magnitude.eq(raw & value_mask)
        sign_bit = Signal(5)
        negative = Signal()
        m.d.comb += [
            sign_bit.eq(self.value_bits - 1),
            negative.eq((raw >> sign_bit)[0]),
        ]
        value = Signal(signed(p.weight_bits))
        m.d.comb += value.eq(Mux(negative, magnitude | ~value_mask, magnitude))
        run = Signal(p.max_run_bits)
        run_mask = Signal(p.max_run_bits)
        m.d.comb += [
            run_mask.eq((Const(1, p.max_run_bits + 1) << self.run_bits) - 1),
            run.eq((raw >> self.value_bits) & run_mask),
        ]
        slot = Signal(p.slot_bits)
        s4_valid = Signal()
        s4_slot = Signal(p.slot_bits)
        s4_value = Signal(signed(p.weight_bits))
        s4_x = Signal(signed(p.activation_bits))
        m.d.comb += slot.eq(Mux(raw_first, run, s4_slot + run + 1))
        m.d.sync += s4_valid.eq(raw_valid)
        with m.If(raw_valid):
            m.d.sync += [s4_slot.eq(slot), s4_value.eq(value), s4_x.eq(raw_x)]

        # -- Accumulator read and product (entry cycle + 3), write (entry cycle + 4) ---------
        s5_valid = Signal()
        s5_slot = Signal(p.slot_bits)
        s5_product = Signal(signed(p.product_bits))
        m.d.sync += [
            s5_valid.eq(s4_valid & (s4_slot < self.slots)),
            s5_slot.eq(s4_slot),
            s5_product.eq(s4_value * s4_x),
        ]
        clear_en = Signal()
        clear_addr = Signal(range(p.bank_depth))
        m.d.sync += [clear_en.eq(self.out_en), clear_addr.eq(self.out_addr)]
        with m.If(self.out_en):
            m.d.comb += acc_rd.addr.eq(self.out_addr)
        with m.Else():
            m.d.comb += acc_rd.addr.eq(s4_slot)
        with m.If(clear_en):
            m.d.comb += [acc_wr.en.eq(1), acc_wr.addr.eq(clear_addr), acc_wr.data.eq(0)]
        with m.Else():
            m.d.comb += [
                acc_wr.en.eq(s5_valid),
                acc_wr.addr.eq(s5_slot),
                acc_wr.data.eq(acc_rd.data + s5_product),
            ]
        m.d.comb += self.out_data.eq(acc_rd.data)
        return m
