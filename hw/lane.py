"""One lane: column pointers, CSR(C) entry decode and multiply-accumulate into its slots."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .block_ram import BlockRAM, LoadSignature
from .multiplier import PipelinedMultiplier
from .parameters import EngineParameters, column_layout

__all__ = ["Lane"]


class Lane(wiring.Component):
    """Retire one CSR(C) entry per cycle into the lane's accumulators.

    For each (column, value) accepted on ``i`` the lane reads ``pointers[c]`` and
    ``pointers[c + 1]`` (two read ports, ``pointer_base`` added) and queues (first entry,
    entry count, value) in its FIFO; every memory's read data goes straight into a register
    (the pointer and entry memories' own, :class:`~sparsemac.hw.block_ram.BlockRAM`, and
    their words into a second one beside the lane's logic).
    Taking a column from the FIFO, the lane walks the column's entries in its bit stream
    (docs/format.md section 3): the stream is held in two W-bit memories, even and odd words,
    so an entry straddling two words is read in one cycle. Each entry advances the slot by
    ``run + 1`` and adds ``value * x`` to that slot's accumulator. The accumulator memory's
    read port is not transparent; an update adds the products of the updates ahead of it
    that its read missed, so consecutive updates of the same slot never stall.

    Pipeline. Fetch (cycle ``B`` is the cycle ``i`` accepts a column): ``B+1`` pointer read,
    ``B+2`` the memory's read, ``B+3`` its output register, ``B+4`` pointers registered
    beside the lane, entry count and flags, ``B+5`` FIFO write; the FIFO (its storage read
    synchronously, so a block RAM can hold it) shows the column in ``B+7``. Take (cycle
    ``P``): ``P+1`` first entry and entry width into a multiplier's operand registers, ``P+2``
    its product, the first bit position (a second DSP block beside the product's), ``P+3 ..``
    one entry address per cycle; +1 the two words read, +2 the memories' output registers,
    +3 the words registered beside the decoder and the entry's bits, +4 field extraction, +5
    slot, +6 accumulator read and product, +7 read data and addend registered, +8 sum, +9
    accumulator write.

    A compact lane (``params.compact``, for a slow clock where flip-flops are what
    runs out) has the same cycles with fewer registers: it reads its pointers in ``B+3``
    straight into the logic, carrying the column's index there instead of the pointers
    after the read; registers an entry's word address (+1) and reads the two words without
    the memories' output registers (+2); takes the product's operands a cycle later (+6),
    and reads its accumulator in + 7, straight into the sum, which it writes in + 8; and
    uses the core's configuration register itself.

    Parameters
    ----------
    params : EngineParameters
    capacity : int
        Columns accepted and not yet taken the lane can hold: the FIFO is this deep. The
        sender counts them (:class:`~sparsemac.hw.broadcast.Broadcast`) and never exceeds it.

    Members
    -------
    i : In(stream.Signature(column_layout(params), always_ready=True))
        Nonzero activations, from the broadcast; at most :attr:`capacity` accepted and not
        yet taken.
    value_bits, run_bits, entry_base, pointer_base, slots : In
        The current layer's configuration (entry base in words); held during a layer, from
        at least two cycles before its first column.
    take : Out(1)
        The lane takes a column from its FIFO this cycle (cycle ``P``).
    free : Out(1)
        The lane has finished the cycles of its last column (it may take one this cycle).
    out_en, out_addr : In
        The output stage reads accumulator ``out_addr`` (data on ``out_data`` the next cycle)
        and the lane clears it to zero the cycle after. Only while the lane is idle and drained.
    out_data : Out(signed(accumulator_bits))
    pointer_w, entry_w : In(LoadSignature)
        Host writes of the pointer memory and of entry word ``addr``.

    Latency and back-pressure: a column accepted in ``B`` is taken at the earliest in
    ``B + 7`` (:attr:`FETCH_CYCLES`). A column taken in ``P`` with ``n`` entries keeps the
    lane until ``P + max(1, n)``, when it may take the next, so a lane retires one entry per
    cycle in steady state and a column with no entries costs one cycle. The last accumulator
    write lands :attr:`DRAIN_CYCLES` cycles after the lane becomes free; a read in the next
    cycle sees it.
    """

    #: Cycles from accepting a column on ``i`` to the first cycle it may be taken.
    FETCH_CYCLES = 7
    #: Cycles from the lane going free to its last accumulator write (inclusive; a compact
    #: lane's lands a cycle earlier, and the cycle model keeps this one).
    DRAIN_CYCLES = 11

    def __init__(self, params: EngineParameters, *, capacity: int):
        if not isinstance(params, EngineParameters):
            raise TypeError(f"Parameters must be an EngineParameters, not {params!r}")
        if not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"Lane capacity must be a positive integer, not {capacity!r}")
        self._params = params
        self._capacity = capacity
        p = params
        super().__init__({
            "i": In(stream.Signature(column_layout(p), always_ready=True)),
            "value_bits": In(5),
            "run_bits": In(4),
            "entry_base": In(max(1, p.entry_words.bit_length())),
            "pointer_base": In(max(1, p.pointer_depth.bit_length())),
            "slots": In(max(1, p.bank_depth.bit_length())),
            "take": Out(1),
            "free": Out(1),
            "out_en": In(1),
            "out_addr": In(range(p.bank_depth)),
            "out_data": Out(signed(p.accumulator_bits)),
            "pointer_w": In(LoadSignature(max(1, (p.pointer_depth - 1).bit_length()),
                                          p.pointer_bits)),
            "entry_w": In(LoadSignature(max(1, (p.entry_words - 1).bit_length()), p.word_bits)),
        })

    @property
    def capacity(self) -> int:
        """Columns accepted and not yet taken that the lane can hold."""
        return self._capacity

    def elaborate(self, platform):
        m = Module()
        p = self._params
        word_bits = p.word_bits
        word_shift = word_bits.bit_length() - 1
        entry_width = p.weight_bits + p.max_run_bits

        # -- Memories -----------------------------------------------------------------------
        # The pointer and entry memories' words come out of a register two cycles after
        # the address (on the ECP5 the block RAM's own, hw/block_ram.py); a compact lane's
        # straight out of the memory, a cycle after.
        compact = p.compact
        m.submodules.pointer_ram = pointers = BlockRAM(p.pointer_bits, p.pointer_depth,
                                                       read_ports=2, name="pointers",
                                                       output_register=not compact)
        pointer_start, pointer_end = pointers.read
        wiring.connect(m, wiring.flipped(self.pointer_w), pointers.write)
        m.d.comb += [pointer_start.en.eq(1), pointer_end.en.eq(1)]

        # Each entry memory has one address, the host's while it loads and the decoder's
        # otherwise (loading and computing never overlap), and no read while it is written:
        # what a single-port RAM needs, so Yosys can map them to the UP5K's SPRAM.
        half = p.entry_words // 2
        m.submodules.even_ram = even = BlockRAM(word_bits, half, name="even",
                                                output_register=not compact)
        m.submodules.odd_ram = odd = BlockRAM(word_bits, half, name="odd",
                                              output_register=not compact)
        (even_rd,), (odd_rd,) = even.read, odd.read
        even_addr = Signal.like(even_rd.addr)
        odd_addr = Signal.like(odd_rd.addr)
        m.d.comb += [
            even.write.en.eq(self.entry_w.en & ~self.entry_w.addr[0]),
            odd.write.en.eq(self.entry_w.en & self.entry_w.addr[0]),
            even.write.addr.eq(even_addr),
            odd.write.addr.eq(odd_addr),
            even_rd.addr.eq(even_addr),
            odd_rd.addr.eq(odd_addr),
            even_rd.en.eq(~even.write.en),
            odd_rd.en.eq(~odd.write.en),
            even.write.data.eq(self.entry_w.data),
            odd.write.data.eq(self.entry_w.data),
        ]

        m.submodules.accumulators = accumulators = Memory(
            shape=signed(p.accumulator_bits), depth=p.bank_depth, init=[])
        acc_wr = accumulators.write_port()
        acc_rd = accumulators.read_port()

        # -- The layer's configuration, registered in the lane ------------------------------
        # (the configuration comes from one register for all lanes; copies here keep its
        # routing out of the lane's paths). A compact lane uses that register itself.
        pointer_first = Signal.like(self.pointer_base)
        pointer_last = Signal(len(self.pointer_base) + 1)
        value_bits = Signal.like(self.value_bits)
        slots = Signal.like(self.slots)
        base_bit = Signal(p.bit_address_bits + 1)         # the layer's first entry bit
        m.d.sync += pointer_last.eq(self.pointer_base + 1)
        configuration = [
            pointer_first.eq(self.pointer_base),
            value_bits.eq(self.value_bits),
            slots.eq(self.slots),
            base_bit.eq(self.entry_base << word_shift),
        ]
        if compact:
            m.d.comb += configuration
        else:
            m.d.sync += configuration

        # -- Pointer fetch, ahead of the FIFO (cycles B .. B+5) ------------------------------
        # The sender's credits keep the columns accepted and not yet taken within the FIFO's
        # depth, so it never overflows although its writes land five cycles after acceptance.
        take = Signal()
        f1_valid = Signal()
        f1_column = Signal.like(self.i.payload.column)
        f1_x = Signal(signed(p.activation_bits))
        m.d.sync += [f1_valid.eq(self.i.valid), f1_column.eq(self.i.payload.column),
                     f1_x.eq(self.i.payload.value)]
        f2_valid = Signal()
        f2_x = Signal(signed(p.activation_bits))
        m.d.sync += [f2_valid.eq(f1_valid), f2_x.eq(f1_x)]
        f3_valid = Signal()
        f3_x = Signal(signed(p.activation_bits))
        m.d.sync += [f3_valid.eq(f2_valid), f3_x.eq(f2_x)]
        # The column's pointers reach the logic in B+4. The standard lane reads them at once
        # (B+1), out of the memory's output register (B+3), and registers them again beside
        # its logic (B+4): on the ECP5 the route from a block RAM took most of a cycle. A
        # compact lane carries the column's index two cycles more instead of the two
        # pointers twice, and reads them in B+3 straight into the logic.
        if compact:
            f2_column = Signal.like(f1_column)
            f3_column = Signal.like(f1_column)
            m.d.sync += [f2_column.eq(f1_column), f3_column.eq(f2_column)]
            read_column = f3_column
        else:
            read_column = f1_column
        m.d.comb += [
            pointer_start.addr.eq(pointer_first + read_column),
            pointer_end.addr.eq(pointer_last + read_column),
        ]
        f4_valid = Signal()
        f4_x = Signal(signed(p.activation_bits))
        f4_start = Signal(p.pointer_bits)
        f4_end = Signal(p.pointer_bits)
        m.d.sync += [f4_valid.eq(f3_valid), f4_x.eq(f3_x)]
        pointers_in = [f4_start.eq(pointer_start.data), f4_end.eq(pointer_end.data)]
        if compact:
            m.d.comb += pointers_in
        else:
            m.d.sync += pointers_in

        # What the take decides from is computed here, ahead of the FIFO: whether the column
        # has entries (B+4, registered) and whether it keeps the lane one cycle only (from
        # the registered count, on the way into the FIFO). Writing the FIFO straight from the
        # comparison and subtractions was each lane's longest path on the ECP5; the count's
        # and the flag's carry chains one after the other, the UP5K's.
        counted = data.StructLayout({
            "start": unsigned(p.pointer_bits),
            "count": unsigned(p.pointer_bits),
            "entries": unsigned(1),
            "x": signed(p.activation_bits),
        })
        fetched = data.StructLayout({**dict(counted.members), "single": unsigned(1)})
        # The count is the difference whatever its sign: it is read only for a column with
        # entries that keeps the lane two cycles or more, so the subtraction and the
        # comparison run side by side, not one into the other's choice.
        f4_out = Signal(counted)
        m.d.comb += [f4_out.start.eq(f4_start), f4_out.x.eq(f4_x),
                     f4_out.count.eq(f4_end - f4_start), f4_out.entries.eq(f4_end > f4_start)]
        f5_valid = Signal()
        f5_out = Signal(counted)
        m.d.sync += [f5_valid.eq(f4_valid), f5_out.eq(f4_out)]
        queued = Signal(fetched)
        m.d.comb += [queued[name].eq(f5_out[name]) for name in counted.members]
        m.d.comb += queued.single.eq(~f5_out.entries | (f5_out.count <= 1))
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=fetched.size, depth=self._capacity)
        m.d.comb += [fifo.w_en.eq(f5_valid), fifo.w_data.eq(queued)]
        head = Signal(fetched)
        m.d.comb += head.eq(fifo.r_data)

        # -- Take a column (cycle P): it keeps the lane for max(1, n) cycles -----------------
        # ``take`` (the FIFO holds a column and the lane is free) is a register, decided a
        # cycle ahead from the FIFO's level (which counts a column a cycle before the FIFO
        # shows it) and the lane's next ``free``: it drives the FIFO, the lane and the
        # broadcast's credits, and no memory read reaches it.
        free = Signal(init=1)
        left = Signal(p.pointer_bits)
        free_next = Signal()
        queued_next = Signal()
        m.d.comb += [
            fifo.r_en.eq(take),
            self.take.eq(take),
            self.free.eq(free),
        ]
        # ``left`` counts a column's cycles down from n; the lane is free again after the
        # cycle that sees 2 (a column of n <= 1 frees it at once, from its flag).
        with m.If(take):
            m.d.comb += free_next.eq(head.single)
            m.d.sync += left.eq(head.count)
        with m.Elif(~free):
            m.d.comb += free_next.eq(left == 2)
            m.d.sync += left.eq(left - 1)
        with m.Else():
            m.d.comb += free_next.eq(free)
        m.d.comb += queued_next.eq(fifo.r_level > take)
        m.d.sync += [free.eq(free_next), take.eq(free_next & queued_next)]

        entry_bits = Signal(range(2 * 16 + 1))
        m.d.sync += entry_bits.eq(self.value_bits + self.run_bits)

        # -- The column's first bit position (cycles P+1, P+2) ------------------------------
        # First entry times entry width, in a multiplier (a DSP block) with its operand and
        # product registers: in logic, by shift and add, it took two 20-bit carry chains.
        m.submodules.first_bit = first_bit = PipelinedMultiplier(
            unsigned(p.pointer_bits), unsigned(len(entry_bits)), latency=2)
        m.d.comb += [first_bit.a.eq(head.start), first_bit.b.eq(entry_bits)]
        s1_valid = Signal()
        s1_x = Signal(signed(p.activation_bits))
        m.d.sync += [s1_valid.eq(take & head.entries), s1_x.eq(head.x)]
        s2_valid = Signal()
        s2_offset = Signal(p.bit_address_bits + 1)
        s2_x = Signal(signed(p.activation_bits))
        m.d.comb += s2_offset.eq(first_bit.p)
        m.d.sync += [s2_valid.eq(s1_valid), s2_x.eq(s1_x)]

        # -- Entry generator: one bit position per cycle (cycles P + 3 ..) ------------------
        # The lane spends cycles P .. P + n - 1 on a column of n >= 1 entries, and the
        # generator issues them in P + 3 .. P + n + 2: ``issue`` is that flag three cycles
        # later, so the generator keeps no count of its own (``left`` is the lane's).
        spending = Signal()
        m.d.comb += spending.eq((take & head.entries) | ~free)
        spent = Signal(2)
        issue = Signal()
        m.d.sync += [spent.eq(Cat(spending, spent[0])), issue.eq(spent[1])]
        gen_bit = Signal(p.bit_address_bits + 1)
        gen_x = Signal(signed(p.activation_bits))
        gen_first = Signal()
        with m.If(s2_valid):
            m.d.sync += [
                gen_bit.eq(base_bit + s2_offset),
                gen_x.eq(s2_x),
                gen_first.eq(1),
            ]
        with m.Elif(issue):
            m.d.sync += [
                gen_bit.eq(gen_bit + entry_bits),
                gen_first.eq(0),
            ]

        word = Signal(p.bit_address_bits + 1 - word_shift)
        m.d.comb += word.eq(gen_bit >> word_shift)
        # The words arrive in entry cycle + 2: read at once through the memories' output
        # registers, or, in a compact lane, read a cycle later (the word address registered,
        # fewer bits than the two words) without them.
        if compact:
            read_word = Signal.like(word)
            m.d.sync += read_word.eq(word)
        else:
            read_word = word
        with m.If(self.entry_w.en):
            m.d.comb += [even_addr.eq(self.entry_w.addr >> 1), odd_addr.eq(self.entry_w.addr >> 1)]
        with m.Else():
            m.d.comb += [even_addr.eq((read_word + 1) >> 1), odd_addr.eq(read_word >> 1)]
        e1_valid = Signal()
        e1_offset = Signal(range(word_bits))
        e1_odd = Signal()
        e1_x = Signal(signed(p.activation_bits))
        e1_first = Signal()
        m.d.sync += [
            e1_valid.eq(issue),
            e1_offset.eq(gen_bit[:word_shift] if word_shift else 0),
            e1_odd.eq(word[0]),
            e1_x.eq(gen_x),
            e1_first.eq(gen_first),
        ]

        # -- The two words out of the memories' output registers (entry cycle + 2),
        # registered again beside the lane's logic (+3), as the pointers are.
        e2_valid = Signal()
        e2_offset = Signal(range(word_bits))
        e2_odd = Signal()
        e2_x = Signal(signed(p.activation_bits))
        e2_first = Signal()
        m.d.sync += [
            e2_valid.eq(e1_valid), e2_offset.eq(e1_offset), e2_odd.eq(e1_odd), e2_x.eq(e1_x),
            e2_first.eq(e1_first),
        ]
        e3_valid = Signal()
        e3_even = Signal(word_bits)
        e3_odd_word = Signal(word_bits)
        e3_offset = Signal(range(word_bits))
        e3_odd = Signal()
        e3_x = Signal(signed(p.activation_bits))
        e3_first = Signal()
        m.d.sync += [
            e3_valid.eq(e2_valid), e3_even.eq(even_rd.data), e3_odd_word.eq(odd_rd.data),
            e3_offset.eq(e2_offset), e3_odd.eq(e2_odd), e3_x.eq(e2_x), e3_first.eq(e2_first),
        ]

        # -- The entry's bits out of the two words (entry cycle + 3) ------------------------
        low = Mux(e3_odd, e3_odd_word, e3_even)
        high = Mux(e3_odd, e3_even, e3_odd_word)
        raw = Signal(entry_width)
        raw_valid = Signal()
        raw_x = Signal(signed(p.activation_bits))
        raw_first = Signal()
        m.d.sync += [
            raw.eq(Cat(low, high) >> e3_offset),
            raw_valid.eq(e3_valid),
            raw_x.eq(e3_x),
            raw_first.eq(e3_first),
        ]

        # -- Field extraction (entry cycle + 4) ---------------------------------------------
        # The layer's masks and sign position are registers, not decoded from the
        # configuration in the path.
        value_mask = Signal(p.weight_bits)
        sign_mask = Signal(p.weight_bits)
        run_mask = Signal(p.max_run_bits)
        m.d.sync += [
            value_mask.eq((Const(1, p.weight_bits + 1) << self.value_bits) - 1),
            sign_mask.eq((Const(1, p.weight_bits + 1) << self.value_bits) >> 1),
            run_mask.eq((Const(1, p.max_run_bits + 1) << self.run_bits) - 1),
        ]
        magnitude = Signal(p.weight_bits)
        m.d.comb += magnitude.eq(raw & value_mask)
        negative = Signal()
        m.d.comb += negative.eq((raw[:p.weight_bits] & sign_mask).any())
        value = Signal(signed(p.weight_bits))
        m.d.comb += value.eq(Mux(negative, magnitude | ~value_mask, magnitude))
        run = Signal(p.max_run_bits)
        m.d.comb += run.eq((raw >> value_bits) & run_mask)
        d_valid = Signal()
        d_value = Signal(signed(p.weight_bits))
        d_run = Signal(p.max_run_bits)
        d_x = Signal(signed(p.activation_bits))
        d_first = Signal()
        m.d.sync += [d_valid.eq(raw_valid), d_value.eq(value), d_run.eq(run), d_x.eq(raw_x),
                     d_first.eq(raw_first)]

        # -- Slot (entry cycle + 5) ---------------------------------------------------------
        slot = Signal(p.slot_bits)
        s4_valid = Signal()
        s4_slot = Signal(p.slot_bits)
        m.d.comb += slot.eq(Mux(d_first, d_run, s4_slot + d_run + 1))
        m.d.sync += s4_valid.eq(d_valid)
        with m.If(d_valid):
            m.d.sync += s4_slot.eq(slot)
        # The product's operand registers (+5) and product register (+6) are the multiplier's
        # (on the ECP5 its DSP block's own: with fabric registers on either side, the routes
        # into and out of the DSP column were the 16-lane build's longest paths). They take
        # every cycle; only valid updates use the product. A compact lane takes the operands
        # a cycle later, so that its product register (+7) feeds the sum itself: Yosys takes
        # the operands' and product's registers into the UP5K's SB_MAC16 only when the
        # product register feeds logic, not another register.
        m.submodules.multiplier = multiplier = PipelinedMultiplier(
            signed(p.weight_bits), signed(p.activation_bits), latency=2)
        if compact:
            s4_value = Signal.like(d_value, reset_less=True)
            s4_x = Signal.like(d_x, reset_less=True)
            m.d.sync += [s4_value.eq(d_value), s4_x.eq(d_x)]
            m.d.comb += [multiplier.a.eq(s4_value), multiplier.b.eq(s4_x)]
        else:
            m.d.comb += [multiplier.a.eq(d_value), multiplier.b.eq(d_x)]

        # -- Accumulator read and product, sum and write: the lane retires an update into its
        # accumulator memory at entry cycle + 9 (a compact lane at + 8). The RAM returns
        # anything for a read of the slot written in the same cycle (hw/boards
        # NO_READ_MEETS_WRITE), so an update takes the sums of the updates ahead of it whose
        # writes its read misses, when they hit its slot.
        s5_valid = Signal()
        s5_slot = Signal(p.slot_bits)
        m.d.sync += [s5_valid.eq(s4_valid & (s4_slot < slots)), s5_slot.eq(s4_slot)]
        write_valid, write_slot, write_total, read_valid, read_slot = (
            self._accumulate_compact(m, p, s5_valid, s5_slot, multiplier.p, acc_rd) if compact
            else self._accumulate_standard(m, p, s4_valid, s4_slot, s5_valid, s5_slot,
                                           multiplier.p, acc_rd))

        clear_en = Signal()
        clear_addr = Signal(range(p.bank_depth))
        m.d.sync += [clear_en.eq(self.out_en), clear_addr.eq(self.out_addr)]
        # The read address is the update's while one is reading, the output stage's otherwise
        # (it reads only while the lane is drained): a register of the lane's own selects it.
        # Selected by ``out_en``, the core's walk register reached all 16 lanes' read
        # addresses through two LUTs (a worst path of the 16-lane ULX3S build).
        with m.If(read_valid):
            m.d.comb += acc_rd.addr.eq(read_slot)
        with m.Else():
            m.d.comb += acc_rd.addr.eq(self.out_addr)
        with m.If(clear_en):
            m.d.comb += [acc_wr.en.eq(1), acc_wr.addr.eq(clear_addr), acc_wr.data.eq(0)]
        with m.Else():
            m.d.comb += [
                acc_wr.en.eq(write_valid),
                acc_wr.addr.eq(write_slot),
                acc_wr.data.eq(write_total),
            ]
        m.d.comb += self.out_data.eq(acc_rd.data)
        return m

    @staticmethod
    def _accumulate_standard(m, p, s4_valid, s4_slot, s5_valid, s5_slot, s5_product, acc_rd):
        """The ECP5's loop: the accumulator read in s4 (entry cycle + 6) goes straight into a
        register. Returns the write's (valid, slot, total) and the read's (valid, slot)."""
        # Accumulator read and product (entry cycle + 6), read data and addend registered
        # (+7), sum (+8) and accumulator write (+9, from a register). An update's read misses
        # the writes of the three updates ahead of it: the third writes in the cycle of the
        # read, which returns anything then (hw/boards NO_READ_MEETS_WRITE), the other two
        # later. Rather than forward 32-bit sums past the RAM, the update adds the products
        # of the two nearer ones to its own when they hit its slot (the sum is the same), and
        # takes the third's sum instead of the read when it hits: the RAM's read data goes
        # straight into a register, and the sum is one 2:1 multiplexer after its registers.
        s5_hit1, s5_hit2, s5_hit3 = Signal(), Signal(), Signal()
        s6_valid = Signal()
        s6_slot = Signal(p.slot_bits)
        s6_product = Signal(signed(p.product_bits))
        w1_valid = Signal()
        w1_slot = Signal(p.slot_bits)
        w1_product = Signal(signed(p.product_bits))
        m.d.sync += [
            # The updates one, two and three ahead of s4's: in s5, s6 and w1.
            s5_hit1.eq(s5_valid & (s5_slot == s4_slot)),
            s5_hit2.eq(s6_valid & (s6_slot == s4_slot)),
            s5_hit3.eq(w1_valid & (w1_slot == s4_slot)),
        ]
        s6_read = Signal(signed(p.accumulator_bits))
        s6_addend = Signal(signed(p.product_bits + 2))
        s6_hit3 = Signal()
        w1_total = Signal(signed(p.accumulator_bits))
        w2_total = Signal(signed(p.accumulator_bits))
        s6_forward = Signal(signed(p.accumulator_bits))
        m.d.sync += [
            s6_valid.eq(s5_valid),
            s6_slot.eq(s5_slot),
            s6_product.eq(s5_product),
            s6_read.eq(acc_rd.data),
            s6_addend.eq(s5_product + Mux(s5_hit1, s6_product, 0)
                         + Mux(s5_hit2, w1_product, 0)),
            s6_hit3.eq(s5_hit3),
            w1_valid.eq(s6_valid),
            w1_slot.eq(s6_slot),
            w1_product.eq(s6_product),
            w2_total.eq(w1_total),
            s6_forward.eq(w2_total),                # the sum of s5's update's third ahead
        ]
        total = Signal(signed(p.accumulator_bits))
        m.d.comb += total.eq(Mux(s6_hit3, s6_forward, s6_read) + s6_addend)
        m.d.sync += w1_total.eq(total)
        return w1_valid, w1_slot, w1_total, s4_valid, s4_slot

    @staticmethod
    def _accumulate_compact(m, p, s5_valid, s5_slot, s6_product, acc_rd):
        """The compact loop: the accumulator read in s5 (entry cycle + 7) goes straight into
        the sum (+8), and so does the product (``s6_product``, the multiplier's register), and
        the sum is written in the same cycle (+8, a cycle before the standard lane's write).
        The read misses only the write of the update one ahead of it, in the cycle of the
        read: the update takes that one's sum, registered, instead of its read when it hits
        its slot. Returns as :meth:`_accumulate_standard`."""
        s6_valid = Signal()
        s6_slot = Signal(p.slot_bits)
        s6_hit = Signal()
        m.d.sync += [
            s6_valid.eq(s5_valid),
            s6_slot.eq(s5_slot),
            s6_hit.eq(s6_valid & (s6_slot == s5_slot)),      # the update one ahead of s5's
        ]
        total = Signal(signed(p.accumulator_bits))
        ahead = Signal(signed(p.accumulator_bits))           # its sum, a cycle later
        m.d.comb += total.eq(Mux(s6_hit, ahead, acc_rd.data) + s6_product)
        m.d.sync += ahead.eq(total)
        return s6_valid, s6_slot, total, s5_valid, s5_slot
