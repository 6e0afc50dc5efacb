"""Every malformed-command case of docs/protocol.md, and after each a correct run.

Bad opcodes, bad lengths per opcode, lengths above MAX_PAYLOAD (answered at once, payload not
consumed), bad targets, lanes and addresses, fields out of range (pointer, bias, shift, each
field of a layer row, which then reads NOT_LOADED), RUN and READ_OUTPUT refusals in their
documented order, partial WRITEs (the items before the failure are written and counted) and
garbage between frames. After each case the engine must answer the next frame and run a small
model bit- and cycle-exact. Run by ``test_engine_cocotb.py`` on every build.
"""

from __future__ import annotations

import struct
from dataclasses import replace

import cocotb

from sparsemac.sw import run_golden
from sparsemac.sw.numerics import signed_range
from sparsemac.sw.protocol import (MAX_PAYLOAD, Opcode, Status, Target, frame,
                                   info_command, memory_writes, read_output_command,
                                   reset_command, run_command, status_command, write_command,
                                   write_input_command)
from sparsemac.sw.quantize import QuantModel

from cocotb_engine import EngineBench, fit_model, seed_note
from factories import random_layer


class Case:
    """A host session on a small loaded model, checking one refusal after another."""

    def __init__(self, bench: EngineBench):
        self.bench = bench
        p = bench.params
        side = p.lanes * p.bank_depth
        layer = random_layer(bench.np_rng, min(side, 12), min(side, 10), 0.5,
                             weight_bits=p.weight_bits, bias_range=100)
        self.image = fit_model(QuantModel((layer,), p.activation_bits), bench.info)
        self.row = next(w for w in memory_writes(self.image, bench.info)
                        if w.target == Target.LAYER).items[0]
        self.runs = 0

    async def works(self, after: str) -> None:
        """The engine still answers and computes: INFO, then a run against golden."""
        await self.bench.check_info()
        x = self.bench.inputs(self.image, 1, 0.3)
        await self.bench.check(self.image, x, f"a run after {after}")
        self.runs += 1

    async def refused(self, what: str, command: bytes, status: Status,
                      payload: bytes | None = b"", *, then_works: bool = True) -> None:
        await self.bench.expect(command, status, what, payload)
        if then_works:
            await self.works(what)


def _written(n: int) -> bytes:
    return struct.pack("<I", n)


def _depths(bench: EngineBench) -> dict:
    p = bench.params
    return {Target.POINTER: (p.pointer_depth, 4), Target.ENTRY: (p.entry_words, p.word_bits // 8),
            Target.PARAM: (p.slot_depth, 11), Target.LAYER: (p.layer_depth, 24)}


def _param(bias: int, multiplier: int = 1, shift: int = 0) -> bytes:
    return struct.pack("<qHB", bias, multiplier, shift)


@cocotb.test()
async def opcodes_and_lengths(dut):
    """Bad opcodes and bad lengths: the payload is skipped whole, even if it holds a frame."""
    bench = await EngineBench.start(dut, 21, in_pause=0.3, out_pause=0.3)
    case = Case(bench)
    await bench.load(case.image)
    await case.works("loading")
    p = bench.params
    act = p.activation_bits // 8
    inner = info_command() + status_command()           # frames inside a payload: skipped
    for opcode in (0x00, 0x08, 0x5A, 0xA5, 0xFF):
        await case.refused(f"opcode {opcode:#04x}", frame(opcode, inner), Status.BAD_OPCODE)
    await case.refused("opcode 0x7f, empty", frame(0x7F), Status.BAD_OPCODE, then_works=False)
    lengths = {Opcode.INFO: (1, 6), Opcode.STATUS: (1, 3), Opcode.RESET: (1, 7),
               Opcode.RUN: (0, 1, 3, 6), Opcode.READ_OUTPUT: (0, 3, 5, 8)}
    for opcode, bad in lengths.items():
        for n in bad:
            payload = (inner * 2)[:n]
            await case.refused(f"{opcode.name} with {n} payload bytes", frame(opcode, payload),
                               Status.BAD_LENGTH, then_works=False)
        await case.works(f"bad {opcode.name} lengths")
    # A refused RESET or READ_OUTPUT changes nothing: the result is still there.
    status = await bench.status()
    assert status.has_input and status.has_result, seed_note()
    for n in range(6):
        await case.refused(f"WRITE with {n} payload bytes", frame(Opcode.WRITE, b"\x01" * n),
                           Status.BAD_LENGTH, None, then_works=False)
    await case.works("short WRITEs")
    # WRITE_INPUT: not whole activations (16-bit builds), or longer than the banks hold.
    most = p.lanes * p.bank_depth * act
    bad = [most + act] + ([3, most - 1] if act == 2 else [])
    for n in bad:
        before = await bench.status()
        await case.refused(f"WRITE_INPUT of {n} bytes", frame(Opcode.WRITE_INPUT, b"\x11" * n),
                           Status.BAD_LENGTH, then_works=False)
        assert await bench.status() == before, f"a refused WRITE_INPUT changed the state {seed_note()}"
    await case.works("bad WRITE_INPUT lengths")
    # The banks' whole depth is accepted.
    await bench.expect(frame(Opcode.WRITE_INPUT, b"\x01" * most), Status.OK, "a full WRITE_INPUT")
    await case.works("a full WRITE_INPUT")


@cocotb.test()
async def lengths_above_max_payload(dut):
    """A length above MAX_PAYLOAD is answered right after the header; nothing is consumed, so
    the bytes that follow are dropped as garbage between frames unless they are a frame."""
    bench = await EngineBench.start(dut, 22, in_pause=0.2, out_pause=0.4)
    case = Case(bench)
    await bench.load(case.image)
    for opcode in (Opcode.INFO, Opcode.WRITE, Opcode.WRITE_INPUT, 0x33):
        for length in (MAX_PAYLOAD + 1, 0xFFFFFFFF):
            header = struct.pack("<BBI", 0xA5, int(opcode), length)
            await case.refused(f"opcode {int(opcode):#04x} with length {length:#x}", header,
                               Status.BAD_LENGTH, then_works=False)
            # What would have been its payload: garbage without a sync byte, no answer.
            bench.send(bytes(range(0x10, 0x90)))
            await bench.quiet(200)
        await case.works(f"an oversized {int(opcode):#04x} frame")


@cocotb.test()
async def garbage_between_frames(dut):
    """Bytes that are not 0xA5 between frames are dropped without an answer, also when frames
    follow back to back."""
    bench = await EngineBench.start(dut, 23, in_pause=0.3, out_pause=0.3)
    case = Case(bench)
    await bench.load(case.image)
    rng = bench.rng
    junk = bytes(b for b in rng.randbytes(400) if b != 0xA5) + b"\x5a\x00\x00\x00\x00\x00"
    bench.send(junk)
    await bench.quiet(len(junk) * 2)
    frames = [info_command(), status_command(), frame(0x42, b"zz"), info_command()]
    for f in frames:
        bench.send(bytes(b for b in rng.randbytes(rng.randint(0, 20)) if b != 0xA5) + f)
    statuses = [(await bench.response()).status for _ in frames]
    assert statuses == [Status.OK, Status.OK, Status.BAD_OPCODE, Status.OK], seed_note()
    await bench.quiet()
    await case.works("garbage between frames")


@cocotb.test()
async def write_targets_lanes_addresses(dut):
    """BAD_TARGET before BAD_ADDRESS; lanes and addresses past the build; partial writes."""
    bench = await EngineBench.start(dut, 24, in_pause=0.3, out_pause=0.3)
    case = Case(bench)
    await bench.load(case.image)
    p = bench.params
    for target in (4, 0x80, 0xFF):
        await case.refused(f"WRITE to target {target}", write_command(target, 0, 0, b"\0" * 24),
                           Status.BAD_TARGET, _written(0))
    await case.refused("bad target and bad lane", write_command(9, p.lanes, 0, b"\0" * 4),
                       Status.BAD_TARGET, _written(0))
    for target, (depth, size) in _depths(bench).items():
        item = bytes(size)
        bad_lanes = [p.lanes, 255] if target != Target.LAYER else [1, 255]
        for lane in bad_lanes:
            await case.refused(f"WRITE {target.name} lane {lane}",
                               write_command(target, lane, 0, item), Status.BAD_ADDRESS,
                               _written(0), then_works=False)
        # Past the depth, with items whose fields are also bad: the address is checked first.
        bad_item = {Target.POINTER: b"\xff" * 4, Target.PARAM: _param(0, 1, 64),
                    Target.LAYER: bytes(24), Target.ENTRY: item}[target]
        for address in (depth, depth + 1, 0xFFFFFFFF):
            await case.refused(f"WRITE {target.name} at {address:#x}",
                               write_command(target, 0, address, bad_item * 2),
                               Status.BAD_ADDRESS, _written(0), then_works=False)
        if target == Target.LAYER:
            last = case.row.to_bytes()          # a valid row in the table's last row
        elif target == Target.PARAM:
            last = _param(0)
        else:
            last = item
        await case.refused(f"WRITE {target.name} across its last address",
                           write_command(target, p.lanes - 1 if target != Target.LAYER else 0,
                                         depth - 1, last * 3),
                           Status.BAD_ADDRESS, _written(1), then_works=False)
        # A WRITE that ends inside an item: the whole items are written and counted.
        if size > 1:
            await case.refused(f"WRITE {target.name} ending inside an item",
                               write_command(target, 0, depth - 1, last + last[:size - 1]),
                               Status.BAD_LENGTH, _written(1), then_works=False)
        await case.works(f"bad {target.name} writes")
    # The last table row now holds the small model's row: run it from there.
    x = bench.inputs(case.image, 1, 0.2)
    bench.send(write_input_command(x[0], p.activation_bits))
    assert (await bench.response()).status == Status.OK
    ran = await bench.expect(run_command(p.layer_depth - 1, 1), Status.OK, "RUN of the last row")
    golden = run_golden(case.image, x, bench.info.timing)
    assert struct.unpack("<I", ran.payload)[0] == golden.cycles[0], seed_note()


@cocotb.test()
async def fields_out_of_range(dut):
    """Pointers, biases, shifts and every layer-row field at and past their limits; a refused
    layer row leaves its row NOT_LOADED until a valid row is written."""
    bench = await EngineBench.start(dut, 25, in_pause=0.2, out_pause=0.3)
    case = Case(bench)
    await bench.load(case.image)
    p = bench.params
    spare = p.pointer_depth - 3
    top = 1 << p.pointer_bits
    await case.refused("pointer 2**pointer_bits - 1",
                       write_command(Target.POINTER, 0, spare, struct.pack("<I", top - 1)),
                       Status.OK, _written(1), then_works=False)
    await case.refused("pointers ok, 2**pointer_bits, ok",
                       write_command(Target.POINTER, 0, spare,
                                     struct.pack("<III", 1, top, 2)),
                       Status.BAD_VALUE, _written(1), then_works=False)
    await case.refused("pointer 0xFFFFFFFF",
                       write_command(Target.POINTER, p.lanes - 1, spare, b"\xff" * 4),
                       Status.BAD_VALUE, _written(0))
    lo, hi = signed_range(p.accumulator_bits)
    spare = p.slot_depth - 2
    for bias, multiplier, shift, status in [
            (hi, 65535, 63, Status.OK), (lo, 0, 0, Status.OK), (hi + 1, 1, 0, Status.BAD_VALUE),
            (lo - 1, 1, 0, Status.BAD_VALUE), (0, 1, 64, Status.BAD_VALUE),
            (0, 1, 255, Status.BAD_VALUE), (-(1 << 63), 1, 0, Status.BAD_VALUE)]:
        await case.refused(f"PARAM bias {bias} multiplier {multiplier} shift {shift}",
                           write_command(Target.PARAM, p.lanes - 1, spare,
                                         _param(bias, multiplier, shift)),
                           status, _written(int(status == Status.OK)), then_works=False)
    await case.refused("PARAM ok then shift 64", write_command(
        Target.PARAM, 0, spare, _param(1) + _param(0, 1, 64) + _param(2)),
        Status.BAD_VALUE, _written(1))

    # Layer rows: the last table row gets each bad row; RUN of it is then NOT_LOADED.
    last = p.layer_depth - 1
    good = case.row
    side = p.lanes * p.bank_depth
    rows = {
        "columns 0": replace(good, columns=0, groups=0),
        "columns past the banks": replace(good, columns=side + 1, groups=p.bank_depth + 1),
        "groups one short": replace(good, groups=good.groups - 1),
        "groups one over": replace(good, groups=good.groups + 1),
        "slots 0": replace(good, slots=0),
        "slots past the bank depth": replace(good, slots=p.bank_depth + 1),
        "value_bits 3": replace(good, value_bits=3),
        "value_bits past the build": replace(good, value_bits=p.weight_bits + 1),
        "run_bits 0": replace(good, run_bits=0),
        "run_bits past the build": replace(good, run_bits=p.max_run_bits + 1),
        "relu 2": replace(good, relu=2),
        "entry_base at the depth": replace(good, entry_base=p.entry_words),
        "pointer_base one too far": replace(good, pointer_base=p.pointer_depth - good.columns),
        "param_base one too far": replace(good, param_base=p.slot_depth - good.slots + 1),
    }
    edge_ok = {
        "columns the whole banks": replace(good, columns=side, groups=p.bank_depth,
                                           pointer_base=0),
        "pointer_base at the end": replace(good, pointer_base=p.pointer_depth - good.columns - 1),
        "param_base at the end": replace(good, param_base=p.slot_depth - good.slots),
        "entry_base the last word": replace(good, entry_base=p.entry_words - 1),
    }
    x = bench.inputs(case.image, 1, 0.0)[0]
    for what, row in rows.items():
        payload = row.to_bytes()
        await case.refused(f"layer row with {what}",
                           write_command(Target.LAYER, 0, last, payload), Status.BAD_VALUE,
                           _written(0), then_works=False)
        bench.send(write_input_command(x, p.activation_bits))
        assert (await bench.response()).status == Status.OK
        await case.refused(f"RUN of a row refused for {what}", run_command(last, 1),
                           Status.NOT_LOADED, then_works=False)
        # A valid row makes it loaded again.
        await case.refused("a valid row", write_command(Target.LAYER, 0, last, good.to_bytes()),
                           Status.OK, _written(1), then_works=False)
        await case.refused(f"RUN after {what} was replaced", run_command(last, 1), Status.OK,
                           None, then_works=False)
        await bench.expect(write_command(Target.LAYER, 0, last, row.to_bytes()),
                           Status.BAD_VALUE, what)
    reserved = bytearray(good.to_bytes())
    reserved[11] = 1
    await case.refused("layer row with reserved byte 1",
                       write_command(Target.LAYER, 0, last, bytes(reserved)), Status.BAD_VALUE,
                       _written(0), then_works=False)
    await case.refused("RUN of that row", run_command(last, 1), Status.NOT_LOADED,
                       then_works=False)
    for what, row in edge_ok.items():
        await case.refused(f"layer row with {what}",
                           write_command(Target.LAYER, 0, last, row.to_bytes()), Status.OK,
                           _written(1), then_works=False)
    # A WRITE of three rows whose middle one is bad: the first is written, the third is not.
    if p.layer_depth >= 3:
        await case.refused("rows good, bad, good",
                           write_command(Target.LAYER, 0, last - 2, good.to_bytes()
                                         + rows["slots 0"].to_bytes() + good.to_bytes()),
                           Status.BAD_VALUE, _written(1), then_works=False)
        await bench.expect(write_input_command(x, p.activation_bits), Status.OK)
        await bench.expect(run_command(last - 1, 1), Status.NOT_LOADED, "the bad middle row")
    await case.works("out-of-range fields")
    # Put the table back the way the load left it, for the refusals of RUN below.
    await bench.load(case.image)
    await case.works("reloading")


@cocotb.test()
async def run_and_read_refusals(dut):
    """RUN: BAD_VALUE (count 0, past the table) before NOT_LOADED before NO_INPUT;
    READ_OUTPUT: NO_RESULT, BAD_ADDRESS past the result, count 0 and the whole result."""
    bench = await EngineBench.start(dut, 26, in_pause=0.2, out_pause=0.2)
    case = Case(bench)
    p = bench.params
    depth = p.layer_depth
    # Nothing loaded, no input: the checks' order decides the status.
    await case.refused("RUN count 0, nothing loaded", run_command(0, 0), Status.BAD_VALUE,
                       then_works=False)
    await case.refused("RUN past the table", run_command(depth, 1), Status.BAD_VALUE,
                       then_works=False)
    await case.refused("RUN 255 + 255", run_command(255, 255), Status.BAD_VALUE,
                       then_works=False)
    await case.refused("RUN one row too many", run_command(0, depth + 1), Status.BAD_VALUE,
                       then_works=False)
    await case.refused("RUN of unloaded rows, no input", run_command(0, 1), Status.NOT_LOADED,
                       then_works=False)
    await case.refused("READ_OUTPUT before any run", read_output_command(1), Status.NO_RESULT,
                       then_works=False)
    await bench.load(case.image)
    await case.refused("RUN with no input", run_command(0, 1), Status.NO_INPUT,
                       then_works=False)
    if depth >= 2:
        await case.refused("RUN into an unloaded row", run_command(0, 2), Status.NOT_LOADED,
                           then_works=False)
    await case.works("RUN refusals")
    n = p.lanes * case.image.layers[0].slots
    status = await bench.status()
    assert status.has_result and status.result_count == n, seed_note()
    await case.refused("READ_OUTPUT of one too many", read_output_command(n + 1),
                       Status.BAD_ADDRESS, then_works=False)
    await case.refused("READ_OUTPUT of 2**32 - 1", read_output_command(0xFFFFFFFF),
                       Status.BAD_ADDRESS, then_works=False)
    await case.refused("READ_OUTPUT of 2**20 + 1", read_output_command((1 << 20) + 1),
                       Status.BAD_ADDRESS, then_works=False)
    await case.refused("READ_OUTPUT of none", read_output_command(0), Status.OK,
                       then_works=False)
    whole = await bench.expect(read_output_command(n), Status.OK, "READ_OUTPUT of all")
    again = await bench.expect(read_output_command(n), Status.OK, "READ_OUTPUT again")
    assert whole.payload == again.payload and len(whole.payload) == n * p.activation_bits // 8
    # A WRITE_INPUT forgets the result; RESET forgets input and result.
    x = bench.inputs(case.image, 1, 0.0)[0]
    await bench.expect(write_input_command(x, p.activation_bits), Status.OK)
    await case.refused("READ_OUTPUT after WRITE_INPUT", read_output_command(1), Status.NO_RESULT,
                       then_works=False)
    await bench.expect(reset_command(), Status.OK)
    status = await bench.status()
    assert not status.has_input and not status.has_result and status.result_count == 0
    await case.refused("RUN after RESET", run_command(0, 1), Status.NO_INPUT, then_works=False)
    await case.refused("READ_OUTPUT after RESET", read_output_command(1), Status.NO_RESULT)
