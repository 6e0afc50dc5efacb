"""The engine's memory format: CSR(C) entries per lane, column pointers, row parameters.

docs/format.md is the specification; this module is its one implementation on the host side.
``hw/`` and ``sim/`` import it rather than re-deriving any part of the layout.

Vocabulary (docs/format.md section 1):

- A layer has ``rows`` outputs and ``columns`` inputs. Its rows are spread over ``lanes``;
  each lane holds up to ``slots = ceil(rows / lanes)`` of them, and ``row_of_slot[lane, slot]``
  names the original row held there (-1 for an empty slot).
- The engine sees the layer's inputs in *physical* order: physical column ``c`` lives in
  activation bank ``c % lanes`` at address ``c // lanes``. For the first layer physical order
  is the original order; for a later layer physical column ``slot * lanes + lane`` is the
  output of the previous layer's (lane, slot). ``input_order[c]`` names the original input
  at physical column ``c`` (-1 for padding).
- Each lane stores its part of the layer column by column as entries (value, run): ``run`` is
  the number of zero slots before the entry since the previous entry of the same column (or
  since slot 0). A gap of ``2**run_bits`` or more zeros is bridged by filler entries
  ``(0, 2**run_bits - 1)``.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .numerics import check_activation_bits, check_weight_bits, signed_range
from .quantize import QuantLayer, QuantModel

__all__ = [
    "FORMAT_VERSION", "MAX_RUN_BITS", "MAX_LANES",
    "LayerImage", "ModelImage", "ImageFormatError",
    "pack_model", "pack_layer", "unpack_model", "unpack_layer",
    "assign_rows", "choose_run_bits", "entry_positions", "encode_lane_stream", "decode_lane_stream",
]

FORMAT_VERSION = 1
#: The widest run field the format allows.
MAX_RUN_BITS = 8
#: The most lanes the format allows.
MAX_LANES = 64


class ImageFormatError(ValueError):
    """A model image is malformed, corrupt, or inconsistent with itself."""


@dataclass(frozen=True, eq=False)
class LayerImage:
    """One layer as the engine stores it.

    Attributes
    ----------
    name : the layer's name in the source model
    rows, columns : the original weight shape
    lanes : the number of lanes the layer is spread over
    value_bits : signed width of an entry's value (the layer's weight width)
    run_bits : width of an entry's run field, 1 to :data:`MAX_RUN_BITS`
    relu : the output stage applies ReLU
    row_of_slot : (lanes, slots) int64, original row held in each slot, -1 if empty
    input_order : (physical_columns,) int64, original input at each physical column, -1 if none
    pointers : (lanes, physical_columns + 1) int64; lane ``l``'s entries of physical column
        ``c`` are its entries ``pointers[l, c]`` to ``pointers[l, c + 1] - 1``
    values, runs : (entries,) int64, all lanes' entries, lane 0's first
    bias, multiplier, shift : (lanes, slots) int64 row parameters (0 in empty slots)
    weight_scale : (rows,) float64 or None; output_scale : float or None
    """
    name: str
    rows: int
    columns: int
    lanes: int
    value_bits: int
    run_bits: int
    relu: bool
    row_of_slot: np.ndarray
    input_order: np.ndarray
    pointers: np.ndarray
    values: np.ndarray
    runs: np.ndarray
    bias: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray
    weight_scale: np.ndarray | None = None
    output_scale: float | None = None

    def __post_init__(self):
        self.validate()

    @property
    def slots(self) -> int:
        return self.row_of_slot.shape[1]

    @property
    def physical_columns(self) -> int:
        return self.input_order.shape[0]

    @property
    def entry_bits(self) -> int:
        return self.value_bits + self.run_bits

    @property
    def lane_entries(self) -> np.ndarray:
        """(lanes,) entries stored per lane, fillers included."""
        return self.pointers[:, -1]

    @property
    def lane_offsets(self) -> np.ndarray:
        """(lanes + 1,) where each lane's entries start in :attr:`values` and :attr:`runs`."""
        return np.concatenate([[0], np.cumsum(self.lane_entries)])

    @property
    def column_entries(self) -> np.ndarray:
        """(lanes, physical_columns) entries per lane per physical column."""
        return np.diff(self.pointers, axis=1)

    @property
    def nonzeros(self) -> int:
        return int(np.count_nonzero(self.values))

    @property
    def fillers(self) -> int:
        return int(self.values.size - self.nonzeros)

    def lane_stream(self, lane: int) -> bytes:
        """Lane ``lane``'s entries as the bit stream of docs/format.md section 3."""
        start, end = self.lane_offsets[lane], self.lane_offsets[lane + 1]
        return encode_lane_stream(self.values[start:end], self.runs[start:end],
                                  self.value_bits, self.run_bits)

    def validate(self) -> None:
        """Check every invariant of docs/format.md; raise :class:`ImageFormatError`."""
        where = f"Layer {self.name!r}"
        try:
            check_weight_bits(self.value_bits)
        except ValueError as error:
            raise ImageFormatError(f"{where}: {error}") from None
        if not 1 <= self.run_bits <= MAX_RUN_BITS:
            raise ImageFormatError(f"{where}: run field width must be 1 to {MAX_RUN_BITS} "
                                   f"bits, not {self.run_bits}")
        if not 1 <= self.lanes <= MAX_LANES:
            raise ImageFormatError(f"{where}: lane count must be 1 to {MAX_LANES}, not {self.lanes}")
        if self.rows < 1 or self.columns < 1:
            raise ImageFormatError(f"{where}: shape {self.rows}x{self.columns} is empty")
        slots = -(-self.rows // self.lanes)
        expect = {"row_of_slot": (self.lanes, slots), "bias": (self.lanes, slots),
                  "multiplier": (self.lanes, slots), "shift": (self.lanes, slots),
                  "pointers": (self.lanes, self.physical_columns + 1)}
        for field, shape in expect.items():
            if getattr(self, field).shape != shape:
                raise ImageFormatError(f"{where}: {field} has shape {getattr(self, field).shape},"
                                       f" expected {shape}")
        held = self.row_of_slot[self.row_of_slot >= 0]
        if held.size != self.rows or not np.array_equal(np.sort(held), np.arange(self.rows)):
            raise ImageFormatError(f"{where}: row_of_slot must hold each of the {self.rows} rows"
                                   f" exactly once")
        used = self.input_order[self.input_order >= 0]
        if self.input_order.min(initial=-1) < -1 or used.max(initial=-1) >= self.columns \
                or np.unique(used).size != used.size:
            raise ImageFormatError(f"{where}: input_order must name each input at most once")
        if np.any(self.pointers[:, 0] != 0) or np.any(np.diff(self.pointers, axis=1) < 0):
            raise ImageFormatError(f"{where}: column pointers must start at 0 and never decrease")
        if self.values.shape != self.runs.shape or self.values.size != self.lane_entries.sum():
            raise ImageFormatError(f"{where}: {self.values.size} entries stored but the column "
                                   f"pointers account for {int(self.lane_entries.sum())}")
        lo, hi = signed_range(self.value_bits)
        if self.values.size and (self.values.min() < lo or self.values.max() > hi):
            raise ImageFormatError(f"{where}: entry values exceed the {self.value_bits}-bit range")
        if self.runs.size and (self.runs.min() < 0 or self.runs.max() >= 1 << self.run_bits):
            raise ImageFormatError(f"{where}: entry runs exceed the {self.run_bits}-bit field")
        empty = self.row_of_slot < 0
        if np.any(self.bias[empty]) or np.any(self.multiplier[empty]) or np.any(self.shift[empty]):
            raise ImageFormatError(f"{where}: empty slots must have zero row parameters")


@dataclass(frozen=True, eq=False)
class ModelImage:
    """A packed model: layers run back to back on one engine with ``lanes`` lanes."""
    layers: tuple[LayerImage, ...]
    activation_bits: int
    input_scale: float | None = None

    def __post_init__(self):
        try:
            check_activation_bits(self.activation_bits)
        except ValueError as error:
            raise ImageFormatError(str(error)) from None
        if not self.layers:
            raise ImageFormatError("A model image needs at least one layer")
        first = self.layers[0]
        if first.physical_columns != first.columns or \
                not np.array_equal(first.input_order, np.arange(first.columns)):
            raise ImageFormatError("The first layer's inputs must be in their original order")
        for before, after in zip(self.layers, self.layers[1:]):
            if after.lanes != before.lanes:
                raise ImageFormatError("Every layer of a model must use the same lane count")
            if after.columns != before.rows:
                raise ImageFormatError(f"Layer {after.name!r} takes {after.columns} inputs but "
                                       f"{before.name!r} gives {before.rows}")
            if not np.array_equal(after.input_order, _physical_outputs(before)):
                raise ImageFormatError(f"Layer {after.name!r}: input_order does not follow the "
                                       f"slots of {before.name!r}")

    @property
    def lanes(self) -> int:
        return self.layers[0].lanes

    @property
    def input_size(self) -> int:
        return self.layers[0].columns

    @property
    def output_size(self) -> int:
        return self.layers[-1].rows

    @property
    def output_scale(self) -> float | None:
        return self.layers[-1].output_scale

    @property
    def max_run_bits(self) -> int:
        return max(layer.run_bits for layer in self.layers)

    @property
    def max_value_bits(self) -> int:
        return max(layer.value_bits for layer in self.layers)

    def accumulator_bits(self) -> int:
        """The accumulator width that no input can overflow, over all layers."""
        return unpack_model(self).accumulator_bits()


def _physical_outputs(layer: LayerImage) -> np.ndarray:
    """Original row at each physical output position ``slot * lanes + lane``."""
    return layer.row_of_slot.T.reshape(-1)


# -- Row-to-lane assignment ----------------------------------------------------------------------

def assign_rows(row_work: np.ndarray, lanes: int, *, balance: bool) -> np.ndarray:
    """Choose which slot of which lane holds each row.

    Without ``balance``, EIE's interleave: row ``i`` in lane ``i % lanes``, slot ``i // lanes``.
    With it, longest-processing-time first: rows in order of decreasing work (ties: lower row
    first) each go to the lane with the least work so far that still has a free slot (ties:
    lower lane), so every lane gets at most ``ceil(rows / lanes)`` rows. Within a lane, rows
    take slots in the order they were dealt, heaviest in slot 0: a heavy row's nonzeros then
    follow few zero slots and need fewer fillers.

    Returns
    -------
    row_of_slot : (lanes, ceil(rows / lanes)) int64, -1 for empty slots
    """
    rows = row_work.shape[0]
    slots = -(-rows // lanes)
    if not balance:
        padded = np.full(slots * lanes, -1, dtype=np.int64)
        padded[:rows] = np.arange(rows)
        return padded.reshape(slots, lanes).T.copy()

    row_of_slot = np.full((lanes, slots), -1, dtype=np.int64)
    filled = [0] * lanes
    open_lanes = [(0, lane) for lane in range(lanes)]     # a heap of (work so far, lane)
    for row in np.argsort(-np.asarray(row_work), kind="stable").tolist():   # one step per row
        work, lane = heapq.heappop(open_lanes)
        row_of_slot[lane, filled[lane]] = row
        filled[lane] += 1
        if filled[lane] < slots:
            heapq.heappush(open_lanes, (work + int(row_work[row]), lane))
    return row_of_slot


# -- Entries -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Nonzeros:
    """A layer's nonzeros sorted by (lane, physical column, slot), with their zero gaps."""
    lane: np.ndarray
    column: np.ndarray
    value: np.ndarray
    gap: np.ndarray


def _nonzeros(weight: np.ndarray, row_of_slot: np.ndarray, input_order: np.ndarray) -> _Nonzeros:
    lanes, slots = row_of_slot.shape
    columns = weight.shape[1]
    physical_of_input = np.full(columns, -1, dtype=np.int64)
    valid = input_order >= 0
    physical_of_input[input_order[valid]] = np.nonzero(valid)[0]

    # Scan the nonzero mask with its rows in (lane, slot) order: nonzeros come out ordered
    # by (lane, slot, column), each row's read sequentially.
    held = row_of_slot.reshape(-1)
    permuted = (weight != 0)[np.maximum(held, 0)]
    permuted[held < 0] = False
    lane_slot, col = np.divmod(np.flatnonzero(permuted), columns)
    pcol = physical_of_input[col]
    if np.any(pcol < 0):
        raise ValueError("A nonzero weight belongs to an input with no physical column")
    value = weight.reshape(-1)[held[lane_slot] * columns + col].astype(np.int64)
    # Reorder to (lane, physical column, slot): a stable sort on the column within each lane
    # keeps slots ascending. Keys below 2**16 get NumPy's radix sort.
    key = pcol.astype(np.uint16 if input_order.shape[0] <= 1 << 16 else np.int64)
    bounds = np.searchsorted(lane_slot, np.arange(lanes + 1) * slots)
    order = np.empty(lane_slot.size, dtype=np.int64)
    for lane in range(lanes):                      # at most 64 NumPy sorts
        a, b = bounds[lane], bounds[lane + 1]
        order[a:b] = a + np.argsort(key[a:b], kind="stable")
    lane = np.repeat(np.arange(lanes), np.diff(bounds))
    slot = (lane_slot % slots)[order]
    pcol, value = pcol[order], value[order]
    # The gap before an entry: zero slots since the previous nonzero of the same (lane, column).
    starts_group = np.ones(lane.size, dtype=bool)
    starts_group[1:] = (lane[1:] != lane[:-1]) | (pcol[1:] != pcol[:-1])
    previous = np.empty_like(slot)
    previous[0:1] = -1
    previous[1:] = slot[:-1]
    previous[starts_group] = -1
    return _Nonzeros(lane, pcol, value, slot - previous - 1)


def choose_run_bits(gaps: np.ndarray, value_bits: int, max_run_bits: int = MAX_RUN_BITS) -> int:
    """The run width that stores the given gaps in the fewest bits, fillers included.

    A gap ``g`` costs ``(g >> b) + 1`` entries of ``value_bits + b`` bits. On a tie the wider
    field wins, because it has fewer fillers and so fewer engine cycles.
    """
    if not 1 <= max_run_bits <= MAX_RUN_BITS:
        raise ValueError(f"Largest run width must be 1 to {MAX_RUN_BITS} bits, not {max_run_bits}")
    gaps = np.asarray(gaps, dtype=np.int64)
    widths = np.arange(1, max_run_bits + 1)
    cost = [(int((gaps >> b).sum()) + gaps.size) * (value_bits + b) for b in widths]
    best = min(cost)
    return int(max(b for b, c in zip(widths, cost) if c == best))


def _expand_fillers(nz: _Nonzeros, run_bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Entries (lane, column, value, run) with fillers before every over-long gap."""
    mask = (1 << run_bits) - 1
    fillers = nz.gap >> run_bits
    count = fillers + 1
    owner = np.repeat(np.arange(count.size), count)
    first = np.cumsum(count) - count
    is_nonzero = (np.arange(owner.size) - first[owner]) == fillers[owner]
    value = np.where(is_nonzero, nz.value[owner], 0)
    run = np.where(is_nonzero, nz.gap[owner] & mask, mask)
    return nz.lane[owner], nz.column[owner], value, run


def pack_layer(layer: QuantLayer, *, lanes: int, input_order: np.ndarray | None = None,
               run_bits: int | Literal["auto"] = "auto", max_run_bits: int = MAX_RUN_BITS,
               balance: bool = True) -> LayerImage:
    """Pack one integer layer into the engine's format.

    Parameters
    ----------
    layer : the integer layer
    lanes : number of lanes, 1 to :data:`MAX_LANES`
    input_order : original input at each physical column (default: the original order)
    run_bits : the run field width, or "auto" for the one storing the fewest bits
    max_run_bits : the widest field "auto" may choose (the engine's built width)
    balance : balanced row-to-lane assignment rather than EIE's interleave
    """
    if not isinstance(lanes, (int, np.integer)) or not 1 <= lanes <= MAX_LANES:
        raise ValueError(f"Lane count must be 1 to {MAX_LANES}, not {lanes!r}")
    rows, columns = layer.shape
    if input_order is None:
        input_order = np.arange(columns, dtype=np.int64)
    weight = layer.weight
    row_of_slot = assign_rows(np.count_nonzero(weight, axis=1), lanes, balance=balance)
    nz = _nonzeros(weight, row_of_slot, input_order)
    if run_bits == "auto":
        run_bits = choose_run_bits(nz.gap, layer.weight_bits, max_run_bits)
    elif not isinstance(run_bits, (int, np.integer)) or not 1 <= run_bits <= MAX_RUN_BITS:
        raise ValueError(f"Run field width must be 1 to {MAX_RUN_BITS} bits or 'auto', "
                         f"not {run_bits!r}")
    lane, column, values, runs = _expand_fillers(nz, int(run_bits))

    physical = input_order.shape[0]
    per_column = np.bincount(lane * physical + column, minlength=lanes * physical)
    pointers = np.zeros((lanes, physical + 1), dtype=np.int64)
    np.cumsum(per_column.reshape(lanes, physical), axis=1, out=pointers[:, 1:])

    def per_slot(per_row: np.ndarray) -> np.ndarray:
        return np.where(row_of_slot >= 0, per_row[np.maximum(row_of_slot, 0)], 0).astype(np.int64)

    return LayerImage(
        name=layer.name, rows=rows, columns=columns, lanes=int(lanes),
        value_bits=layer.weight_bits, run_bits=int(run_bits), relu=bool(layer.relu),
        row_of_slot=row_of_slot, input_order=np.asarray(input_order, dtype=np.int64),
        pointers=pointers, values=values, runs=runs,
        bias=per_slot(layer.bias), multiplier=per_slot(layer.multiplier),
        shift=per_slot(layer.shift),
        weight_scale=layer.weight_scale, output_scale=layer.output_scale)


def pack_model(model: QuantModel, *, lanes: int, run_bits: int | Literal["auto"] = "auto",
               max_run_bits: int = MAX_RUN_BITS, balance: bool = True) -> ModelImage:
    """Pack every layer; each later layer reads the previous one's outputs in slot order."""
    layers = []
    input_order = None
    for layer in model.layers:
        image = pack_layer(layer, lanes=lanes, input_order=input_order, run_bits=run_bits,
                           max_run_bits=max_run_bits, balance=balance)
        layers.append(image)
        input_order = _physical_outputs(image)
    return ModelImage(tuple(layers), model.activation_bits, model.input_scale)


# -- Unpacking -----------------------------------------------------------------------------------

def entry_positions(image: LayerImage) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lane, physical column, slot) of every entry, fillers included, in storage order."""
    lanes, physical = image.lanes, image.physical_columns
    per_column = image.column_entries.reshape(-1)
    group = np.repeat(np.arange(lanes * physical), per_column)
    steps = np.cumsum(image.runs + 1)
    group_start = np.concatenate([[0], np.cumsum(per_column)])[:-1]
    before_group = np.concatenate([[0], steps])[group_start]
    slot = steps - before_group[group] - 1
    return group // physical, group % physical, slot


def unpack_layer(image: LayerImage) -> QuantLayer:
    """The exact inverse of :func:`pack_layer`: the integer layer in its original order."""
    lane, column, slot = entry_positions(image)
    if slot.size and slot.max() >= image.slots:
        raise ImageFormatError(f"Layer {image.name!r}: an entry's runs pass the last slot "
                               f"({image.slots} slots per lane)")
    nonzero = image.values != 0
    row = image.row_of_slot[lane[nonzero], slot[nonzero]]
    col = image.input_order[column[nonzero]]
    if np.any(row < 0) or np.any(col < 0):
        raise ImageFormatError(f"Layer {image.name!r}: a nonzero entry falls in an empty slot "
                               f"or a padding column")
    weight = np.zeros((image.rows, image.columns), dtype=np.int64)
    weight[row, col] = image.values[nonzero]

    held = image.row_of_slot >= 0
    def per_row(per_slot: np.ndarray) -> np.ndarray:
        out = np.zeros(image.rows, dtype=np.int64)
        out[image.row_of_slot[held]] = per_slot[held]
        return out

    return QuantLayer(image.name, weight, per_row(image.bias), per_row(image.multiplier),
                      per_row(image.shift), image.relu, image.value_bits,
                      image.weight_scale, image.output_scale)


def unpack_model(image: ModelImage) -> QuantModel:
    return QuantModel(tuple(unpack_layer(layer) for layer in image.layers),
                      image.activation_bits, image.input_scale)


# -- Lane bit streams (docs/format.md section 3) -----------------------------------------------

def encode_lane_stream(values: np.ndarray, runs: np.ndarray, value_bits: int, run_bits: int) -> bytes:
    """Entries as a little-endian bit stream: entry ``i`` occupies bits ``[i*e, (i+1)*e)``,
    value in its low ``value_bits`` (two's complement), run above it. Padded with zero bits
    to a whole number of 32-bit words."""
    width = value_bits + run_bits
    word = (np.asarray(values, np.int64) & ((1 << value_bits) - 1)) | (np.asarray(runs, np.int64) << value_bits)
    bits = ((word[:, None] >> np.arange(width)) & 1).astype(np.uint8).reshape(-1)
    padded = np.zeros(-(-bits.size // 32) * 32, dtype=np.uint8)
    padded[:bits.size] = bits
    return np.packbits(padded, bitorder="little").tobytes()


def decode_lane_stream(stream: bytes, count: int, value_bits: int, run_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of :func:`encode_lane_stream` for ``count`` entries."""
    width = value_bits + run_bits
    if len(stream) * 8 < count * width:
        raise ImageFormatError(f"A lane stream of {len(stream)} bytes cannot hold {count} "
                               f"entries of {width} bits")
    bits = np.unpackbits(np.frombuffer(stream, dtype=np.uint8), bitorder="little")
    bits = bits[:count * width].reshape(count, width).astype(np.int64)
    word = (bits << np.arange(width)).sum(axis=1)
    raw = word & ((1 << value_bits) - 1)
    values = np.where(raw >= 1 << (value_bits - 1), raw - (1 << value_bits), raw)
    return values, word >> value_bits
