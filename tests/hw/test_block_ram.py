"""The block RAM: every read's word two cycles later (one without its output register), held
while its read is disabled; and on
an ECP5 platform DP16KDs with their output registers on, each bit of the words and of the
addresses on the pin the block's data sheet gives it (checked by structure: the toolchain has
no simulation model of the block; the board build places and times it)."""

from __future__ import annotations

import random

import pytest

from hw_helpers import ecp5_instances, run_clocked
from sparsemac.hw.block_ram import BlockRAM


@pytest.mark.parametrize("width, depth, read_ports", [
    (15, 512, 2),         # the ULX3S lane's pointers
    (16, 512, 1),         # and its entry words
    (1, 3, 1),
    (40, 17, 2),
])
@pytest.mark.parametrize("output_register, latency", [(True, 2), (False, 1)])
def test_reads_show_their_word_latency_cycles_later(width, depth, read_ports, output_register,
                                                    latency):
    rng = random.Random(f"{width} {depth} {read_ports}")
    dut = BlockRAM(width, depth, read_ports=read_ports, name="memory",
                   output_register=output_register)
    assert dut.latency == latency
    contents = [0] * depth              # the contents start as zeros

    async def bench(ctx):
        shown = [[None] * read_ports for _ in range(latency)]   # words due in 1 .. latency
        held = [0] * read_ports
        for cycle in range(600):
            write = rng.random() < 0.4
            addr = rng.randrange(depth)
            value = rng.randrange(1 << width)
            ctx.set(dut.write.en, write)
            ctx.set(dut.write.addr, addr)
            ctx.set(dut.write.data, value)
            due = []
            for index, port in enumerate(dut.read):
                enabled = rng.random() < 0.8
                # Never the address written in the same cycle (returns anything).
                read_addr = rng.choice([a for a in range(depth) if not (write and a == addr)]
                                       or [None])
                if read_addr is None:
                    enabled, read_addr = False, 0
                ctx.set(port.en, enabled)
                ctx.set(port.addr, read_addr)
                if enabled:
                    held[index] = contents[read_addr]
                due.append(held[index])
            if write:
                contents[addr] = value
            await ctx.tick()
            shown = [*shown[1:], due]
            if cycle >= latency - 1:
                for index, port in enumerate(dut.read):
                    assert ctx.get(port.data) == shown[0][index], f"cycle {cycle} port {index}"

    run_clocked(dut, bench)


def _ecp5_blocks(width, depth, read_ports=1, output_register=True):
    dut = BlockRAM(width, depth, read_ports=read_ports, name="memory",
                   output_register=output_register)
    return dut, ecp5_instances(dut)


@pytest.mark.parametrize("width, depth, read_ports, block_width, lsb, blocks_per_port", [
    (15, 512, 2, 18, 4, 1),     # x18, 1,024 deep
    (16, 1024, 1, 18, 4, 1),
    (32, 1024, 1, 18, 4, 2),    # two blocks side by side
    (8, 2000, 1, 9, 3, 1),      # x9, 2,048 deep
    (5, 4096, 2, 4, 2, 2),      # x4
    (3, 16384, 1, 1, 0, 3),     # x1, 16,384 deep
])
def test_ecp5_is_dp16kds_with_output_registers(width, depth, read_ports, block_width, lsb,
                                               blocks_per_port):
    dut, blocks = _ecp5_blocks(width, depth, read_ports)
    assert len(blocks) == read_ports * blocks_per_port
    addr_bits = len(dut.write.addr)
    for name, block in blocks:
        index = int(name.split("_read")[1].split("_")[0])
        low = int(name.split("_bits")[1])
        assert block.type == "DP16KD"
        params = block.parameters
        assert (params["DATA_WIDTH_A"], params["DATA_WIDTH_B"]) == (block_width, block_width)
        assert (params["REGMODE_A"], params["REGMODE_B"]) == ("NOREG", "OUTREG")
        assert block.ports["CLKA"][0].domain == block.ports["CLKB"][0].domain == "sync"
        port = dut.read[index]
        assert block.ports["CEB"][0] is port.en
        assert block.ports["WEA"][0] is dut.write.en
        assert block.ports["WEB"][0].value == 0
        bits = min(block_width, width - low)
        # Data: write bit low + i on DIA i, read bit low + i from DOB i.
        for i in range(bits):
            dia = block.ports[f"DIA{i}"][0]
            assert (dia.value is dut.write.data, dia.start) == (True, low + i)
            dob = block.ports[f"DOB{i}"][0]
            assert (dob.value is port.data, dob.start) == (True, low + i)
        assert all(block.ports[f"DIA{i}"][0].value == 0 for i in range(bits, 18))
        assert not any(f"DOB{i}" in block.ports for i in range(bits, 18))
        # Addresses: the word address from pin lsb up, x18's byte enables on.
        for prefix, addr in (("ADA", dut.write.addr), ("ADB", port.addr)):
            for i in range(14):
                pin = block.ports[f"{prefix}{i}"][0]
                if lsb <= i < lsb + addr_bits:
                    assert (pin.value is addr, pin.start) == (True, i - lsb), (prefix, i)
                else:
                    assert pin.value == (1 if block_width == 18 and i < 2 else 0), (prefix, i)


def test_ecp5_without_output_register():
    for output_register, mode in ((True, "OUTREG"), (False, "NOREG")):
        _, blocks = _ecp5_blocks(16, 1024, output_register=output_register)
        assert [block.parameters["REGMODE_B"] for _, block in blocks] == [mode]


def test_ecp5_memory_deeper_than_a_block_is_a_memory():
    _, blocks = _ecp5_blocks(4, 16385)
    assert blocks == []


def test_refuses_empty_shapes():
    for width, depth, ports in ((0, 4, 1), (4, 0, 1), (4, 4, 0), (4.0, 4, 1)):
        with pytest.raises(ValueError, match="must be a positive integer"):
            BlockRAM(width, depth, read_ports=ports, name="memory")
