"""Phase-locked loops for the boards: the nearest frequency the hardware can make, and the
vendor primitive that makes it.

:func:`ice40_pll` and :func:`ecp5_pll` search the divider settings the way Project IceStorm's
``icepll`` and Project Trellis' ``ecppll`` do, within the ranges of the iCE40 sysCLOCK PLL
(Lattice TN1251) and the ECP5 sysCLOCK PLL (TN1263), and return a configuration whose
:meth:`instance` is the primitive as an Amaranth ``Instance``. Neither ever simulates: the
board tops bypass them in simulation.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Instance

__all__ = ["ICE40PLL", "ECP5PLL", "ice40_pll", "ecp5_pll", "MAX_PLL_ERROR"]

#: The largest relative difference between the frequency asked for and the one made.
MAX_PLL_ERROR = 0.01


def _check(kind: str, f_in: float, f_out: float, made: float | None) -> None:
    if made is None or abs(made - f_out) / f_out > MAX_PLL_ERROR:
        near = "" if made is None else f" (the nearest is {made / 1e6:.3f} MHz)"
        raise ValueError(f"The {kind} PLL cannot make {f_out / 1e6:g} MHz from "
                         f"{f_in / 1e6:g} MHz within {MAX_PLL_ERROR:.0%}{near}")


@dataclass(frozen=True)
class ICE40PLL:
    """An iCE40 ``SB_PLL40_PAD`` in SIMPLE feedback mode:
    ``f_out = f_in * (divf + 1) / ((divr + 1) * 2 ** divq)``."""
    f_in: float
    divr: int
    divf: int
    divq: int
    filter_range: int

    @property
    def f_pfd(self) -> float:
        return self.f_in / (self.divr + 1)

    @property
    def f_vco(self) -> float:
        return self.f_pfd * (self.divf + 1)

    @property
    def frequency(self) -> float:
        return self.f_vco / 2 ** self.divq

    def instance(self, pad, clk_out, lock) -> Instance:
        """The primitive, fed straight from the clock pad (``pad`` a raw IO port from
        ``platform.request(..., dir="-")``), driving the global net ``clk_out``."""
        return Instance(
            "SB_PLL40_PAD",
            p_FEEDBACK_PATH="SIMPLE",
            p_DIVR=self.divr, p_DIVF=self.divf, p_DIVQ=self.divq,
            p_FILTER_RANGE=self.filter_range,
            i_PACKAGEPIN=pad, i_RESETB=1, i_BYPASS=0,
            o_PLLOUTGLOBAL=clk_out, o_LOCK=lock,
        )


def ice40_pll(f_in: float, f_out: float) -> ICE40PLL:
    """The iCE40 PLL setting nearest ``f_out`` (PFD 10-133 MHz, VCO 533-1066 MHz, output
    16-275 MHz); :class:`ValueError` when none is within 1%."""
    best, best_error = None, None
    if not 16e6 <= f_out <= 275e6:
        raise ValueError(f"The iCE40 PLL makes 16 to 275 MHz, not {f_out / 1e6:g} MHz")
    for divr in range(16):
        f_pfd = f_in / (divr + 1)
        if not 10e6 <= f_pfd <= 133e6:
            continue
        for divf in range(128):
            f_vco = f_pfd * (divf + 1)
            if not 533e6 <= f_vco <= 1066e6:
                continue
            for divq in range(1, 7):
                error = abs(f_vco / 2 ** divq - f_out)
                if best_error is None or error < best_error:
                    filter_range = next(k for k, edge in enumerate((17e6, 26e6, 44e6, 66e6, 101e6),
                                                                   start=1) if f_pfd < edge) \
                        if f_pfd < 101e6 else 6
                    best, best_error = ICE40PLL(f_in, divr, divf, divq, filter_range), error
    _check("iCE40", f_in, f_out, None if best is None else best.frequency)
    return best


@dataclass(frozen=True)
class ECP5PLL:
    """An ECP5 ``EHXPLLL`` with CLKOP fed back:
    ``f_out = f_in * clkfb_div / clki_div``, VCO ``= f_out * clkop_div``."""
    f_in: float
    clki_div: int
    clkfb_div: int
    clkop_div: int

    @property
    def frequency(self) -> float:
        return self.f_in * self.clkfb_div / self.clki_div

    @property
    def f_vco(self) -> float:
        return self.frequency * self.clkop_div

    def instance(self, clk_in, clk_out, lock) -> Instance:
        """The primitive, from the clock ``clk_in`` (an ordinary input buffer's output)."""
        return Instance(
            "EHXPLLL",
            # The analog settings Trellis' ecppll writes for every configuration.
            a_FREQUENCY_PIN_CLKI=f"{self.f_in / 1e6:g}",
            a_FREQUENCY_PIN_CLKOP=f"{self.frequency / 1e6:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8",
            a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED",
            p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=self.clki_div,
            p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=self.clkop_div,
            p_CLKOP_CPHASE=self.clkop_div - 1, p_CLKOP_FPHASE=0,
            p_FEEDBK_PATH="CLKOP", p_CLKFB_DIV=self.clkfb_div,
            i_RST=0, i_STDBY=0, i_CLKI=clk_in, i_CLKFB=clk_out,
            i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1,
            i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0,
            o_CLKOP=clk_out, o_LOCK=lock,
        )


def ecp5_pll(f_in: float, f_out: float) -> ECP5PLL:
    """The ECP5 PLL setting nearest ``f_out`` (PFD 3.125-400 MHz, VCO 400-800 MHz, output
    up to 400 MHz); :class:`ValueError` when none is within 1%."""
    best, best_error = None, None
    if not 3.125e6 <= f_out <= 400e6:
        raise ValueError(f"The ECP5 PLL makes 3.125 to 400 MHz, not {f_out / 1e6:g} MHz")
    for clki_div in range(1, 129):
        f_pfd = f_in / clki_div
        if not 3.125e6 <= f_pfd <= 400e6:
            continue
        for clkfb_div in range(1, 81):
            made = f_pfd * clkfb_div
            error = abs(made - f_out)
            if best_error is not None and error >= best_error:
                continue
            dividers = [d for d in range(1, 129) if 400e6 <= made * d <= 800e6]
            if dividers:                        # the VCO nearest the middle of its range
                clkop_div = min(dividers, key=lambda d: abs(made * d - 600e6))
                best, best_error = ECP5PLL(f_in, clki_div, clkfb_div, clkop_div), error
    _check("ECP5", f_in, f_out, None if best is None else best.frequency)
    return best
