"""Storage footprint of packed layers, next to the seed paper's formulas (docs/footprint.md).

For each layer: the dense bytes, the paper's bit-mask and CSR(C) figures (Zhu & Gupta,
Table 5: 1 bit per element, or ``run_bits`` per nonzero, for the position information
alone), and what the engine's memories actually hold for it, fillers and pointers included.
The image file stores pointers and row parameters in wider fixed fields; its size is reported
separately by ``sparsemac pack``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .format import LayerImage, ModelImage
from .golden import layer_matrix
from .numerics import accumulator_bits_needed

__all__ = ["LayerFootprint", "ModelFootprint", "footprint", "paper_bitmask_bytes",
           "paper_csrc_bytes", "expected_fillers_per_nonzero", "position_entropy_bits"]

#: Bits of a slot's requantization pair: the 16-bit multiplier and the 6-bit shift.
REQUANT_BITS = 16 + 6


def paper_bitmask_bytes(elements: int) -> float:
    """The seed paper's bit-mask overhead: one bit per element."""
    return elements / 8


def paper_csrc_bytes(nonzeros: int, run_bits: int = 4) -> float:
    """The seed paper's CSR(C) overhead: ``run_bits`` per nonzero, fillers ignored."""
    return nonzeros * run_bits / 8


def expected_fillers_per_nonzero(density: float, run_bits: int) -> float:
    """Fillers per nonzero for independent positions at ``density``: ``q / (1 - q)`` with
    ``q = (1 - density) ** 2**run_bits`` (../shared/ANCHORS.md)."""
    q = (1.0 - density) ** (1 << run_bits)
    return q / (1.0 - q)


def position_entropy_bits(density: float) -> float:
    """The information-theoretic floor for position bits per nonzero, ``H(d) / d``."""
    d = density
    return float(-(d * np.log2(d) + (1 - d) * np.log2(1 - d)) / d)


@dataclass(frozen=True)
class LayerFootprint:
    """Footprint of one layer. Byte counts are of weights and position information only,
    except ``image_bytes``, which is everything the engine stores for the layer."""
    name: str
    rows: int
    columns: int
    nonzeros: int
    density: float
    value_bits: int
    run_bits: int
    fillers: int
    dense_bytes: float          # every element at value_bits
    bitmask_bytes: float        # paper: 1 bit per element (overhead only)
    csrc_formula_bytes: float   # paper: run_bits per nonzero (overhead only)
    entry_bytes: float          # the lane bit streams: (nonzeros + fillers) * (value + run bits)
    pointer_bytes: float        # lanes * (physical_columns + 1) pointers, each just wide enough
    row_parameter_bytes: float  # bias (accumulator width), multiplier (16), shift (6) per slot
    image_bytes: float          # entries + pointers + row parameters
    bits_per_nonzero: float     # entry bits / nonzeros (fillers included, pointers not)
    lane_balance: float         # mean lane entries / max lane entries

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ModelFootprint:
    layers: tuple[LayerFootprint, ...]

    def total(self, field: str) -> float:
        return sum(getattr(layer, field) for layer in self.layers)

    def as_dict(self) -> dict:
        fields = ["nonzeros", "fillers", "dense_bytes", "bitmask_bytes", "csrc_formula_bytes",
                  "entry_bytes", "pointer_bytes", "row_parameter_bytes", "image_bytes"]
        return {"layers": [layer.as_dict() for layer in self.layers],
                "total": {field: self.total(field) for field in fields}}


def layer_footprint(layer: LayerImage, activation_bits: int) -> LayerFootprint:
    elements = layer.rows * layer.columns
    nonzeros = layer.nonzeros
    entry_bits = layer.values.size * layer.entry_bits
    # Engine memory at the narrowest widths that hold the values: a pointer addresses the
    # lane's entries, a bias is as wide as the layer's accumulators need.
    pointer_bits = max(1, int(layer.lane_entries.max()).bit_length())
    bias_bits = accumulator_bits_needed(layer_matrix(layer), layer.bias.reshape(-1),
                                        activation_bits)
    pointer_bytes = layer.pointers.size * pointer_bits / 8
    row_bytes = layer.row_of_slot.size * (bias_bits + REQUANT_BITS) / 8
    work = layer.lane_entries
    return LayerFootprint(
        name=layer.name, rows=layer.rows, columns=layer.columns, nonzeros=nonzeros,
        density=nonzeros / elements, value_bits=layer.value_bits, run_bits=layer.run_bits,
        fillers=layer.fillers,
        dense_bytes=elements * layer.value_bits / 8,
        bitmask_bytes=paper_bitmask_bytes(elements),
        csrc_formula_bytes=paper_csrc_bytes(nonzeros, layer.run_bits),
        entry_bytes=entry_bits / 8, pointer_bytes=pointer_bytes, row_parameter_bytes=row_bytes,
        image_bytes=entry_bits / 8 + pointer_bytes + row_bytes,
        bits_per_nonzero=entry_bits / nonzeros if nonzeros else 0.0,
        lane_balance=float(work.mean() / work.max()) if work.max() > 0 else 1.0)


def footprint(image: ModelImage) -> ModelFootprint:
    """The footprint of every layer of a packed model."""
    return ModelFootprint(tuple(layer_footprint(layer, image.activation_bits)
                                 for layer in image.layers))
