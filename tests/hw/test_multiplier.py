"""The pipelined multiplier: exact products two or three cycles later for every signedness,
and on an ECP5 platform one MULT18X18D with its registers on (checked by structure: the
toolchain has no simulation model of the registered block; the board build places and times
it)."""

from __future__ import annotations

import random

import pytest
from amaranth.hdl import signed, unsigned

from hw_helpers import ecp5_instances, run_clocked
from sparsemac.hw.multiplier import PipelinedMultiplier


def _range(shape):
    if shape.signed:
        return -(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1
    return 0, (1 << shape.width) - 1


SHAPES = [
    (unsigned(17), unsigned(16)),     # the output stage's low partial product
    (signed(16), unsigned(16)),       # and its high one
    (unsigned(17), unsigned(6)),      # a lane's first entry times entry width (UP5K's)
    (signed(18), signed(18)),
    (unsigned(1), signed(3)),
    (signed(8), signed(8)),           # a lane's weight times activation
]


@pytest.mark.parametrize("latency", [2, 3])
@pytest.mark.parametrize("a_shape, b_shape", SHAPES)
def test_exact_products_latency_cycles_later(a_shape, b_shape, latency):
    check_products(PipelinedMultiplier(a_shape, b_shape, latency=latency), latency)


def check_products(dut, latency):
    """Corner and random operands into ``dut``, each product checked ``latency`` cycles on."""
    a_shape, b_shape = dut.a.shape(), dut.b.shape()
    rng = random.Random(f"{a_shape}{b_shape}")
    a_lo, a_hi = _range(a_shape)
    b_lo, b_hi = _range(b_shape)
    corners = [(a, b) for a in (a_lo, a_hi, 0, -1 if a_shape.signed else 1)
               for b in (b_lo, b_hi, 0, 1)]
    operands = corners + [(rng.randint(a_lo, a_hi), rng.randint(b_lo, b_hi))
                          for _ in range(200)]
    assert dut.latency == latency

    async def bench(ctx):
        # Operands set before tick t are on p after tick t + latency - 1.
        for cycle in range(len(operands) + dut.latency - 1):
            if cycle < len(operands):
                a, b = operands[cycle]
                ctx.set(dut.a, a)
                ctx.set(dut.b, b)
            await ctx.tick()
            if cycle + 1 >= dut.latency:
                a, b = operands[cycle + 1 - dut.latency]
                assert ctx.get(dut.p) == a * b, f"{a} * {b}"

    run_clocked(dut, bench)


def _ecp5_instance(a_shape, b_shape, latency=3):
    instances = ecp5_instances(PipelinedMultiplier(a_shape, b_shape, latency=latency))
    assert len(instances) == 1
    return instances[0][1]


@pytest.mark.parametrize("latency", [2, 3])
@pytest.mark.parametrize("a_shape, b_shape", SHAPES)
def test_ecp5_is_one_registered_mult18x18d(a_shape, b_shape, latency):
    mult = _ecp5_instance(a_shape, b_shape, latency)
    assert mult.type == "MULT18X18D"
    for register in ("INPUTA", "INPUTB", "OUTPUT"):
        assert mult.parameters[f"REG_{register}_CLK"] == "CLK0"
    # The pipeline register is the third cycle.
    assert mult.parameters["REG_PIPELINE_CLK"] == ("CLK0" if latency == 3 else "NONE")
    assert mult.parameters["REG_INPUTC_CLK"] == "NONE"
    # Operands and product bit for bit, in order, and both operands taken as signed (the
    # component extends unsigned ones with a zero).
    for port, width in (("A", 18), ("B", 18), ("P", 36)):
        bits = [mult.ports[f"{port}{i}"][0] for i in range(width)]
        signal = bits[0].value
        assert all(bit.value is signal for bit in bits), port
        assert signal.shape() == signed(width), port
        assert [bit.start for bit in bits] == list(range(width)), port
    assert mult.ports["SIGNEDA"][0].value == mult.ports["SIGNEDB"][0].value == 1
    assert mult.ports["CLK0"][0].domain == "sync"


@pytest.mark.parametrize("a_shape, b_shape", [(unsigned(18), unsigned(6)),
                                              (signed(8), signed(19))])
def test_ecp5_operands_wider_than_the_block_take_the_fabric_pipeline(a_shape, b_shape):
    # A lane's first-bit product has a pointer-wide operand: 18 bits once a lane holds
    # 131,072 entries. No MULT18X18D instance (Yosys splits the plain product), and the
    # same products, latency cycles later.
    assert ecp5_instances(PipelinedMultiplier(a_shape, b_shape, latency=2)) == []
    check_products(PipelinedMultiplier(a_shape, b_shape, latency=2), 2)


def test_latency_is_two_or_three():
    with pytest.raises(ValueError, match="Latency must be 2 or 3 cycles, not 4"):
        PipelinedMultiplier(signed(8), signed(8), latency=4)
