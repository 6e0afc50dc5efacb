"""The engine core: layer sequencing over the front end, the lanes and the output stages."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, signed, unsigned
from amaranth.lib import data, enum, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from sparsemac.sw.golden import EngineTiming

from .broadcast import Broadcast
from .front_end import FrontEnd
from .lane import Lane
from .output_stage import OutputStage
from .parameters import EngineParameters, column_layout, layer_layout, row_param_layout

__all__ = ["Core", "LoadTarget", "core_timing", "load_bus_signature"]

#: Lanes whose idle flags share a register (the sequencer ANDs lanes / IDLE_GROUP of them).
IDLE_GROUP = 4


class LoadTarget(enum.Enum, shape=3):
    """Which memory a host write on :attr:`Core.load` goes to (docs/protocol.md)."""
    POINTER = 0
    ENTRY = 1
    PARAM = 2
    LAYER = 3
    INPUT = 4


def group_data_bits(params: EngineParameters) -> int:
    """Data bits of a write into a lane's or an output stage's memories (every load target
    but the layer table)."""
    p = params
    return max(p.pointer_bits, p.word_bits, row_param_layout(p).size, p.activation_bits)


def load_widths(params: EngineParameters) -> tuple[int, int]:
    """(address bits, data bits) of the core's load bus."""
    p = params
    addr_bits = max(max(1, (depth - 1).bit_length())
                    for depth in (p.pointer_depth, p.entry_words, p.slot_depth, p.layer_depth,
                                  p.bank_depth))
    return addr_bits, max(group_data_bits(p), layer_layout(p).size)


def load_bus_signature(params: EngineParameters) -> wiring.Signature:
    """Host writes into the core's memories: one word of one memory of one lane per cycle."""
    addr_bits, data_bits = load_widths(params)
    return wiring.Signature({
        "en": Out(1),
        "target": Out(LoadTarget),
        "lane": Out(range(params.lanes)),
        "addr": Out(addr_bits),
        "data": Out(data_bits),
    })


def core_timing(params: EngineParameters) -> EngineTiming:
    """The cycle-model constants of a core built with ``params`` (docs/engine.md 4.1)."""
    # A column is accepted in cycle B, fans out in B + 1 and is fetched in the lanes; the
    # credits cover those cycles as well as the FIFO's fifo_depth entries.
    broadcast_latency = Broadcast.LATENCY + Lane.FETCH_CYCLES
    return EngineTiming(fifo_depth=params.fifo_depth + broadcast_latency - 1,
                        broadcast_latency=broadcast_latency,
                        mac_latency=Lane.DRAIN_CYCLES,
                        output_latency=OutputStage.LATENCY, layer_overhead=5,
                        lanes_per_output_stage=params.lanes_per_output_stage)


class Core(wiring.Component):
    """Run consecutive layers of a loaded model on the input in activation buffer 0.

    The activation memory of each lane's bank holds two buffers (ping-pong). A run starts
    with the input in buffer 0; each layer reads one buffer and its output stages write the
    other, and the last layer's buffer is reported on ``result_buffer``. Per layer: one cycle
    to read the layer table, one to configure, one to prime the front end, the compute phase
    (front end, FIFOs, lanes) plus the cycle that sees it has finished, ``Ns x slots`` cycles
    of output walk (each output stage serves ``Ns = lanes_per_output_stage`` lanes, all
    stages in step) and the output pipeline's drain. docs/engine.md section 4 is the exact
    count; :attr:`timing` gives its constants.

    Parameters
    ----------
    params : EngineParameters

    Members
    -------
    start : In(1)
        Pulse (while not busy) to run ``layer_count`` layers from ``first_layer``.
    first_layer, layer_count : In
    clear : In(1)
        Pulse (while not busy) to zero every accumulator (a soft reset); takes
        ``bank_depth`` cycles.
    busy : Out(1)
    cycles : Out(32)
        Cycles of the current or last run, counted from the cycle after ``start``.
    result_buffer : Out(1)
        The buffer the last run's outputs are in.
    result_slots : Out
        Slots of the last layer run (its outputs are ``lanes * result_slots`` activations).
    load : In(load_bus_signature(params))
        Host writes into the memories; only while not busy. A write to a lane's or an output
        stage's memory lands at the end of the cycle after the one it is presented in when
        there is more than one output stage (each group of lanes takes it from a registered
        copy of the bus); ``start`` may be given in that cycle.
    act_en, act_lane, act_buffer, act_addr : In
        Host reads of an activation bank (data on ``act_data`` :attr:`ACT_READ_LATENCY`
        cycles later, held until the next read or run); only while not busy.
    act_data : Out(signed(activation_bits))

    Latency and back-pressure: the core takes no back-pressure; ``busy`` falls the cycle after
    the last output is written.
    """

    #: Cycles from a host read on ``act_en`` to its data on ``act_data``.
    ACT_READ_LATENCY = 2

    def __init__(self, params: EngineParameters):
        if not isinstance(params, EngineParameters):
            raise TypeError(f"Parameters must be an EngineParameters, not {params!r}")
        self._params = params
        p = params
        super().__init__({
            "start": In(1),
            "first_layer": In(range(p.layer_depth)),
            "layer_count": In(range(p.layer_depth + 1)),
            "clear": In(1),
            "busy": Out(1),
            "cycles": Out(32),
            "result_buffer": Out(1),
            "result_slots": Out(max(1, p.bank_depth.bit_length())),
            "load": In(load_bus_signature(p)),
            "act_en": In(1),
            "act_lane": In(range(p.lanes)),
            "act_buffer": In(1),
            "act_addr": In(range(p.bank_depth)),
            "act_data": Out(signed(p.activation_bits)),
        })

    @property
    def timing(self) -> EngineTiming:
        """The constants of this build's cycle model (docs/engine.md section 4)."""
        return core_timing(self._params)

    def elaborate(self, platform):
        m = Module()
        p = self._params
        lanes = p.lanes
        timing = self.timing

        m.submodules.front_end = front_end = FrontEnd(p)
        m.submodules.broadcast = broadcast = Broadcast(p, capacity=timing.fifo_depth)
        lane_blocks = []
        for index in range(lanes):
            lane = Lane(p, capacity=timing.fifo_depth)
            m.submodules[f"lane{index}"] = lane
            lane_blocks.append(lane)
        group = p.lanes_per_output_stage
        stages = []
        for index in range(p.output_stages):
            stage = OutputStage(p, lanes=group)
            m.submodules[f"output{index}"] = stage
            stages.append(stage)

        def stage_of(lane: int) -> tuple[OutputStage, int]:
            """The output stage of a lane, and the lane's number within its group."""
            return stages[lane // group], lane % group

        # -- Layer table and configuration --------------------------------------------------
        m.submodules.layer_table = table = Memory(shape=layer_layout(p), depth=p.layer_depth,
                                                  init=[])
        table_wr = table.write_port()
        table_rd = table.read_port()
        config = Signal(layer_layout(p))
        m.d.comb += self.result_slots.eq(config.slots)

        # -- Load bus -----------------------------------------------------------------------
        load = self.load
        m.d.comb += [
            table_wr.en.eq(load.en & (load.target == LoadTarget.LAYER)),
            table_wr.addr.eq(load.addr),
            table_wr.data.eq(load.data),
        ]
        # Each group (an output stage and its lanes) takes the writes for its lanes from a
        # registered copy of the bus, captured only on a write to one of them: the bus then
        # crosses the device in a cycle of its own, and every memory's write enable, address
        # and data come from registers of its group (on the 16-lane ULX3S, the bus's fanout
        # to every lane's memories was the longest path). Such a write lands a cycle after
        # it is presented. With one group the bus has one destination, and is not copied.
        addr_bits, _ = load_widths(p)
        group_write = data.StructLayout({
            "target": LoadTarget, "lane": range(group), "addr": addr_bits,
            "data": group_data_bits(p),
        })
        copies = []
        for index in range(p.output_stages):
            copy_en = Signal(name=f"load_group{index}_en")
            copy = Signal(group_write, reset_less=True, name=f"load_group{index}")
            copies.append((copy_en, copy))
            first = index * group
            hit = load.en
            # Bounds only where they bound (Verilator rejects a comparison that is constant).
            if first > 0:
                hit &= load.lane >= first
            if first + group < lanes:
                hit &= load.lane < first + group
            written = [copy.target.eq(load.target), copy.lane.eq(load.lane - first),
                       copy.addr.eq(load.addr), copy.data.eq(load.data)]
            if p.output_stages == 1:
                m.d.comb += [copy_en.eq(hit), *written]
            else:
                m.d.sync += copy_en.eq(hit)
                with m.If(hit):
                    m.d.sync += written

        # A lane memory's write enable is a register of its own, decoded from the bus beside
        # the group's copy, so nothing but routing lies between it and the block RAM (decoded
        # from the copy, two LUTs and 6.4 ns of routing to a lane's pointer block RAM were
        # the 16-lane ULX3S's worst path at one seed).
        def strobe(target, lane):
            """The write enable of ``target``'s memory of ``lane``."""
            enable = Signal(name=f"load_lane{lane}_{target.name.lower()}_en")
            decoded = load.en & (load.target == target) & (load.lane == lane)
            if p.output_stages == 1:
                m.d.comb += enable.eq(decoded)
            else:
                m.d.sync += enable.eq(decoded)
            return enable

        for index, stage in enumerate(stages):
            copy_en, copy = copies[index]
            m.d.comb += [
                stage.param_w.en.eq(copy_en & (copy.target == LoadTarget.PARAM)),
                stage.param_w.lane.eq(copy.lane),
                stage.param_w.addr.eq(copy.addr),
                stage.param_w.data.eq(copy.data),
            ]
        for index in range(lanes):
            lane = lane_blocks[index]
            _, copy = copies[index // group]
            for port, target in ((lane.pointer_w, LoadTarget.POINTER),
                                 (lane.entry_w, LoadTarget.ENTRY)):
                m.d.comb += [
                    port.en.eq(strobe(target, index)),
                    port.addr.eq(copy.addr),
                    port.data.eq(copy.data),
                ]

        # -- Activation banks (two buffers each) --------------------------------------------
        running = Signal()
        # The same as ``running``, but a register (not decoded from the state machine): it
        # selects the banks' ports, whose read addresses are then registers too.
        banks_running = Signal()
        in_buffer = Signal()
        # A host read's bank is selected from the banks' read data into a register: at 32
        # lanes the selection, left to the reader, ran on through the transmit skid buffer
        # (the ULX3S's worst path at one seed).
        act_lane_r = Signal.like(self.act_lane)
        act_selected = Signal.like(self.act_data)
        with m.If(self.act_en):
            m.d.sync += act_lane_r.eq(self.act_lane)
        m.d.sync += self.act_data.eq(act_selected)
        for index in range(lanes):
            bank = Memory(shape=signed(p.activation_bits), depth=2 * p.bank_depth, init=[])
            m.submodules[f"bank{index}"] = bank
            bank_wr, bank_rd = bank.write_port(), bank.read_port()
            m.d.comb += front_end.rd_data[index].eq(bank_rd.data)
            stage, local = stage_of(index)
            _, load_copy = copies[index // group]
            with m.If(banks_running):
                m.d.comb += [
                    bank_rd.en.eq(front_end.rd_en),
                    bank_rd.addr.eq(front_end.rd_addr + in_buffer * p.bank_depth),
                    bank_wr.en.eq(stage.o.valid & (stage.o.payload.lane == local)),
                    bank_wr.addr.eq(stage.o.payload.slot + (~in_buffer) * p.bank_depth),
                    bank_wr.data.eq(stage.o.payload.value),
                ]
            with m.Else():
                m.d.comb += [
                    bank_rd.en.eq(self.act_en),
                    bank_rd.addr.eq(self.act_addr + self.act_buffer * p.bank_depth),
                    bank_wr.en.eq(strobe(LoadTarget.INPUT, index)),
                    bank_wr.addr.eq(load_copy.addr),
                    bank_wr.data.eq(load_copy.data),
                ]
            with m.If(act_lane_r == index):
                m.d.comb += act_selected.eq(bank_rd.data)

        # -- Front end, broadcast, lanes ----------------------------------------------------
        m.d.comb += [
            front_end.columns.eq(config.columns),
            front_end.groups.eq(config.groups),
        ]
        wiring.connect(m, front_end.o, broadcast.i)
        # Whether the lanes are idle (free, every column accepted also taken) and nothing is
        # accepted, as of the previous cycle: registered per group of IDLE_GROUP lanes, so
        # that no lane's logic reaches the AND of all of them in the same cycle, and that AND
        # takes lanes / IDLE_GROUP flags (at 32 lanes, with a flag a lane, it was three LUTs
        # deep before the sequencer's own logic: the ULX3S's worst path at one seed). The
        # broadcast's register holds a column accepted the cycle before, which its credits
        # count.
        idle_before = Signal()
        broadcast_before = Signal()
        m.d.sync += broadcast_before.eq(front_end.o.valid & front_end.o.ready)
        for stage in stages:
            m.d.comb += [stage.param_base.eq(config.param_base), stage.relu.eq(config.relu)]
        for index in range(lanes):
            lane = lane_blocks[index]
            m.d.comb += [
                lane.i.valid.eq(broadcast.o.valid),
                lane.i.payload.eq(broadcast.o.payload),
                broadcast.take[index].eq(lane.take),
                lane.value_bits.eq(config.value_bits),
                lane.run_bits.eq(config.run_bits),
                lane.entry_base.eq(config.entry_base),
                lane.pointer_base.eq(config.pointer_base),
                lane.slots.eq(config.slots),
            ]
            stage, local = stage_of(index)
            m.d.comb += stage.acc[local].eq(lane.out_data)
        groups_idle = []
        for first in range(0, lanes, IDLE_GROUP):
            members = range(first, min(first + IDLE_GROUP, lanes))
            group_idle = Signal(name=f"lanes_idle{first}")
            m.d.sync += group_idle.eq(
                Cat(lane_blocks[index].free & broadcast.empty[index] for index in members).all())
            groups_idle.append(group_idle)
        # One AND of all the flags, which Yosys maps as a tree (a chain of conditions on
        # idle_before became a chain of LUTs, the 16-lane ULX3S's worst path at 38bb1d3).
        m.d.comb += idle_before.eq(~broadcast_before & Cat(*groups_idle).all())

        # -- Sequencing ---------------------------------------------------------------------
        layer = Signal(range(p.layer_depth + 1))
        remaining = Signal(range(p.layer_depth + 1))
        # Consecutive idle cycles before the previous one, saturating at Lm - 1: with
        # idle_before, the lanes have been idle for the last Lm cycles (docs/engine.md 4).
        idle_cycles = Signal(range(timing.mac_latency))
        slot = Signal(range(p.bank_depth + 1))
        out_lane = Signal(range(group))
        drain = Signal(range(timing.output_latency + 1))
        m.d.comb += table_rd.addr.eq(layer)
        # Whether the sequencer is in Clear or in Output, as registers set and cleared with
        # its transitions: they make every lane's ``out_en`` (the read's clear a cycle
        # later), and decoding the state there had put the sequencer's state register into
        # the read address of all 16 lanes' block RAMs (the ULX3S build's critical path;
        # each lane now selects that address by its own update valid, hw/lane.py).
        clearing = Signal()
        walking = Signal()
        final_slot = Signal()      # slot + 1 >= config.slots, kept as a register for the walk
        for index, lane in enumerate(lane_blocks):
            m.d.comb += [lane.out_en.eq(clearing | (walking & (out_lane == index % group))),
                         lane.out_addr.eq(slot)]

        with m.If(~idle_before):
            m.d.sync += idle_cycles.eq(0)
        with m.Elif(idle_cycles < timing.mac_latency - 1):
            m.d.sync += idle_cycles.eq(idle_cycles + 1)

        with m.If(running):
            m.d.sync += self.cycles.eq(self.cycles + 1)

        with m.FSM() as sequencer:
            with m.State("Idle"):
                with m.If(self.start):
                    m.d.sync += [
                        layer.eq(self.first_layer),
                        remaining.eq(self.layer_count),
                        in_buffer.eq(0),
                        self.cycles.eq(0),
                    ]
                    m.next = "Table"
                with m.Elif(self.clear):
                    m.d.sync += [slot.eq(0), clearing.eq(1)]
                    m.next = "Clear"
            with m.State("Clear"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += slot.eq(slot + 1)
                with m.If(slot == p.bank_depth - 1):
                    m.d.sync += clearing.eq(0)
                    m.next = "Idle"
            with m.State("Table"):
                m.d.comb += [self.busy.eq(1), running.eq(1)]
                m.next = "Config"
            with m.State("Config"):
                m.d.comb += [self.busy.eq(1), running.eq(1), front_end.start.eq(1)]
                m.d.sync += config.eq(table_rd.data)
                m.next = "Prime"
            with m.State("Prime"):
                m.d.comb += [self.busy.eq(1), running.eq(1)]
                m.next = "Load"
            with m.State("Load"):
                m.d.comb += [self.busy.eq(1), running.eq(1)]
                # The walk's start, set here rather than as Compute ends: the lanes' idle
                # test then reaches only the state and `walking`.
                m.d.sync += [idle_cycles.eq(timing.mac_latency - 1), slot.eq(0),
                             out_lane.eq(0), final_slot.eq(config.slots <= 1)]
                m.next = "Compute"
            with m.State("Compute"):
                m.d.comb += [self.busy.eq(1), running.eq(1)]
                with m.If(front_end.done & idle_before & (idle_cycles == timing.mac_latency - 1)):
                    m.d.sync += walking.eq(1)
                    m.next = "Output"
            with m.State("Output"):
                # The walk: slot by slot, and within a slot lane by lane of each group, one
                # record a cycle into each output stage (Ns x slots cycles).
                m.d.comb += [self.busy.eq(1), running.eq(1)]
                for stage in stages:
                    m.d.comb += [stage.en.eq(1), stage.lane.eq(out_lane), stage.slot.eq(slot)]
                with m.If(out_lane == group - 1):
                    m.d.sync += [out_lane.eq(0), slot.eq(slot + 1),
                                 final_slot.eq(slot + 2 >= config.slots)]
                    with m.If(final_slot):
                        m.d.sync += [drain.eq(timing.output_latency - 1), walking.eq(0)]
                        m.next = "Drain"
                with m.Else():
                    m.d.sync += out_lane.eq(out_lane + 1)
            with m.State("Drain"):
                m.d.comb += [self.busy.eq(1), running.eq(1)]
                m.d.sync += drain.eq(drain - 1)
                with m.If(drain == 0):
                    m.d.sync += [
                        in_buffer.eq(~in_buffer),
                        layer.eq(layer + 1),
                        remaining.eq(remaining - 1),
                    ]
                    with m.If(remaining <= 1):
                        m.d.sync += self.result_buffer.eq(~in_buffer)
                        m.next = "Idle"
                    with m.Else():
                        m.next = "Table"
        with m.If(~self.busy & self.start):
            m.d.sync += banks_running.eq(1)
        with m.Elif(sequencer.ongoing("Drain") & (drain == 0) & (remaining <= 1)):
            m.d.sync += banks_running.eq(0)
        return m
