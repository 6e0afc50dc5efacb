"""Extra resources for the iCEBreaker (iCE40UP5K-SG48), beyond amaranth-boards' platform.

The engine's link uses the platform's ``uart`` 0 (the FT2232H's channel B: FPGA pin 6 is
RX, pin 9 is TX). ``uart`` 1 puts the link on PMOD1A instead, for a USB-serial adapter
(pin 1 is the FPGA's TX, pin 2 its RX; 3.3 V); select it with ``BoardTop(uart=1)``.
``debug`` mirrors the link and its error flag on PMOD1B, for a logic analyser.
"""

from amaranth.build import Attrs, Pins, Resource, Subsignal

__all__ = ["RESOURCES"]

RESOURCES = [
    Resource("uart", 1,
             Subsignal("rx", Pins("2", dir="i", conn=("pmod", 0))),
             Subsignal("tx", Pins("1", dir="o", conn=("pmod", 0))),
             Attrs(IO_STANDARD="SB_LVCMOS", PULLUP=1)),
    Resource("debug", 0,
             Subsignal("rx", Pins("1", dir="o", conn=("pmod", 1))),
             Subsignal("tx", Pins("2", dir="o", conn=("pmod", 1))),
             Subsignal("error", Pins("3", dir="o", conn=("pmod", 1))),
             Attrs(IO_STANDARD="SB_LVCMOS")),
]
