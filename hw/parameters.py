"""The engine's build parameters and the record layouts its blocks exchange.

Everything the gateware is sized by is fixed at elaboration by one :class:`EngineParameters`.
The layouts here (a broadcast column, a layer-table row) are shared by several blocks, so they
live in one place rather than being restated in each.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from sparsemac.sw.format import MAX_RUN_BITS
from sparsemac.sw.numerics import (ACTIVATION_BITS_CHOICES, MAX_ACCUMULATOR_BITS, MAX_SHIFT,
                           MULTIPLIER_BITS, WEIGHT_BITS_RANGE)

__all__ = ["EngineParameters", "MAX_ENGINE_LANES", "column_layout", "layer_layout", "row_param_layout"]

#: The most lanes one engine build may have (the format allows more).
MAX_ENGINE_LANES = 32


@dataclass(frozen=True)
class EngineParameters:
    """What one engine build can hold and compute.

    Attributes
    ----------
    lanes : multiply-accumulate lanes, 1 to 32
    weight_bits : the widest entry value (weight) the lanes decode, 4 to 16
    activation_bits : activation width, 8 or 16
    accumulator_bits : signed accumulator width, up to 47
    max_run_bits : the widest run field the lanes decode, 1 to 8
    word_bits : width W of an entry-memory word, a power of two at least
        ``weight_bits + max_run_bits``
    entry_words : W-bit entry-memory words per lane, over all layers
    pointer_depth : column pointers per lane, over all layers
    slot_depth : row-parameter records (bias, multiplier, shift) per lane, over all layers
    bank_depth : activations per bank and per buffer; also the most slots a layer may have
        and the most groups a layer's input may span
    layer_depth : rows of the layer table
    fifo_depth : entries in each lane's activation FIFO
    lanes_per_output_stage : lanes that share one output stage (a divisor of ``lanes``). 1,
        the default, gives every lane its own stage and a layer's output walk takes ``slots``
        cycles; ``lanes`` gives one stage for all, which saves its multiplier and adders
        ``lanes - 1`` times over but walks ``lanes x slots`` cycles (the iCE40 UP5K's choice)
    compact : the lanes' and output stages' pipeline registers where their data is
        narrowest rather than beside their memories: the same cycles and results, fewer
        flip-flops, longer paths out of the memories (the iCE40 UP5K's choice, where a
        flip-flop that no LUT of its own feeds takes a logic cell; hw/lane.py,
        hw/output_stage.py)
    """
    lanes: int = 4
    weight_bits: int = 8
    activation_bits: int = 8
    accumulator_bits: int = 32
    max_run_bits: int = 4
    word_bits: int = 16
    entry_words: int = 256
    pointer_depth: int = 256
    slot_depth: int = 64
    bank_depth: int = 32
    layer_depth: int = 4
    fifo_depth: int = 4
    lanes_per_output_stage: int = 1
    compact: bool = False

    def __post_init__(self):
        def integer(name):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an integer, not {value!r}")
            return value

        for name, field in self.__dataclass_fields__.items():
            if field.type == "bool":
                if not isinstance(getattr(self, name), bool):
                    raise TypeError(f"{name} must be True or False, not {getattr(self, name)!r}")
            else:
                integer(name)
        if not 1 <= self.lanes <= MAX_ENGINE_LANES:
            raise ValueError(f"Lane count must be 1 to {MAX_ENGINE_LANES}, not {self.lanes!r}")
        lo, hi = WEIGHT_BITS_RANGE
        if not lo <= self.weight_bits <= hi:
            raise ValueError(f"Weight width must be {lo} to {hi} bits, not {self.weight_bits!r}")
        if self.activation_bits not in ACTIVATION_BITS_CHOICES:
            raise ValueError(f"Activation width must be one of {ACTIVATION_BITS_CHOICES} bits, "
                             f"not {self.activation_bits!r}")
        if not self.activation_bits + 1 <= self.accumulator_bits <= MAX_ACCUMULATOR_BITS:
            raise ValueError(f"Accumulator width must be {self.activation_bits + 1} to "
                             f"{MAX_ACCUMULATOR_BITS} bits, not {self.accumulator_bits!r}")
        if not 1 <= self.max_run_bits <= MAX_RUN_BITS:
            raise ValueError(f"Largest run width must be 1 to {MAX_RUN_BITS} bits, "
                             f"not {self.max_run_bits!r}")
        entry = self.weight_bits + self.max_run_bits
        if self.word_bits < entry or self.word_bits & (self.word_bits - 1):
            raise ValueError(f"Entry word width must be a power of two of at least {entry} "
                             f"bits, not {self.word_bits!r}")
        if self.word_bits > 64:
            raise ValueError(f"Entry word width must be at most 64 bits, not {self.word_bits!r}")
        for name in ("entry_words", "pointer_depth", "slot_depth", "bank_depth", "layer_depth",
                     "fifo_depth"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)!r}")
        if self.entry_words % 2:
            raise ValueError(f"Entry words per lane must be even, not {self.entry_words!r}")
        if self.pointer_depth < 2:
            raise ValueError(f"Pointers per lane must be at least 2, not {self.pointer_depth!r}")
        if not (1 <= self.lanes_per_output_stage <= self.lanes
                and self.lanes % self.lanes_per_output_stage == 0):
            raise ValueError(f"Lanes per output stage must divide the {self.lanes} lanes, "
                             f"not {self.lanes_per_output_stage!r}")
        if self.fifo_depth > 64:
            raise ValueError(f"FIFO depth must be at most 64, not {self.fifo_depth!r}")

    # -- Derived widths -----------------------------------------------------------------------

    @property
    def output_stages(self) -> int:
        """How many output stages the core has; stage ``g`` serves lanes ``g x Ns`` to
        ``g x Ns + Ns - 1`` (``Ns = lanes_per_output_stage``)."""
        return self.lanes // self.lanes_per_output_stage

    @property
    def max_entries(self) -> int:
        """The most entries a lane's memory holds (all of the narrowest kind)."""
        return self.entry_words * self.word_bits // (WEIGHT_BITS_RANGE[0] + 1)

    @property
    def pointer_bits(self) -> int:
        """Width of a stored column pointer (an entry index within a layer)."""
        return max(1, self.max_entries.bit_length())

    @property
    def bit_address_bits(self) -> int:
        """Width of a bit position in a lane's entry memory."""
        return (self.entry_words * self.word_bits).bit_length()

    @property
    def column_bits(self) -> int:
        """Width of a physical column index."""
        return max(1, (self.lanes * self.bank_depth).bit_length())

    @property
    def slot_bits(self) -> int:
        """Width of a slot index (one more than needed, so entries past the end are seen)."""
        return max(1, self.bank_depth.bit_length()) + 1

    @property
    def product_bits(self) -> int:
        return self.weight_bits + self.activation_bits


def column_layout(params: EngineParameters) -> data.StructLayout:
    """One broadcast nonzero activation: its physical column and value."""
    return data.StructLayout({
        "column": unsigned(params.column_bits),
        "value": signed(params.activation_bits),
    })


def layer_layout(params: EngineParameters) -> data.StructLayout:
    """One row of the layer table (docs/protocol.md gives its byte form)."""
    return data.StructLayout({
        "columns": unsigned(params.column_bits),
        "groups": unsigned(max(1, params.bank_depth.bit_length())),
        "slots": unsigned(max(1, params.bank_depth.bit_length())),
        "value_bits": unsigned(5),
        "run_bits": unsigned(4),
        "relu": unsigned(1),
        "entry_base": unsigned(max(1, params.entry_words.bit_length())),
        "pointer_base": unsigned(max(1, params.pointer_depth.bit_length())),
        "param_base": unsigned(max(1, params.slot_depth.bit_length())),
    })


def row_param_layout(params: EngineParameters) -> data.StructLayout:
    """The requantization record of one slot (docs/numerics.md section 5)."""
    return data.StructLayout({
        "bias": signed(params.accumulator_bits),
        "multiplier": unsigned(MULTIPLIER_BITS),
        "shift": unsigned(max(1, MAX_SHIFT.bit_length())),
    })
