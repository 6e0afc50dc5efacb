# amaranth: UnusedElaboratable=no
# (the constructor checks below leave half-built UARTs behind on purpose)
"""The 8N1 UART: loopback of random bytes with random gaps and back-pressure, bit timing,
framing errors, overruns, and the divisor's rate check."""

from __future__ import annotations

import random

import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.sim import Simulator

from sparsemac.hw.uart import UART, UARTReceiver, UARTTransmitter, uart_divisor


class Loopback(Elaboratable):
    """A UART whose transmitter drives its own receiver."""

    def __init__(self, divisor):
        self.uart = UART(divisor)

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart = self.uart
        m.d.comb += self.uart.rx_pin.eq(self.uart.tx_pin)
        return m


@pytest.mark.parametrize("divisor", [4, 7, 16])
def test_loopback_random_bytes(divisor):
    seed = 1000 + divisor
    rng = random.Random(seed)
    print(f"seed {seed}")
    sent = [rng.randrange(256) for _ in range(40)]
    top = Loopback(divisor)
    uart = top.uart
    received = []

    async def producer(ctx):
        for byte in sent:
            while rng.random() < 0.3:                     # random gaps
                await ctx.tick().repeat(rng.randrange(1, 3 * divisor))
            ctx.set(uart.tx.payload, byte)
            ctx.set(uart.tx.valid, 1)
            await ctx.tick().until(uart.tx.ready)
            ctx.set(uart.tx.valid, 0)

    async def consumer(ctx):
        while len(received) < len(sent):
            # Random back-pressure, shorter than a frame, so nothing is lost.
            ctx.set(uart.rx.ready, 0)
            await ctx.tick().repeat(rng.randrange(1, 5 * divisor))
            ctx.set(uart.rx.ready, 1)
            payload, = await ctx.tick().sample(uart.rx.payload).until(uart.rx.valid)
            received.append(payload)

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer, background=True)
    sim.add_testbench(_wait_for(lambda: len(received) == len(sent), 12 * divisor * len(sent) * 2))
    sim.run()
    assert received == sent, f"seed {seed}"


def _wait_for(done, limit):
    async def bench(ctx):
        for _ in range(limit):
            if done():
                return
            await ctx.tick()
        raise AssertionError(f"not done in {limit} cycles")
    return bench


def frame_bits(byte, stop=1):
    return [0] + [(byte >> k) & 1 for k in range(8)] + [stop]


@pytest.mark.parametrize("divisor", [4, 9])
def test_transmitter_bit_timing(divisor):
    """Every bit lasts exactly ``divisor`` cycles; back-to-back bytes leave no gap."""
    dut = UARTTransmitter(divisor)
    data = [0x55, 0x00, 0xFF, 0xA3]
    line = []

    async def producer(ctx):
        for byte in data:
            ctx.set(dut.i.payload, byte)
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)

    async def monitor(ctx):
        async for _, _, tx in ctx.tick().sample(dut.tx):
            line.append(tx)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(monitor, background=True)
    sim.run_until(1e-6 * (10 * divisor * len(data) + 20))
    start = line.index(0)
    expect = [bit for byte in data for bit in frame_bits(byte) for _ in range(divisor)]
    assert line[start:start + len(expect)] == expect
    assert all(line[start + len(expect):])


def drive_line(dut, frames, period, idle=3):
    """A testbench bit-banging frames (lists of bits) on ``dut.rx``, ``period`` cycles a bit,
    ``idle`` cycles of high line after each."""
    async def bench(ctx):
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(3)
        for bits in frames:
            for bit in bits:
                ctx.set(dut.rx, bit)
                await ctx.tick().repeat(period)
            ctx.set(dut.rx, 1)
            if idle:
                await ctx.tick().repeat(idle)
        await ctx.tick().repeat(2 * period)
    return bench


def collect(dut, out):
    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        async for _, _, valid, payload in ctx.tick().sample(dut.o.valid, dut.o.payload):
            if valid:
                out.append(payload)
    return bench


def test_framing_error_drops_the_byte():
    divisor = 8
    dut = UARTReceiver(divisor)
    frames = [frame_bits(0x12), frame_bits(0x34, stop=0), frame_bits(0x56),
              # a long break (line low for 3 frames) is one framing error, not several
              [0] * 30, frame_bits(0x78)]
    received = []
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(drive_line(dut, frames, divisor))
    sim.add_testbench(collect(dut, received), background=True)
    counts = {}

    async def finish(ctx):
        await ctx.tick().repeat(10 * divisor * 8)
        counts["framing"] = ctx.get(dut.framing_errors)
        counts["overruns"] = ctx.get(dut.overruns)

    sim.add_testbench(finish)
    sim.run()
    assert received == [0x12, 0x56, 0x78]
    assert counts == {"framing": 2, "overruns": 0}


@pytest.mark.parametrize("skew", [-0.03, 0.03])
def test_receiver_tolerates_rate_error(skew):
    """A sender 3% fast or slow is still received (mid-bit sampling leaves about 5%)."""
    divisor = 32
    period = round(divisor * (1 + skew))
    rng = random.Random(7)
    data = [rng.randrange(256) for _ in range(8)]
    dut = UARTReceiver(divisor)
    received = []
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(drive_line(dut, [frame_bits(b) for b in data], period, idle=0))
    sim.add_testbench(collect(dut, received), background=True)
    sim.run()
    assert received == data


def test_glitch_is_not_a_start_bit():
    divisor = 16
    dut = UARTReceiver(divisor)
    received = []
    sim = Simulator(dut)
    sim.add_clock(1e-6)

    async def bench(ctx):
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(5)
        ctx.set(dut.rx, 0)                              # shorter than half a bit
        await ctx.tick().repeat(3)
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(20 * divisor)

    sim.add_testbench(bench)
    sim.add_testbench(collect(dut, received), background=True)
    sim.run()
    assert received == []


def test_overrun_is_counted():
    """A consumer that stalls for two frames loses the second byte, and it is counted."""
    divisor = 6
    dut = UARTReceiver(divisor)
    data = [0x01, 0x02, 0x03]
    result = {}
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(drive_line(dut, [frame_bits(b) for b in data], divisor, idle=1))

    async def consumer(ctx):
        ctx.set(dut.o.ready, 0)
        await ctx.tick().repeat(10 * divisor * 3 + 30)
        taken = []
        ctx.set(dut.o.ready, 1)
        for _ in range(5):
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid:
                taken.append(payload)
        result["taken"] = taken
        result["overruns"] = ctx.get(dut.overruns)

    sim.add_testbench(consumer)
    sim.run()
    assert result == {"taken": [0x01], "overruns": 2}


def test_divisor_from_clock_and_baud():
    assert uart_divisor(48e6, 3e6) == 16
    assert uart_divisor(100e6, 3e6) == 33                # 1.0% off
    assert uart_divisor(12e6, 115200) == 104
    with pytest.raises(ValueError, match="off at"):
        uart_divisor(25e6, 3e6)                          # 8.33 cycles: 4% off
    with pytest.raises(ValueError, match="at least 4"):
        uart_divisor(12e6, 6e6)
    with pytest.raises(ValueError, match="positive"):
        uart_divisor(0, 9600)
    with pytest.raises(ValueError, match="at least 4"):
        UART(3)


def test_refused_components_leave_no_warning():
    """A UART or link refused at construction is not reported as created but never used
    (warnings are errors here)."""
    import gc

    from sparsemac.hw import EngineParameters
    from sparsemac.hw.boards.serial_engine import SerialEngine

    for make in (lambda: UART(2), lambda: UARTReceiver(0), lambda: UARTTransmitter(True),
                 lambda: SerialEngine(EngineParameters(lanes=1), 3),
                 lambda: SerialEngine(EngineParameters(lanes=1), 8, rx_fifo_depth=1)):
        with pytest.raises(ValueError):
            make()
    gc.collect()
