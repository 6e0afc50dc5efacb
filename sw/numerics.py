"""The engine's integer arithmetic, exactly as docs/numerics.md defines it.

This module is the single source of the numeric rules: the quantizer, the golden model and the
gateware's requantizer all follow it, and `hw/` imports its constants rather than restating
them.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "WEIGHT_BITS_RANGE",
    "ACTIVATION_BITS_CHOICES",
    "MULTIPLIER_BITS",
    "MAX_SHIFT",
    "MAX_ACCUMULATOR_BITS",
    "signed_range",
    "check_weight_bits",
    "check_activation_bits",
    "quantize_multiplier",
    "requantize",
    "accumulator_bits_needed",
]

#: Signed weight widths the format and the engine support, inclusive.
WEIGHT_BITS_RANGE = (4, 16)
#: Signed activation widths: the width of every layer input and output.
ACTIVATION_BITS_CHOICES = (8, 16)
#: Requantization multipliers are unsigned, normalised to [2**15, 2**16).
MULTIPLIER_BITS = 16
#: Requantization right shifts are 0 to 63.
MAX_SHIFT = 63
#: Accumulators wider than this are refused: accumulator * multiplier must fit in int64.
MAX_ACCUMULATOR_BITS = 47


def signed_range(bits: int) -> tuple[int, int]:
    """The two's complement range ``(-2**(bits-1), 2**(bits-1) - 1)``."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def check_weight_bits(bits: int) -> int:
    lo, hi = WEIGHT_BITS_RANGE
    if not isinstance(bits, (int, np.integer)) or not lo <= bits <= hi:
        raise ValueError(f"Weight width must be an integer from {lo} to {hi} bits, not {bits!r}")
    return int(bits)


def check_activation_bits(bits: int) -> int:
    if bits not in ACTIVATION_BITS_CHOICES:
        raise ValueError(
            f"Activation width must be one of {ACTIVATION_BITS_CHOICES} bits, not {bits!r}")
    return int(bits)


def quantize_multiplier(real: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Represent positive reals as ``multiplier * 2**-shift``.

    ``multiplier`` is normalised to [2**15, 2**16) so it keeps 16 significant bits, and
    ``shift`` is in [0, 63]. A real too small for shift 63 keeps shift 63 and a denormal
    multiplier (down to 0); a real of 2**16 or more cannot be represented and is refused.

    Returns
    -------
    (multiplier, shift) : int64 arrays of the input's shape
    """
    real = np.asarray(real, dtype=np.float64)
    if not np.all(np.isfinite(real)) or np.any(real < 0):
        raise ValueError("Requantization scales must be finite and non-negative")
    if np.any(real >= 2.0 ** MULTIPLIER_BITS):
        raise ValueError(
            f"Requantization scale {real.max():.6g} is 2**{MULTIPLIER_BITS} or more; the output "
            f"scale is too small for this layer's accumulators")
    mantissa, exponent = np.frexp(real)                   # real = mantissa * 2**exponent, 0.5 <= mantissa < 1
    shift = MULTIPLIER_BITS - exponent.astype(np.int64)   # so multiplier = mantissa * 2**16
    multiplier = np.rint(np.ldexp(mantissa, MULTIPLIER_BITS)).astype(np.int64)
    carried = multiplier == (1 << MULTIPLIER_BITS)        # mantissa rounded up to 1.0
    multiplier = np.where(carried, multiplier >> 1, multiplier)
    shift = np.where(carried, shift - 1, shift)
    # Too small for shift 63: keep shift 63 and denormalise the multiplier (rounding half to even).
    excess = np.clip(shift - MAX_SHIFT, 0, 62)
    multiplier = np.where(excess > 0, np.rint(np.ldexp(multiplier.astype(np.float64), -excess)).astype(np.int64), multiplier)
    shift = np.minimum(shift, MAX_SHIFT)
    zero = real == 0
    return np.where(zero, 0, multiplier), np.where(zero, 0, shift)


def requantize(accumulator: np.ndarray, multiplier: np.ndarray, shift: np.ndarray, *,
               relu: bool, activation_bits: int) -> np.ndarray:
    """Scale accumulators to output activations, per docs/numerics.md section 5.

    ``out = clamp((acc * multiplier + 2**(shift-1)) >> shift, lo, hi)`` with an arithmetic
    (flooring) shift, so the single rounding step is round-half-up (toward +infinity), as in
    TFLite's single-rounding ``MultiplyByQuantizedMultiplier``. With ``shift == 0`` there is
    no rounding term. ``lo`` is 0 with ReLU, else the activation minimum.
    """
    acc = np.asarray(accumulator, dtype=np.int64)
    multiplier = np.asarray(multiplier, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    product = acc * multiplier
    rounding = np.where(shift > 0, np.left_shift(1, np.maximum(shift - 1, 0)), 0)
    scaled = np.right_shift(product + rounding, shift)
    lo, hi = signed_range(activation_bits)
    return np.clip(scaled, 0 if relu else lo, hi)


def accumulator_bits_needed(weight: np.ndarray, bias: np.ndarray | None,
                            activation_bits: int) -> int:
    """The signed accumulator width no input can overflow, for an integer layer.

    The worst case of row i is ``|bias_i| + sum_j |w_ij| * 2**(activation_bits-1)`` (the most
    negative activation has the largest magnitude); the width is the smallest signed width
    holding it at either sign.
    """
    weight = np.asarray(weight, dtype=np.int64)
    worst = np.abs(weight).sum(axis=1) << (activation_bits - 1)
    if bias is not None:
        worst = worst + np.abs(np.asarray(bias, dtype=np.int64))
    return int(worst.max(initial=0)).bit_length() + 1
