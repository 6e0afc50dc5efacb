"""Soft RESET (the command) and hard reset (the ``rst`` signal) of the engine.

docs/protocol.md section 3.7 promises for RESET: every accumulator zeroed, input and result
forgotten, memories and layer table kept. The ``rst`` signal is not part of the protocol; what
it does, as measured here (docs/simulation.md, "The engine's system tests"):

- every register returns to its reset value: the command processor waits for a sync byte, a
  response being sent is cut off, a run in progress stops and never answers, STATUS reads no
  input, no result and 0 cycles;
- the memories keep their contents (entries, pointers, row parameters, the layer table's
  rows and the activation banks), but every layer-table row is marked not loaded, so RUN
  answers NOT_LOADED until the LAYER rows are written again; the other memories need no
  reload;
- the accumulators are a memory too: a run cut by ``rst`` leaves its partial sums in them, so
  the host must send RESET after ``rst`` before the next run.

Run by ``test_engine_cocotb.py`` on every build.
"""

from __future__ import annotations

import cocotb
from cocotb.triggers import ClockCycles

from sparsemac.sw import run_golden
from sparsemac.sw.protocol import (RunStatus, Status, Target, info_command, memory_writes,
                                   read_output_command, reset_command, run_command,
                                   write_command, write_input_command)

from cocotb_engine import EngineBench, fit_model, pruned_model, seed_note


def _model(bench: EngineBench):
    p = bench.params
    side = p.lanes * p.bank_depth
    sizes = [side - 1] + [max(2, side // 2 - 3 * k) for k in range(p.layer_depth)]
    for scale in (1.0, 0.5, 0.25):
        try:
            return fit_model(pruned_model(bench.np_rng, [max(1, int(s * scale)) for s in sizes],
                                          [0.8] * p.layer_depth, weight_bits=p.weight_bits,
                                          activation_bits=p.activation_bits), bench.info)
        except ValueError:
            continue
    raise AssertionError("no model fits the build")


def _layer_rows_only(bench: EngineBench, image) -> list[bytes]:
    rows = [w for w in memory_writes(image, bench.info) if w.target == Target.LAYER]
    return [write_command(Target.LAYER, 0, w.address, w.payload(bench.info)) for w in rows]


@cocotb.test()
async def soft_reset_keeps_the_model(dut):
    """RESET after a completed run forgets input and result, keeps the model: run again
    without reloading, bit- and cycle-exact; a RESET queued behind a RUN waits for it."""
    bench = await EngineBench.start(dut, 31, in_pause=0.3, out_pause=0.3)
    image = _model(bench)
    xs = bench.inputs(image, 2, 0.4)
    await bench.load_and_check(image, xs[:1], "before RESET")
    await bench.expect(reset_command(), Status.OK, "RESET", b"")
    # STATUS keeps showing the last run's cycles, with no input and no result.
    last = int(run_golden(image, xs[:1], bench.info.timing).cycles[0])
    assert await bench.status() == RunStatus(False, False, last, 0), seed_note()
    await bench.expect(read_output_command(1), Status.NO_RESULT, "READ_OUTPUT after RESET")
    await bench.expect(run_command(0, len(image.layers)), Status.NO_INPUT, "RUN after RESET")
    await bench.check(image, xs, "after RESET, no reload")
    # RUN and RESET back to back: the RESET is taken after the run's answer.
    golden = run_golden(image, xs[:1], bench.info.timing)
    bench.send(write_input_command(xs[0], image.activation_bits))
    bench.send(run_command(0, len(image.layers)))
    bench.send(reset_command())
    assert (await bench.response()).status == Status.OK
    ran = await bench.response("RUN")
    assert ran.status == Status.OK
    assert int.from_bytes(ran.payload, "little") == golden.cycles[0], seed_note()
    assert (await bench.response("RESET")).status == Status.OK
    assert not (await bench.status()).has_result
    await bench.check(image, xs[1:], "after RUN + RESET back to back")


async def _start_run(bench: EngineBench, image, x) -> int:
    """Write the input, send RUN; return the run's golden cycles."""
    await bench.expect(write_input_command(x, image.activation_bits), Status.OK)
    bench.send(run_command(0, len(image.layers)))
    return int(run_golden(image, x, bench.info.timing).cycles[0])


async def _after_hard_reset(bench: EngineBench, image) -> None:
    """What every hard reset must leave: INFO right, no input, no result, 0 cycles, no row
    loaded, no stray bytes."""
    assert len(bench.sink) == 0, f"bytes after rst: {bench.sink.read_nowait().hex()} {seed_note()}"
    await bench.check_info()
    assert await bench.status() == RunStatus(False, False, 0, 0), seed_note()
    await bench.expect(read_output_command(1), Status.NO_RESULT, "READ_OUTPUT after rst")
    await bench.expect(run_command(0, len(image.layers)), Status.NOT_LOADED, "RUN after rst")
    await bench.quiet()


@cocotb.test()
async def hard_reset_in_the_middle_of_a_run(dut):
    """``rst`` halfway through a RUN: no answer, a known state; after the layer rows are
    written again and a soft RESET, the other memories need no reload."""
    bench = await EngineBench.start(dut, 32, in_pause=0.2, out_pause=0.3)
    image = _model(bench)
    xs = bench.inputs(image, 3, 0.2)
    await bench.load(image)
    for k, fraction in enumerate((0.5, 0.1, 0.9)):
        cycles = await _start_run(bench, image, xs[k])
        await bench.source.wait()
        await ClockCycles(bench.dut.clk, max(1, int(cycles * fraction)))
        assert len(bench.sink) == 0, "the run answered early"
        await bench.hard_reset()
        await ClockCycles(bench.dut.clk, cycles + 20)    # the run would have ended by now
        await _after_hard_reset(bench, image)
        for frame in _layer_rows_only(bench, image):
            response = await bench.command(frame, "layer rows")
            assert response.status == Status.OK, seed_note()
        await bench.expect(reset_command(), Status.OK, "RESET after rst")
        await bench.check(image, xs[k:k + 1], f"after rst {fraction:.0%} into a run, layer "
                                              f"rows and RESET only")


@cocotb.test()
async def hard_reset_inside_frames(dut):
    """``rst`` in the middle of a command's payload and while a response waits on a stalled
    sink: the frame and the response are dropped, the engine waits for a sync byte."""
    bench = await EngineBench.start(dut, 33, in_pause=0.0, out_pause=0.0)
    image = _model(bench)
    await bench.load(image)
    # Half a WRITE_INPUT frame, then rst; the rest of it (no 0xA5 in it) is then garbage.
    x = bench.inputs(image, 1, 0.0)[0]
    frame = write_input_command(x, image.activation_bits)
    frame = frame[:6] + frame[6:].replace(b"\xa5", b"\x01")
    half = len(frame) // 2
    bench.send(frame[:half])
    await bench.source.wait()
    await bench.hard_reset()
    bench.send(frame[half:])
    await bench.source.wait()
    await _after_hard_reset(bench, image)
    # A response held by a stalled sink, cut by rst.
    bench.sink.pause = True
    bench.send(info_command())
    await ClockCycles(bench.dut.clk, 30)
    await bench.hard_reset()
    bench.sink.pause = False
    await _after_hard_reset(bench, image)
    # The memories survived: the layer rows alone make the model run.
    for frame in _layer_rows_only(bench, image):
        await bench.expect(frame, Status.OK, "layer rows")
    await bench.check(image, bench.inputs(image, 2, 0.3), "after rst inside frames")
