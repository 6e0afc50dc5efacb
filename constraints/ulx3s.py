"""Extra resources for the ULX3S (ECP5 LFE5U-85F-6BG381C), beyond amaranth-boards' platform.

The engine's link uses the platform's ``uart`` 0 (the FT231X: FPGA pin M1 is RX, L4 is TX).
``uart`` 1 puts the link on GPIO pins gp0 (B11, the FPGA's TX) and gn0 (C11, its RX), for a
USB-serial adapter; select it with ``BoardTop(uart=1)``. ``debug`` mirrors the link and its
error flag on gp1, gn1 and gp2 for a logic analyser.
"""

from amaranth.build import Attrs, Pins, Resource, Subsignal

__all__ = ["RESOURCES"]

RESOURCES = [
    Resource("uart", 1,
             Subsignal("rx", Pins("C11", dir="i")),
             Subsignal("tx", Pins("B11", dir="o")),
             Attrs(IO_TYPE="LVCMOS33", PULLMODE="UP")),
    Resource("debug", 0,
             Subsignal("rx", Pins("A10", dir="o")),
             Subsignal("tx", Pins("A11", dir="o")),
             Subsignal("error", Pins("A9", dir="o")),
             Attrs(IO_TYPE="LVCMOS33")),
]
