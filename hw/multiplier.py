"""A multiplier with registers before and after it (and inside): on the ECP5, one DSP block's own."""

from __future__ import annotations

from amaranth.hdl import ClockSignal, Const, Instance, Module, Shape, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["PipelinedMultiplier"]

#: Operand width of one ECP5 ``MULT18X18D`` (signed).
_ECP5_OPERAND_BITS = 18


class PipelinedMultiplier(wiring.Component):
    """``p = a * b``, two or three cycles later, one product a cycle.

    The registers are the operands', the product's and, with ``latency=3``, a copy of the
    product. Written as plain Amaranth, Yosys maps the multiply to a DSP block without any
    of them: the ECP5's ``MULT18X18D`` then sits between fabric registers whose routes to
    and from the DSP column were the 16-lane build's critical path (docs/fpga.md). On an
    ECP5 platform (``platform.family == "ecp5"``) the component is therefore one
    ``MULT18X18D`` with its input and output registers (and with ``latency=3`` its pipeline
    register) enabled, which nextpnr times as register-to-register inside the block; on any
    other platform, and in simulation, it is the same pipeline in registers without reset
    (data only: the caller's valid flags are reset), which Yosys' ``ice40_dsp`` can take
    into an ``SB_MAC16``'s registers. On the ECP5, operands wider than the block's (18 bits
    signed or 17 unsigned) take the same pipeline in registers, which Yosys splits over
    several blocks: correct, but with fabric registers and adders around them. Both have the
    same latency and results.

    Parameters
    ----------
    a_shape, b_shape : the operands' shapes (signed or unsigned).
    latency : 2 (operands and product registered) or 3 (the product registered again).

    Members
    -------
    a, b : In
        Operands, taken every cycle.
    p : Out
        ``a * b`` of the operands taken :attr:`latency` cycles before, in the shape
        Amaranth gives ``a * b`` (unsigned only if both operands are).

    Latency and back-pressure: a fixed pipeline of :attr:`latency` cycles, no enable, no
    back-pressure; the caller carries valid flags and side data alongside.
    """

    def __init__(self, a_shape, b_shape, *, latency: int = 3):
        if latency not in (2, 3):
            self._MustUse__silence = True           # refused: no "never used" warning later
            raise ValueError(f"Latency must be 2 or 3 cycles, not {latency!r}")
        self._latency = latency
        self._a_shape = a = Shape.cast(a_shape)
        self._b_shape = b = Shape.cast(b_shape)
        super().__init__({
            "a": In(a),
            "b": In(b),
            "p": Out((Const(0, a) * Const(0, b)).shape()),     # Amaranth's product shape
        })

    @property
    def latency(self) -> int:
        """Cycles from taking operands to their product on ``p``."""
        return self._latency

    @staticmethod
    def fits_ecp5(shape: Shape) -> bool:
        """Whether an operand of ``shape`` is one ``MULT18X18D`` operand (18-bit signed)."""
        return shape.width + (0 if shape.signed else 1) <= _ECP5_OPERAND_BITS

    def elaborate(self, platform):
        on_ecp5 = getattr(platform, "family", None) == "ecp5"
        m = Module()
        if on_ecp5 and self.fits_ecp5(self._a_shape) and self.fits_ecp5(self._b_shape):
            self._elaborate_ecp5(m)
        else:
            a = Signal.like(self.a, name="a_reg", reset_less=True)
            b = Signal.like(self.b, name="b_reg", reset_less=True)
            product = Signal.like(self.p, name="product", reset_less=True)
            m.d.sync += [a.eq(self.a), b.eq(self.b), product.eq(a * b)]
            if self._latency == 3:
                product_again = Signal.like(self.p, name="product_again", reset_less=True)
                m.d.sync += product_again.eq(product)
                product = product_again
            m.d.comb += self.p.eq(product)
        return m

    def _elaborate_ecp5(self, m: Module) -> None:
        # Both operands as 18-bit signed (an unsigned one zero-extended), so the block's
        # signed 36-bit product is exact whatever the operands' signedness.
        a = Signal(signed(_ECP5_OPERAND_BITS), name="a_ext")
        b = Signal(signed(_ECP5_OPERAND_BITS), name="b_ext")
        product = Signal(signed(2 * _ECP5_OPERAND_BITS), name="product")
        m.d.comb += [a.eq(self.a), b.eq(self.b), self.p.eq(product)]
        ports = {
            **{f"i_A{i}": a[i] for i in range(_ECP5_OPERAND_BITS)},
            **{f"i_B{i}": b[i] for i in range(_ECP5_OPERAND_BITS)},
            **{f"i_C{i}": Const(0) for i in range(_ECP5_OPERAND_BITS)},
            **{f"o_P{i}": product[i] for i in range(2 * _ECP5_OPERAND_BITS)},
            "i_SIGNEDA": Const(1), "i_SIGNEDB": Const(1),
            "i_SOURCEA": Const(0), "i_SOURCEB": Const(0),
            "i_CLK0": ClockSignal(), "i_CE0": Const(1), "i_RST0": Const(0),
        }
        registers = ("INPUTA", "INPUTB", "OUTPUT") + (("PIPELINE",) if self._latency == 3
                                                      else ())
        controls = {
            # nextpnr times a clocked MULT18X18D only from CLK0.
            f"p_REG_{register}_{control}": value
            for register in registers
            for control, value in (("CLK", "CLK0"), ("CE", "CE0"), ("RST", "RST0"))
        }
        unused = {f"p_REG_{register}_CLK": "NONE"
                  for register in ("INPUTC", "PIPELINE") if register not in registers}
        m.submodules.mult18x18d = Instance(
            "MULT18X18D",
            **controls, **unused,
            p_CLK0_DIV="ENABLED", p_CLK1_DIV="ENABLED",
            p_CLK2_DIV="ENABLED", p_CLK3_DIV="ENABLED",
            p_HIGHSPEED_CLK="NONE", p_GSR="DISABLED", p_CAS_MATCH_REG="FALSE",
            p_SOURCEB_MODE="B_SHIFT", p_MULT_BYPASS="DISABLED", p_RESETMODE="SYNC",
            **ports,
        )
