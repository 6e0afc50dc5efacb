"""Gateware: the Amaranth sparse matrix-vector engine and its board tops.

One file, one block (docs/engine.md gives the architecture):

- :mod:`.parameters` - :class:`EngineParameters`, the build's sizes, and shared layouts;
- :mod:`.front_end` - scans the activation banks, broadcasts nonzeros;
- :mod:`.lane` - pointer fetch, CSR(C) entry decode, multiply-accumulate;
- :mod:`.output_stage` - bias, requantization, ReLU and clamp;
- :mod:`.core` - layer sequencing, FIFOs, activation buffers, cycle counter;
- :mod:`.command` - the byte protocol of docs/protocol.md;
- :mod:`.engine` - the top, :class:`Engine`, with two byte streams ``i`` and ``o``;
- :mod:`.broadcast`, :mod:`.skid_buffer`, :mod:`.multiplier`, :mod:`.block_ram` - the
  pieces they share: the column fan-out, a registered stream stage, and a multiplier
  and a memory whose registers are the ECP5's DSP and block RAM blocks' own;
- :mod:`.uart`, :mod:`.pll`, :mod:`.power_on_reset`, :mod:`.boards` - the board tops.
"""

from .engine import Engine
from .parameters import EngineParameters

__all__ = ["Engine", "EngineParameters"]
