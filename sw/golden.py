"""The bit-exact golden model of the engine: outputs, accumulators and cycle counts.

The engine's testbenches assert equality with this module, bit for bit and cycle for cycle.
Outputs follow docs/numerics.md; cycles follow the cycle model of docs/engine.md section 4,
whose constants the engine publishes as an :class:`EngineTiming`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .format import LayerImage, ModelImage, entry_positions
from .numerics import accumulator_bits_needed, requantize, signed_range

__all__ = ["EngineTiming", "GoldenResult", "run_golden", "check_inputs", "layer_cycles", "layer_matrix"]


@dataclass(frozen=True)
class EngineTiming:
    """The timing constants of an engine build (docs/engine.md section 4).

    The defaults are those of the default engine build in ``hw/``
    (``sparsemac.hw.Engine().timing``; ``fifo_depth`` and ``lanes_per_output_stage`` follow
    build parameters); docs/engine.md section 4.1 derives each from the pipeline.

    Attributes
    ----------
    fifo_depth : entries in each lane's activation FIFO
    broadcast_latency : cycles from a column's broadcast to the first cycle a lane may
        spend on it
    mac_latency : cycles from a lane's last entry to its accumulators being final
    output_latency : cycles of the output stage's pipeline
    layer_overhead : fixed cycles per layer (configuration, phase changes)
    lanes_per_output_stage : lanes that share one output stage; a layer's output walk
        takes this many cycles per slot
    """
    fifo_depth: int = 11
    broadcast_latency: int = 8
    mac_latency: int = 11
    output_latency: int = 13
    layer_overhead: int = 5
    lanes_per_output_stage: int = 1

    def __post_init__(self):
        if self.fifo_depth < 1:
            raise ValueError(f"FIFO depth must be at least 1, not {self.fifo_depth}")
        for name in ("broadcast_latency", "mac_latency", "output_latency", "layer_overhead"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be non-negative, not {getattr(self, name)}")
        if self.lanes_per_output_stage < 1:
            raise ValueError(f"Lanes per output stage must be at least 1, "
                             f"not {self.lanes_per_output_stage}")


@dataclass(frozen=True, eq=False)
class GoldenResult:
    """What the engine computes for a batch of input vectors, one run per vector.

    Attributes
    ----------
    outputs : (batch, output_size) int64, the last layer's outputs in original row order
    accumulators : (batch, rows of layer 0) int64, layer 0's raw accumulators (bias included)
    cycles : (batch,) int64, engine cycles per run
    layer_cycles : (batch, layers) int64
    useful_macs : (batch,) int64, multiply-accumulates by nonzero weights on nonzero inputs
    lane_cycles : (batch, layers, lanes) int64, cycles each lane spent retiring entries
    lanes : the lane count
    """
    outputs: np.ndarray
    accumulators: np.ndarray
    cycles: np.ndarray
    layer_cycles: np.ndarray
    useful_macs: np.ndarray
    lane_cycles: np.ndarray
    lanes: int

    @property
    def utilisation(self) -> np.ndarray:
        """(batch,) useful multiply-accumulates per lane-cycle over the whole run."""
        return self.useful_macs / (self.lanes * self.cycles)

    @property
    def load_balance(self) -> np.ndarray:
        """(batch,) mean lane work over the busiest lane's work, over all layers."""
        work = self.lane_cycles.sum(axis=1)
        busiest = work.max(axis=1)
        return np.where(busiest > 0, work.mean(axis=1) / np.maximum(busiest, 1), 1.0)


def layer_matrix(layer: LayerImage) -> np.ndarray:
    """(lanes * slots, physical_columns) int64: the layer as the lanes see it, row
    ``lane * slots + slot``, fillers decoded to zeros."""
    lane, column, slot = entry_positions(layer)
    matrix = np.zeros((layer.lanes * layer.slots, layer.physical_columns), dtype=np.int64)
    np.add.at(matrix, (lane * layer.slots + slot, column), layer.values)
    return matrix


def _accumulate(matrix: np.ndarray, bias: np.ndarray, x: np.ndarray, exact_in_float: bool) -> np.ndarray:
    if exact_in_float:
        # Every partial sum is an integer below 2**53, so float64 BLAS is exact in any order.
        acc = np.rint(x.astype(np.float64) @ matrix.T.astype(np.float64)).astype(np.int64)
    else:
        acc = x @ matrix.T
    return acc + bias.reshape(-1)


def layer_cycles(layer: LayerImage, x: np.ndarray, timing: EngineTiming) -> tuple[np.ndarray, np.ndarray]:
    """Cycles of one layer for each input vector, per docs/engine.md section 4.

    Parameters
    ----------
    x : (batch, physical_columns) activations in physical order; only which are nonzero matters

    Returns
    -------
    (cycles, lane_cycles) : (batch,) and (batch, lanes) int64
    """
    batch, physical = x.shape
    lanes = layer.lanes
    if lanes % timing.lanes_per_output_stage:
        raise ValueError(f"A {lanes}-lane layer cannot run on output stages of "
                         f"{timing.lanes_per_output_stage} lanes each")
    groups = -(-physical // lanes)
    active = x != 0
    count = active.sum(axis=1)
    longest = int(count.max(initial=0))
    # Active columns of each vector in ascending order, padded on the right.
    columns = np.argsort(~active, axis=1, kind="stable")[:, :longest]
    work = np.maximum(layer.column_entries, 1)                       # (lanes, physical)

    depth = timing.fifo_depth
    popped = np.zeros((depth, batch, lanes), dtype=np.int64)         # ring of lane start times
    broadcast = np.zeros(batch, dtype=np.int64)
    lane_free = np.zeros((batch, lanes), dtype=np.int64)              # first cycle a lane is free
    group_prev = np.full(batch, -1, dtype=np.int64)
    lane_busy = np.zeros((batch, lanes), dtype=np.int64)
    for k in range(longest):
        live = k < count
        column = columns[:, k]
        group = column // lanes
        # The scanner spends one cycle per group it passes with no nonzero.
        scanned = np.where(k == 0, group, broadcast + 1 + np.maximum(group - group_prev - 1, 0))
        room = popped[k % depth].max(axis=1) + 1 if k >= depth else 0
        when = np.maximum(scanned, room)
        start = np.maximum(when[:, None] + timing.broadcast_latency, lane_free)
        w = work[:, column].T                                         # (batch, lanes)
        broadcast = np.where(live, when, broadcast)
        group_prev = np.where(live, group, group_prev)
        popped[k % depth] = np.where(live[:, None], start, popped[k % depth])
        lane_free = np.where(live[:, None], start + w, lane_free)
        lane_busy += np.where(live[:, None], w, 0)

    scan_done = np.where(count > 0, broadcast + 1 + (groups - 1 - group_prev), groups)
    lanes_done = np.where(count > 0, lane_free.max(axis=1) + timing.mac_latency, 0)
    compute = np.maximum(scan_done, lanes_done)
    # Each output stage walks its lanes' slots, one record per cycle, all stages in step.
    walk = timing.lanes_per_output_stage * layer.slots
    cycles = timing.layer_overhead + compute + walk + timing.output_latency
    return cycles, lane_busy


def check_inputs(image: ModelImage, x: np.ndarray) -> np.ndarray:
    """Engine inputs as a (batch, input_size) int64 array, or a ValueError saying what is wrong."""
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != image.input_size:
        raise ValueError(f"Inputs must have shape (batch, {image.input_size}), not {x.shape}")
    if x.dtype.kind not in "iu":
        raise ValueError(f"Engine inputs must be integers, not {x.dtype}; quantize floats first")
    lo, hi = signed_range(image.activation_bits)
    if x.size and (x.min() < lo or x.max() > hi):
        raise ValueError(f"Inputs span [{x.min()}, {x.max()}], beyond the "
                         f"{image.activation_bits}-bit activation range [{lo}, {hi}]")
    return x.astype(np.int64)


def run_golden(image: ModelImage, x: np.ndarray, timing: EngineTiming | None = None) -> GoldenResult:
    """Run a batch of integer input vectors through the model, as the engine does.

    Parameters
    ----------
    image : the packed model
    x : (batch, input_size) or (input_size,) integer activations within the image's
        activation width; each vector is one engine run
    timing : the engine build's timing constants (default: :class:`EngineTiming`'s)
    """
    timing = timing or EngineTiming()
    x = check_inputs(image, x)
    batch = x.shape[0]
    cycles, lane_busy, useful = [], [], np.zeros(batch, dtype=np.int64)
    accumulators = None
    for index, layer in enumerate(image.layers):
        matrix = layer_matrix(layer)
        exact = accumulator_bits_needed(matrix, layer.bias.reshape(-1), image.activation_bits) <= 53
        acc = _accumulate(matrix, layer.bias, x, exact)                # (batch, lanes * slots)
        c, busy = layer_cycles(layer, x, timing)
        cycles.append(c)
        lane_busy.append(busy)
        useful += (x != 0).astype(np.int64) @ np.count_nonzero(matrix, axis=0)
        out = requantize(acc, layer.multiplier.reshape(-1), layer.shift.reshape(-1),
                         relu=layer.relu, activation_bits=image.activation_bits)
        held = layer.row_of_slot.reshape(-1) >= 0
        rows = layer.row_of_slot.reshape(-1)[held]
        if index == 0:
            accumulators = np.zeros((batch, layer.rows), dtype=np.int64)
            accumulators[:, rows] = acc[:, held]
        if index + 1 < len(image.layers):
            # Physical order of the next layer's inputs: slot-major, position slot * lanes + lane.
            x = out.reshape(batch, layer.lanes, layer.slots).transpose(0, 2, 1).reshape(batch, -1)
        else:
            outputs = np.zeros((batch, layer.rows), dtype=np.int64)
            outputs[:, rows] = out[:, held]
    layer_cycles_all = np.stack(cycles, axis=1)
    return GoldenResult(outputs=outputs, accumulators=accumulators,
                        cycles=layer_cycles_all.sum(axis=1), layer_cycles=layer_cycles_all,
                        useful_macs=useful, lane_cycles=np.stack(lane_busy, axis=1),
                        lanes=image.lanes)
