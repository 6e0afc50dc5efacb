"""The command processor: the byte protocol of docs/protocol.md, engine side."""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from sparsemac.sw.golden import EngineTiming
from sparsemac.sw.numerics import MAX_SHIFT
from sparsemac.sw.protocol import (COMMAND_SYNC, ITEM_BYTES, MAX_PAYLOAD, PROTOCOL_VERSION,
                                   RESPONSE_SYNC, WRITE_HEADER, BuildInfo, Opcode, Status,
                                   Target)

from .core import LoadTarget, load_bus_signature
from .parameters import EngineParameters, layer_layout, row_param_layout

__all__ = ["CommandProcessor", "build_info"]


def build_info(params: EngineParameters, timing: EngineTiming) -> BuildInfo:
    """What INFO reports for a build."""
    p = params
    return BuildInfo(lanes=p.lanes, weight_bits=p.weight_bits,
                     activation_bits=p.activation_bits, accumulator_bits=p.accumulator_bits,
                     max_run_bits=p.max_run_bits, word_bits=p.word_bits,
                     entry_words=p.entry_words,
                     pointer_depth=p.pointer_depth, slot_depth=p.slot_depth,
                     bank_depth=p.bank_depth, layer_depth=p.layer_depth,
                     pointer_bits=p.pointer_bits, timing=timing)


def _below(value, bound: int):
    """``value < bound`` for an unsigned value and a positive constant, compared on the bits
    ``bound`` needs (the bits above must be zero)."""
    bits = bound.bit_length()
    if bits >= len(value):
        return value < bound
    return (value[bits:] == 0) & (value[:bits] < bound)


def _at_most(value, bound: int):
    """``value <= bound``, as :func:`_below`."""
    return _below(value, bound + 1)


#: The targets of a WRITE item, in the order of the command processor's one-hot ``target``.
_TARGETS = (Target.POINTER, Target.ENTRY, Target.PARAM, Target.LAYER)


class _Reply(enum.Enum, shape=3):
    NONE = 0
    INFO = 1
    STATUS = 2
    WORD = 3
    OUTPUT = 4


class CommandProcessor(wiring.Component):
    """Decode command frames from ``i``, drive the core, answer every frame on ``o``.

    Frames and their checks are docs/protocol.md. A frame with an unknown opcode, a bad
    length or a bad field is consumed to its end and answered with an error status; a length
    above :data:`~sparsemac.sw.protocol.MAX_PAYLOAD` is answered at once. Bytes outside a
    frame that are not the sync byte are dropped.

    Parameters
    ----------
    params : EngineParameters
    timing : EngineTiming
        The core's cycle-model constants, reported by INFO.

    Members
    -------
    i : In(stream.Signature(8))
        Command bytes.
    o : Out(stream.Signature(8))
        Response bytes.
    core_* : the core's control, status, load and activation-read ports (see :class:`Core`).

    Latency and back-pressure: one command byte per cycle at most (a WRITE item costs three
    extra cycles: its checks, then their verdict, are registered before the write);
    ``i.ready`` is low while the processor executes a command or sends a response, and every
    response byte waits for ``o.ready``. ``o.valid`` never depends on ``o.ready``. The load
    bus and the start and clear pulses to the core are registers: a memory write lands in the
    cycle after the state that issues it, and the core sees a RUN's start or a RESET's clear
    one cycle after it is decided.
    """

    def __init__(self, params: EngineParameters, timing: EngineTiming):
        if not isinstance(params, EngineParameters):
            raise TypeError(f"Parameters must be an EngineParameters, not {params!r}")
        if params.word_bits < 8:
            raise ValueError(f"Entry word width must be at least 8 bits for the byte "
                             f"protocol, not {params.word_bits!r}")
        self._params = params
        self._info = build_info(params, timing)
        p = params
        super().__init__({
            "i": In(stream.Signature(8)),
            "o": Out(stream.Signature(8)),
            "core_start": Out(1),
            "core_first_layer": Out(range(p.layer_depth)),
            "core_layer_count": Out(range(p.layer_depth + 1)),
            "core_clear": Out(1),
            "core_busy": In(1),
            "core_cycles": In(32),
            "core_result_buffer": In(1),
            "core_result_slots": In(max(1, p.bank_depth.bit_length())),
            "core_load": Out(load_bus_signature(p)),
            "core_act_en": Out(1),
            "core_act_lane": Out(range(p.lanes)),
            "core_act_buffer": Out(1),
            "core_act_addr": Out(range(p.bank_depth)),
            "core_act_data": In(p.activation_bits),
        })

    def elaborate(self, platform):
        m = Module()
        p = self._params
        lanes = p.lanes
        act_bytes = p.activation_bits // 8
        byte = self.i.payload

        # The opcode in three bits, 0 for one the protocol does not define (the defined ones
        # are 1 to 7): every decision that switches on it decodes three bits, not eight.
        opcode = Signal(3)
        # The length's bits up to MAX_PAYLOAD's, and whether any bit above is set: its
        # checks compare 21 bits and a flag, not 32 bits.
        length = Signal(range(MAX_PAYLOAD + 1))
        length_high = Signal()
        remaining = Signal.like(length)
        done = Signal()                            # remaining == 0, kept as a register
        index = Signal(range(32))                  # the byte of the length or item received
        item = Signal(24 * 8)
        status = Signal(8)
        # status == OK a cycle late: WriteVerdict's view (its two states before never change
        # the status), kept off its path.
        status_ok = Signal()
        m.d.sync += status_ok.eq(status == Status.OK)
        reply = Signal(_Reply)
        info = self._info.to_bytes()
        status_payload = 1 + 4 + 4                 # STATUS's flags, cycles and count
        # The longest payload a reply has: INFO's, STATUS's or READ_OUTPUT's (whose count the
        # verdict holds within the result). Its length field's upper bytes are zero.
        most_reply_bytes = max(len(info), status_payload, lanes * p.bank_depth * act_bytes)
        # The byte of the reply sent (its length field's, or a table's: READ_OUTPUT's payload
        # is counted by `to_send`).
        reply_index = Signal(range(max(len(info), status_payload)))
        reply_length = Signal(range(most_reply_bytes + 1))
        length_field = Cat(reply_length, Const(0, 32 - len(reply_length)))
        reply_empty = Signal()                     # reply_length == 0, kept as a register
        payload_last = Signal.like(reply_index)    # the last payload byte's index
        output_length = Signal.like(reply_length)  # READ_OUTPUT's payload bytes
        reply_word = Signal(32)
        to_send = Signal(range(lanes * p.bank_depth + 1))   # activations READ_OUTPUT has left
        last_output = Signal()                     # to_send == 1, kept as a register

        has_input = Signal()
        has_result = Signal()
        layer_loaded = Signal(p.layer_depth)
        result_count = Signal(32)
        m.d.comb += result_count.eq(Const(lanes) * self.core_result_slots)

        # A WRITE's target, one bit per kind in the order of _TARGETS (none for an unknown
        # one): the states after the header test a bit, not an 8-bit comparison.
        target = Signal(len(_TARGETS))
        lane = Signal(8)
        # The item's address on the bits the deepest memory needs, and whether the header's
        # address had a bit above them. The first item past a memory's end stops the writes
        # (its status is no longer OK), so the narrow address never needs to wrap.
        depths = {Target.POINTER: p.pointer_depth, Target.ENTRY: p.entry_words,
                  Target.PARAM: p.slot_depth, Target.LAYER: p.layer_depth}
        address_bits = max(depths.values()).bit_length()
        address = Signal(address_bits)
        address_high = Signal()
        written = Signal(range(MAX_PAYLOAD + 1))
        bank_lane = Signal(range(lanes))
        bank_addr = Signal(range(p.bank_depth + 1))
        low_byte = Signal(8)
        act_data = Signal(p.activation_bits)

        def respond(kind=_Reply.NONE, code=None):
            # The status is OK from Dispatch on unless a check set it: most answers keep it,
            # and the fewer states write it, the shorter its clock enable's logic.
            if code is not None:
                m.d.sync += status.eq(code)
            m.d.sync += [reply.eq(kind), reply_index.eq(0)]
            m.next = "ReplySync"

        def skip_then(code):
            m.d.sync += status.eq(code)
            m.next = "Skip"

        def count_byte():
            m.d.sync += [remaining.eq(remaining - 1), done.eq(remaining == 1)]

        def collect_byte():
            m.d.sync += [item.word_select(index[:5], 8).eq(byte), index.eq(index + 1)]
            count_byte()

        def take_byte():
            m.d.comb += self.i.ready.eq(1)
            return self.i.valid

        # -- Checks of a WRITE item ---------------------------------------------------------
        # The index of an item's last byte, registered when the WRITE's header is executed.
        last_byte = Signal(range(24))
        item_last = Signal(range(24))
        with m.Switch(item[0:8]):
            for kind, size in ((Target.POINTER, ITEM_BYTES[Target.POINTER]),
                               (Target.ENTRY, p.word_bits // 8),
                               (Target.PARAM, ITEM_BYTES[Target.PARAM]),
                               (Target.LAYER, ITEM_BYTES[Target.LAYER])):
                with m.Case(kind):
                    m.d.comb += item_last.eq(size - 1)

        row = layer_layout(p)
        columns, groups, slots = item[0:32], item[32:48], item[48:64]
        value_bits, run_bits, relu = item[64:72], item[72:80], item[80:88]
        entry_base, pointer_base, param_base = item[96:128], item[128:160], item[160:192]
        # Each check is registered on its own (the item holds during WriteCheck), so no
        # check reaches the memories' write enables in the cycle it is computed. Comparisons
        # with a bound run on the bits the bound needs; the bits above must be zero.
        group_bits = p.bank_depth.bit_length()
        pointer_bits = p.pointer_depth.bit_length()
        slot_bits = p.slot_depth.bit_length()
        narrow_groups = groups[:group_bits]
        narrow_columns = columns[:p.column_bits]
        layer_checks = [
            (columns != 0), _at_most(columns, lanes * p.bank_depth),
            (groups[group_bits:] == 0),
            (narrow_groups * lanes >= narrow_columns),
            ((narrow_groups - 1) * lanes < narrow_columns),
            (slots != 0), _at_most(slots, p.bank_depth),
            (value_bits >= 4), _at_most(value_bits, p.weight_bits),
            (run_bits != 0), _at_most(run_bits, p.max_run_bits),
            _at_most(relu, 1), (item[88:96] == 0),
            _below(entry_base, p.entry_words),
            (pointer_base[pointer_bits:] == 0), (columns[pointer_bits:] == 0),
            (pointer_base[:pointer_bits] + columns[:pointer_bits] + 1 <= p.pointer_depth),
            (param_base[slot_bits:] == 0), (slots[slot_bits:] == 0),
            (param_base[:slot_bits] + slots[:slot_bits] <= p.slot_depth),
        ]
        layer_passed = Signal(len(layer_checks))
        m.d.sync += layer_passed.eq(Cat(*layer_checks))
        layer_ok = Signal()
        m.d.comb += layer_ok.eq(layer_passed.all())
        layer_data = Signal(row)
        m.d.comb += [
            layer_data.columns.eq(columns), layer_data.groups.eq(groups),
            layer_data.slots.eq(slots), layer_data.value_bits.eq(value_bits),
            layer_data.run_bits.eq(run_bits), layer_data.relu.eq(relu),
            layer_data.entry_base.eq(entry_base), layer_data.pointer_base.eq(pointer_base),
            layer_data.param_base.eq(param_base),
        ]
        acc_bits = p.accumulator_bits
        # The bias fits the accumulator when its bits from the accumulator's sign bit up are
        # all equal: each test registered on its own, combined in WriteVerdict.
        bias_top = item[acc_bits - 1:64]
        bias_zero, bias_ones, shift_fits = Signal(), Signal(), Signal()
        m.d.sync += [bias_zero.eq(bias_top == 0), bias_ones.eq(bias_top.all()),
                     shift_fits.eq(_at_most(item[80:88], MAX_SHIFT))]
        param_ok = (bias_zero | bias_ones) & shift_fits
        param_data = Signal(row_param_layout(p))
        m.d.comb += [
            param_data.bias.eq(item[:acc_bits]),
            param_data.multiplier.eq(item[64:80]),
            param_data.shift.eq(item[80:86]),
        ]
        pointer_ok = Signal()
        m.d.sync += pointer_ok.eq(item[p.pointer_bits:32] == 0)
        address_bad = Signal()
        m.d.sync += address_bad.eq(address_high
                                   | Cat(target[k] & ~_below(address, depths[kind])
                                         for k, kind in enumerate(_TARGETS)).any())
        # The verdict on an item, registered from the registered checks.
        item_good = Signal()
        item_bad_address = Signal()
        item_bad_value = Signal()
        writes_layer = target[_TARGETS.index(Target.LAYER)]

        # Checks of a WRITE's header, registered from the collected item like those below.
        header_bad_target = Signal()
        header_bad_lane = Signal()
        m.d.sync += [
            header_bad_target.eq(item[0:8] > Target.LAYER),
            header_bad_lane.eq((item[8:16] >= lanes)
                               | ((item[0:8] == Target.LAYER) & (item[8:16] != 0))),
        ]

        # Checks of RUN and READ_OUTPUT, registered from the collected item: the item is whole
        # in Collect's last cycle, so RUN's end layer is ready in Judge, the checks in Weigh,
        # and their verdict (the status to answer, OK to go on) in Execute.
        first, count = item[0:8], item[8:16]
        run_end = Signal(9)
        run_range_bad = Signal()
        run_missing = Signal()
        output_count = item[0:32]
        output_count_bad = Signal()
        missing = Signal()
        for k in range(p.layer_depth):
            with m.If((k >= first) & (k < run_end) & ~layer_loaded[k]):
                m.d.comb += missing.eq(1)
        m.d.sync += [
            run_end.eq(first + count),
            run_range_bad.eq((count == 0) | (run_end > p.layer_depth)),
            run_missing.eq(missing),
            # Compared on the bits a result's count needs (a result holds at most an
            # activation a physical column; the bits above must be zero), as _below does
            # with a constant: the 32-bit comparison was the UP5K's worst path.
            output_count_bad.eq((output_count[p.column_bits:] != 0)
                                | (output_count[:p.column_bits] > result_count[:p.column_bits])),
        ]
        verdict = Signal(8)
        verdict_ok = Signal()                      # verdict == OK, kept as a register
        m.d.sync += verdict_ok.eq(0)
        with m.Switch(opcode):
            with m.Case(Opcode.RUN):
                with m.If(run_range_bad):
                    m.d.sync += verdict.eq(Status.BAD_VALUE)
                with m.Elif(run_missing):
                    m.d.sync += verdict.eq(Status.NOT_LOADED)
                with m.Elif(~has_input):
                    m.d.sync += verdict.eq(Status.NO_INPUT)
                with m.Else():
                    m.d.sync += [verdict.eq(Status.OK), verdict_ok.eq(1)]
            with m.Case(Opcode.READ_OUTPUT):
                with m.If(~has_result):
                    m.d.sync += verdict.eq(Status.NO_RESULT)
                with m.Elif(output_count_bad):
                    m.d.sync += verdict.eq(Status.BAD_ADDRESS)
                with m.Else():
                    m.d.sync += [verdict.eq(Status.OK), verdict_ok.eq(1)]
            with m.Case(Opcode.WRITE):
                with m.If(header_bad_target):
                    m.d.sync += verdict.eq(Status.BAD_TARGET)
                with m.Elif(header_bad_lane):
                    m.d.sync += verdict.eq(Status.BAD_ADDRESS)
                with m.Else():
                    m.d.sync += [verdict.eq(Status.OK), verdict_ok.eq(1)]
            with m.Default():
                m.d.sync += [verdict.eq(Status.OK), verdict_ok.eq(1)]
        # Checks of the length, in two registered steps: each comparison on its own (in the
        # Measure state), then what the opcode allows (in Check), so that no step chains a
        # 32-bit comparison into the opcode's choice. Above MAX_PAYLOAD is answered at once.
        length_big = Signal()
        length_zero = Signal()
        length_two = Signal()
        length_four = Signal()
        input_fits = Signal()
        header_fits = Signal()
        length_bad = Signal()
        m.d.sync += [
            length_big.eq(length_high | ~_at_most(length, MAX_PAYLOAD)),
            length_zero.eq(~length_high & (length == 0)),
            length_two.eq(~length_high & (length == 2)),
            length_four.eq(~length_high & (length == 4)),
            input_fits.eq(~length_high & _at_most(length, lanes * p.bank_depth * act_bytes)
                          & ~(length[0] & (act_bytes == 2))),
            header_fits.eq(length_high | ~_below(length, WRITE_HEADER)),
        ]
        with m.Switch(opcode):
            with m.Case(Opcode.INFO, Opcode.STATUS, Opcode.RESET):
                m.d.sync += length_bad.eq(~length_zero)
            with m.Case(Opcode.RUN):
                m.d.sync += length_bad.eq(~length_two)
            with m.Case(Opcode.READ_OUTPUT):
                m.d.sync += length_bad.eq(~length_four)
            with m.Case(Opcode.WRITE_INPUT):
                m.d.sync += length_bad.eq(~input_fits)
            with m.Case(Opcode.WRITE):
                m.d.sync += length_bad.eq(~header_fits)

        # -- Reply bytes --------------------------------------------------------------------
        # The INFO reply is a read-only memory (a block RAM where there is one), read like
        # the tables below are registered: a LUT tree of constants was six levels deep.
        m.submodules.info_rom = info_rom = Memory(shape=8, depth=2 ** len(reply_index),
                                              init=info)
        info_read = info_rom.read_port()
        m.d.comb += info_read.addr.eq(reply_index)
        shown_count = Signal(32)
        m.d.comb += shown_count.eq(Mux(has_result, result_count, 0))
        status_bytes = Array([Cat(has_input, has_result, Const(0, 6)),
                              *(self.core_cycles[8 * k:8 * k + 8] for k in range(4)),
                              *(shown_count[8 * k:8 * k + 8] for k in range(4))])
        word_bytes = Array(reply_word[8 * k:8 * k + 8] for k in range(4))
        # Payload byte `reply_index`, in two register steps: byte `reply_index` of each
        # table, then the reply's. ReplyFetch and ReplySelect wait for them (a payload byte
        # takes three cycles, against a UART byte's hundreds).
        table_bytes = {_Reply.STATUS: status_bytes[reply_index],
                       _Reply.WORD: word_bytes[reply_index[:2]]}
        table_byte = {kind: Signal(8, name=f"{kind.name.lower()}_byte") for kind in table_bytes}
        m.d.sync += [table_byte[kind].eq(value) for kind, value in table_bytes.items()]
        table_byte[_Reply.INFO] = info_read.data
        payload_byte = Signal(8)
        with m.Switch(reply):
            for kind, value in table_byte.items():
                with m.Case(kind):
                    m.d.sync += payload_byte.eq(value)

        core = self  # the core_* ports
        # The core's busy, registered: the core's state decode stays out of the answers'
        # clock enables (on the UP5K, their longest path).
        core_idle = Signal()
        m.d.sync += core_idle.eq(~core.core_busy)
        # The load bus is registered: a memory's write enable, address and data come straight
        # from registers, and each write lands in the cycle after the state that issues it.
        # So are the core's start and clear pulses.
        m.d.sync += [core.core_load.en.eq(0), core.core_start.eq(0), core.core_clear.eq(0)]
        with m.FSM():
            with m.State("Sync"):
                with m.If(take_byte() & (byte == COMMAND_SYNC)):
                    m.next = "Opcode"
            with m.State("Opcode"):
                with m.If(take_byte()):
                    m.d.sync += [opcode.eq(Mux(byte < 8, byte[:3], 0)), index.eq(0),
                                 length_high.eq(0)]
                    m.next = "Length"
            with m.State("Length"):
                with m.If(take_byte()):
                    m.d.sync += index.eq(index + 1)
                    with m.Switch(index[:2]):
                        for k in range(4):
                            kept = min(8, max(0, len(length) - 8 * k))   # bits of this byte kept
                            with m.Case(k):
                                if kept:
                                    m.d.sync += length[8 * k:8 * k + kept].eq(byte[:kept])
                                if kept < 8:
                                    with m.If(byte[kept:] != 0):
                                        m.d.sync += length_high.eq(1)
                    with m.If(index == 3):
                        m.next = "Measure"
            with m.State("Measure"):                    # the length's comparisons are registered
                m.next = "Check"
            with m.State("Check"):                      # and what the opcode allows
                # WRITE_INPUT and READ_OUTPUT start at the banks' first activation, set here
                # for any command: the fewer conditions on these counters, the shorter.
                m.d.sync += [bank_lane.eq(0), bank_addr.eq(0)]
                m.next = "Dispatch"
            with m.State("Dispatch"):
                m.d.sync += [index.eq(0), status.eq(Status.OK), remaining.eq(length),
                             done.eq(length_zero)]
                with m.If(length_big):
                    respond(code=Status.BAD_LENGTH)
                with m.Elif(length_bad):
                    skip_then(Status.BAD_LENGTH)
                with m.Else():
                    with m.Switch(opcode):
                        with m.Case(Opcode.INFO, Opcode.STATUS, Opcode.RESET, Opcode.RUN,
                                    Opcode.READ_OUTPUT):
                            m.next = "Collect"
                        with m.Case(Opcode.WRITE_INPUT):
                            m.d.sync += has_result.eq(0)
                            m.next = "Input"
                        with m.Case(Opcode.WRITE):
                            m.next = "Header"
                        with m.Default():
                            skip_then(Status.BAD_OPCODE)
            with m.State("Skip"):
                m.d.comb += self.i.ready.eq(~done)
                with m.If(done):
                    respond()
                with m.Elif(self.i.valid):
                    count_byte()
            with m.State("Collect"):
                m.d.comb += self.i.ready.eq(~done)
                with m.If(done):
                    m.next = "Judge"
                with m.Elif(self.i.valid):
                    collect_byte()
            with m.State("Header"):                     # a WRITE's header (its length holds it)
                with m.If(take_byte()):
                    collect_byte()
                    with m.If(index == WRITE_HEADER - 1):
                        m.next = "Judge"
            with m.State("Judge"):                      # RUN's end layer is registered
                m.next = "Weigh"
            with m.State("Weigh"):                      # the item's checks are registered
                m.next = "Execute"

            with m.State("Execute"):
                # A failed check's status is set here whatever the opcode (one condition on
                # the status register's enable); RUN and READ_OUTPUT then answer, a WRITE
                # consumes its items.
                with m.If(~verdict_ok):
                    m.d.sync += status.eq(verdict)
                with m.Switch(opcode):
                    with m.Case(Opcode.INFO):
                        respond(_Reply.INFO)
                    with m.Case(Opcode.STATUS):
                        respond(_Reply.STATUS)
                    with m.Case(Opcode.RESET):
                        m.d.sync += [core.core_clear.eq(1), has_input.eq(0), has_result.eq(0)]
                        m.next = "CoreStart"
                    with m.Case(Opcode.RUN):
                        with m.If(~verdict_ok):
                            respond()
                        with m.Else():
                            m.d.sync += [core.core_start.eq(1),
                                         core.core_first_layer.eq(first),
                                         core.core_layer_count.eq(count),
                                         has_result.eq(0)]
                            with m.If(count >= 2):
                                m.d.sync += has_input.eq(0)
                            m.next = "CoreStart"
                    with m.Case(Opcode.READ_OUTPUT):
                        with m.If(~verdict_ok):
                            respond()
                        with m.Else():
                            m.d.sync += [to_send.eq(output_count),
                                         last_output.eq(output_count == 1),
                                         output_length.eq(
                                             output_count[:len(output_length)] * act_bytes)]
                            respond(_Reply.OUTPUT)
                    with m.Case(Opcode.WRITE):
                        m.d.sync += [
                            target.eq(Cat(item[0:8] == kind for kind in _TARGETS)),
                            lane.eq(item[8:16]),
                            last_byte.eq(item_last),
                            address.eq(item[16:16 + address_bits]),
                            address_high.eq(item[16 + address_bits:48] != 0),
                            written.eq(0), index.eq(0),
                        ]
                        m.next = "WriteBytes"

            with m.State("CoreStart"):                  # the core sees the registered pulse
                m.next = "CoreBusy"
            with m.State("CoreBusy"):                   # ... and `core_idle` its busy
                with m.If(opcode == Opcode.RESET):
                    m.next = "ResetWait"
                with m.Else():
                    m.next = "RunWait"
            with m.State("ResetWait"):
                with m.If(core_idle):
                    respond()
            with m.State("RunWait"):
                with m.If(core_idle):
                    m.d.sync += [has_result.eq(1), reply_word.eq(core.core_cycles)]
                    respond(_Reply.WORD)

            with m.State("WriteBytes"):
                m.d.comb += self.i.ready.eq(~done)
                with m.If(done):
                    # A payload that ends inside an item is a bad length, unless the status
                    # already says something worse: a choice of the status's next value, not
                    # of whether it changes (on the UP5K, the latter was its longest path).
                    partial = (index != 0) & (status == Status.OK)
                    m.d.sync += reply_word.eq(written)
                    respond(_Reply.WORD, code=Mux(partial, Status.BAD_LENGTH, status))
                with m.Elif(self.i.valid):
                    collect_byte()
                    with m.If(index == last_byte):
                        m.d.sync += index.eq(0)
                        m.next = "WriteCheck"
            with m.State("WriteCheck"):                 # the item's checks are registered
                m.next = "WriteVerdict"
            with m.State("WriteVerdict"):               # ... and combined into a verdict
                load = core.core_load
                m.next = "WriteItem"
                # The bus's target, lane, address and data follow the item whatever its
                # checks say; only the enable, in WriteItem, depends on them.
                buses = {Target.POINTER: (LoadTarget.POINTER, item[:32], pointer_ok),
                         Target.ENTRY: (LoadTarget.ENTRY, item[:p.word_bits], Const(1)),
                         Target.PARAM: (LoadTarget.PARAM, param_data, param_ok),
                         Target.LAYER: (LoadTarget.LAYER, layer_data, layer_ok)}
                for k, kind in enumerate(_TARGETS):
                    load_target, data, _ = buses[kind]
                    with m.If(target[k]):
                        m.d.sync += [load.target.eq(load_target), load.data.eq(data)]
                ok = Cat(target[k] & buses[kind][2] for k, kind in enumerate(_TARGETS)).any()
                going = status_ok
                m.d.sync += [
                    load.lane.eq(lane), load.addr.eq(address),
                    item_bad_address.eq(going & address_bad),
                    item_bad_value.eq(going & ~address_bad & ~ok),
                    item_good.eq(going & ~address_bad & ok),
                ]
            with m.State("WriteItem"):
                m.d.sync += address.eq(address + 1)
                m.next = "WriteBytes"
                row = address[:max(1, (p.layer_depth - 1).bit_length())]
                with m.If(item_bad_address):
                    m.d.sync += status.eq(Status.BAD_ADDRESS)
                with m.If(item_bad_value):
                    m.d.sync += status.eq(Status.BAD_VALUE)
                    with m.If(writes_layer):
                        m.d.sync += layer_loaded.bit_select(row, 1).eq(0)
                with m.If(item_good):
                    m.d.sync += [core.core_load.en.eq(1), written.eq(written + 1)]
                    with m.If(writes_layer):
                        m.d.sync += layer_loaded.bit_select(row, 1).eq(1)

            with m.State("Input"):
                m.d.comb += self.i.ready.eq(~done)
                load = core.core_load
                m.d.sync += [
                    load.target.eq(LoadTarget.INPUT), load.lane.eq(bank_lane),
                    load.addr.eq(bank_addr),
                    load.data.eq(Cat(low_byte, byte) if act_bytes == 2 else byte),
                ]
                with m.If(done):
                    m.d.sync += has_input.eq(1)
                    respond()
                with m.Elif(self.i.valid):
                    count_byte()
                    m.d.sync += [low_byte.eq(byte),
                                 index.eq(~index[0] if act_bytes == 2 else 0)]
                    complete = index[0] if act_bytes == 2 else Const(1)
                    with m.If(complete):
                        m.d.sync += load.en.eq(1)
                        with m.If(bank_lane == lanes - 1):
                            m.d.sync += [bank_lane.eq(0), bank_addr.eq(bank_addr + 1)]
                        with m.Else():
                            m.d.sync += bank_lane.eq(bank_lane + 1)

            # -- Replies --------------------------------------------------------------------
            with m.State("ReplySync"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(RESPONSE_SYNC)]
                # The payload's length follows from the kind of reply, registered here (the
                # state lasts a cycle at least), so a state that answers sets two registers.
                with m.Switch(reply):
                    for kind, size in ((_Reply.NONE, 0), (_Reply.INFO, len(info)),
                                       (_Reply.STATUS, len(status_bytes)),
                                       (_Reply.WORD, len(word_bytes))):
                        with m.Case(kind):
                            m.d.sync += [reply_length.eq(size), reply_empty.eq(size == 0),
                                         payload_last.eq(max(size - 1, 0))]
                    with m.Case(_Reply.OUTPUT):
                        m.d.sync += [reply_length.eq(output_length),
                                     reply_empty.eq(output_length == 0)]
                with m.If(self.o.ready):
                    m.next = "ReplyStatus"
            with m.State("ReplyStatus"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(status)]
                with m.If(self.o.ready):
                    m.d.sync += reply_index.eq(0)
                    m.next = "ReplyLength"
            with m.State("ReplyLength"):
                m.d.comb += [self.o.valid.eq(1),
                             self.o.payload.eq(length_field.word_select(reply_index[:2], 8))]
                with m.If(self.o.ready):
                    m.d.sync += reply_index.eq(reply_index + 1)
                    with m.If(reply_index == 3):
                        m.d.sync += reply_index.eq(0)
                        with m.If(reply_empty):
                            m.next = "Sync"
                        with m.Elif(reply == _Reply.OUTPUT):
                            m.next = "OutputRead"
                        with m.Else():
                            m.next = "ReplyFetch"
            with m.State("ReplyFetch"):                 # each table's byte is registered
                m.next = "ReplySelect"
            with m.State("ReplySelect"):                # ... and the reply's
                m.next = "ReplyPayload"
            with m.State("ReplyPayload"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(payload_byte)]
                with m.If(self.o.ready):
                    m.d.sync += reply_index.eq(reply_index + 1)
                    with m.If(reply_index == payload_last):
                        m.next = "Sync"
                    with m.Else():
                        m.next = "ReplyFetch"
            with m.State("OutputRead"):
                m.d.comb += [core.core_act_en.eq(1), core.core_act_lane.eq(bank_lane),
                             core.core_act_addr.eq(bank_addr),
                             core.core_act_buffer.eq(core.core_result_buffer)]
                m.next = "OutputWait"
            with m.State("OutputWait"):                 # the core registers the read's value
                m.next = "OutputLow"
            with m.State("OutputLow"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(core.core_act_data[:8])]
                with m.If(self.o.ready):
                    m.next = "OutputHigh" if act_bytes == 2 else "OutputNext"
            if act_bytes == 2:
                with m.State("OutputHigh"):
                    m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(core.core_act_data[8:])]
                    with m.If(self.o.ready):
                        m.next = "OutputNext"
            with m.State("OutputNext"):
                m.d.sync += [to_send.eq(to_send - 1), last_output.eq(to_send == 2)]
                with m.If(bank_lane == lanes - 1):
                    m.d.sync += [bank_lane.eq(0), bank_addr.eq(bank_addr + 1)]
                with m.Else():
                    m.d.sync += bank_lane.eq(bank_lane + 1)
                with m.If(last_output):
                    m.next = "Sync"
                with m.Else():
                    m.next = "OutputRead"
        return m
