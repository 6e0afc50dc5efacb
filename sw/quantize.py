"""Float layers to the engine's integer layers, per docs/numerics.md.

Weights get symmetric per-output-row scales, activations one symmetric per-tensor scale per
layer boundary (zero point 0, so a zero activation stays exactly zero and the engine can skip
it). Activation scales come from calibration inputs run through the float model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .model_io import DenseModel
from .numerics import (accumulator_bits_needed, check_activation_bits, check_weight_bits,
                       quantize_multiplier, signed_range)

__all__ = ["QuantLayer", "QuantModel", "quantize_model", "quantize_activations",
           "dequantize_outputs", "default_calibration", "MAX_BIAS_UNITS"]

#: The largest bias magnitude, in accumulator units, quantization produces (docs/numerics.md
#: section 6, step 2).
MAX_BIAS_UNITS = 1 << 30


@dataclass(frozen=True, eq=False)
class QuantLayer:
    """One integer layer: ``out = requantize(weight @ x + bias)``.

    Attributes
    ----------
    weight : (rows, columns) int64, each in the signed ``weight_bits`` range
    bias : (rows,) int64, in accumulator units (``weight_scale * input_scale``)
    multiplier, shift : (rows,) int64, the requantization pair of each output row
    relu : clamp negative outputs to 0
    weight_bits : signed width of the weights
    weight_scale : (rows,) float64 or None; real weight = ``weight * weight_scale``
    output_scale : float or None; real output = ``out * output_scale``
    """
    name: str
    weight: np.ndarray
    bias: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray
    relu: bool
    weight_bits: int
    weight_scale: np.ndarray | None = None
    output_scale: float | None = None

    def __post_init__(self):
        check_weight_bits(self.weight_bits)
        rows, _ = self.weight.shape
        for field in ("bias", "multiplier", "shift"):
            if getattr(self, field).shape != (rows,):
                raise ValueError(f"Layer {self.name!r}: {field} has shape "
                                 f"{getattr(self, field).shape}, expected ({rows},)")
        lo, hi = signed_range(self.weight_bits)
        if self.weight.size and (self.weight.min() < lo or self.weight.max() > hi):
            raise ValueError(f"Layer {self.name!r}: weights span [{self.weight.min()}, "
                             f"{self.weight.max()}], beyond the {self.weight_bits}-bit range "
                             f"[{lo}, {hi}]")

    @property
    def shape(self) -> tuple[int, int]:
        return self.weight.shape


@dataclass(frozen=True, eq=False)
class QuantModel:
    """A chain of integer layers sharing one activation width."""
    layers: tuple[QuantLayer, ...]
    activation_bits: int
    input_scale: float | None = None

    def __post_init__(self):
        check_activation_bits(self.activation_bits)
        if not self.layers:
            raise ValueError("A model needs at least one layer")
        for before, after in zip(self.layers, self.layers[1:]):
            if before.shape[0] != after.shape[1]:
                raise ValueError(f"Layer {after.name!r} takes {after.shape[1]} inputs but "
                                 f"{before.name!r} gives {before.shape[0]}")

    @property
    def input_size(self) -> int:
        return self.layers[0].shape[1]

    @property
    def output_size(self) -> int:
        return self.layers[-1].shape[0]

    @property
    def output_scale(self) -> float | None:
        return self.layers[-1].output_scale

    def accumulator_bits(self) -> int:
        """The accumulator width that no input can overflow, over all layers."""
        return max(accumulator_bits_needed(layer.weight, layer.bias, self.activation_bits)
                   for layer in self.layers)


def default_calibration(input_size: int, samples: int = 1024, seed: int = 0) -> np.ndarray:
    """Seeded standard-normal inputs, used when the user gives no calibration data."""
    return np.random.default_rng(seed).standard_normal((samples, input_size))


def _symmetric_scale(max_abs: np.ndarray | float, bits: int) -> np.ndarray:
    # An all-zero row or tensor gets scale 1: any scale represents it exactly.
    max_abs = np.asarray(max_abs, dtype=np.float64)
    return np.where(max_abs > 0, max_abs / signed_range(bits)[1], 1.0)


def quantize_activations(x: np.ndarray, scale: float, activation_bits: int) -> np.ndarray:
    """Real activations to integers: ``clamp(round_half_even(x / scale))``."""
    lo, hi = signed_range(activation_bits)
    return np.clip(np.rint(np.asarray(x, dtype=np.float64) / scale), lo, hi).astype(np.int64)


def dequantize_outputs(y: np.ndarray, scale: float) -> np.ndarray:
    return np.asarray(y, dtype=np.float64) * scale


def quantize_model(model: DenseModel, calibration: np.ndarray | None = None, *,
                   weight_bits: int = 8, activation_bits: int = 8) -> QuantModel:
    """Quantize a float model per docs/numerics.md section 6.

    Parameters
    ----------
    model : the float layers (pruned weights are exactly zero and stay zero)
    calibration : (samples, input_size) float inputs; each layer boundary's scale is the
        largest magnitude seen there divided by the activation maximum. Without it,
        :func:`default_calibration` is used.
    """
    weight_bits = check_weight_bits(weight_bits)
    activation_bits = check_activation_bits(activation_bits)
    if calibration is None:
        calibration = default_calibration(model.input_size)
    x = np.asarray(calibration, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != model.input_size:
        raise ValueError(f"Calibration data must have shape (samples, {model.input_size}), "
                         f"not {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("Calibration data contains NaN or infinite values")

    weight_max = signed_range(weight_bits)[1]
    input_scale = float(_symmetric_scale(np.abs(x).max(initial=0.0), activation_bits))
    scale_in = input_scale
    layers = []
    for layer in model.layers:
        w = np.asarray(layer.weight, dtype=np.float64)
        b = np.zeros(w.shape[0]) if layer.bias is None else np.asarray(layer.bias, np.float64)
        w_scale = _symmetric_scale(np.abs(w).max(axis=1), weight_bits)
        # A row whose weights are tiny next to its bias (a dead unit under weight decay) would
        # need an enormous bias in accumulator units: raise its scale until the bias fits.
        w_scale = np.maximum(w_scale, np.abs(b) / (scale_in * MAX_BIAS_UNITS))
        w_int = np.clip(np.rint(w / w_scale[:, None]), -weight_max, weight_max).astype(np.int64)
        b_int = np.rint(b / (w_scale * scale_in)).astype(np.int64)

        x = x @ w.T + b
        if layer.relu:
            x = np.maximum(x, 0.0)
        scale_out = float(_symmetric_scale(np.abs(x).max(initial=0.0), activation_bits))
        multiplier, shift = quantize_multiplier(w_scale * scale_in / scale_out)
        layers.append(QuantLayer(layer.name, w_int, b_int, multiplier, shift, layer.relu,
                                 weight_bits, w_scale, scale_out))
        scale_in = scale_out
    return QuantModel(tuple(layers), activation_bits, input_scale)
