"""The iCEBreaker (iCE40UP5K-SG48, 12 MHz oscillator on pin 35, FT2232H channel B UART)."""

from amaranth.hdl import Signal
from amaranth.lib import io

from ..pll import ice40_pll

__all__ = ["platform", "make_clock", "distribute_reset"]


def platform():
    from amaranth_boards.icebreaker import ICEBreakerPlatform

    return ICEBreakerPlatform()


def make_clock(m, platform, frequency: float):
    """The engine clock: the oscillator itself, or an ``SB_PLL40_PAD`` on its pad.

    Returns ``(clk, locked)``; the board top constrains the clock.
    """
    pad = platform.request("clk12", dir="-")
    oscillator = platform.default_clk_frequency
    clk, locked = Signal(name="pll_clk"), Signal(name="pll_locked")
    if frequency == oscillator:
        m.submodules.clk_buffer = buffer = io.Buffer("i", pad)
        m.d.comb += [clk.eq(buffer.i), locked.eq(1)]
    else:
        pll = ice40_pll(oscillator, frequency)
        m.submodules.pll = pll.instance(pad.io, clk, locked)
    return clk, locked


def distribute_reset(m, reset):
    """``reset`` as it is: nextpnr-ice40 puts it on a global network itself (``promoting
    ... [reset]`` in its log)."""
    return reset
