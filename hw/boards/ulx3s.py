"""The ULX3S-85F (ECP5 LFE5U-85F, 25 MHz oscillator on G2, FT231X UART)."""

from amaranth.hdl import Instance, Signal
from amaranth.lib import io

from ..pll import ecp5_pll

__all__ = ["platform", "make_clock", "distribute_reset"]


def platform():
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    return ULX3S_85F_Platform()


def make_clock(m, platform, frequency: float):
    """The engine clock: the oscillator itself, or an ``EHXPLLL`` fed from it.

    Returns ``(clk, locked)``; the board top constrains the clock.
    """
    oscillator = platform.default_clk_frequency
    m.submodules.clk_buffer = clk25 = io.Buffer("i", platform.request("clk25", 0, dir="-"))
    clk, locked = Signal(name="pll_clk"), Signal(name="pll_locked")
    if frequency == oscillator:
        m.d.comb += [clk.eq(clk25.i), locked.eq(1)]
    else:
        pll = ecp5_pll(oscillator, frequency)
        m.submodules.pll = pll.instance(clk25.i, clk, locked)
    return clk, locked


def distribute_reset(m, reset):
    """``reset`` through a ``DCCA`` onto one of the ECP5's global networks.

    nextpnr-ecp5 promotes only clocks to globals; left to the fabric, the reset (one net
    into 19,000 flip-flops at 16 lanes) was routed like any other net, and its router,
    which re-queues every arc through a wire it rips up, never finished at about half the
    seeds.
    """
    distributed = Signal(name="reset_global")
    m.submodules.reset_global = Instance("DCCA", i_CLKI=reset, i_CE=1, o_CLKO=distributed)
    return distributed
