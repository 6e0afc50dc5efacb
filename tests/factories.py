"""Seeded random, real-shaped integer models and inputs for tests."""

from __future__ import annotations

import numpy as np

from sparsemac.sw.quantize import QuantLayer, QuantModel


def random_layer(rng: np.random.Generator, rows: int, columns: int, density: float, *,
                 name: str = "layer", weight_bits: int = 8, relu: bool = True,
                 bias_range: int = 1000) -> QuantLayer:
    """A random integer layer with ``density`` nonzeros and full-range weights."""
    hi = (1 << (weight_bits - 1)) - 1
    weight = rng.integers(-hi, hi + 1, (rows, columns))
    weight[weight == 0] = 1
    weight *= rng.random((rows, columns)) < density
    bias = rng.integers(-bias_range, bias_range + 1, rows)
    multiplier = rng.integers(1 << 15, 1 << 16, rows)
    shift = rng.integers(14, 24, rows)
    return QuantLayer(name, weight, bias, multiplier, shift, relu, weight_bits)


def random_model(rng: np.random.Generator, sizes: list[int], density: float, *,
                 activation_bits: int = 8, weight_bits: int = 8) -> QuantModel:
    layers = tuple(random_layer(rng, out, inp, density, name=f"fc{i}", weight_bits=weight_bits,
                                relu=i < len(sizes) - 2)
                   for i, (inp, out) in enumerate(zip(sizes, sizes[1:])))
    return QuantModel(layers, activation_bits)


def random_inputs(rng: np.random.Generator, batch: int, size: int, *, zero_fraction: float = 0.3,
                  activation_bits: int = 8) -> np.ndarray:
    lo, hi = -(1 << (activation_bits - 1)), (1 << (activation_bits - 1)) - 1
    x = rng.integers(lo, hi + 1, (batch, size))
    return x * (rng.random((batch, size)) >= zero_fraction)


def edge_inputs(rng: np.random.Generator, batch: int, size: int, *,
                zero_fraction: float = 0.3) -> np.ndarray:
    """8-bit random inputs (``batch`` >= 3) whose first three vectors are all zero, all -128
    and all 127."""
    x = random_inputs(rng, batch, size, zero_fraction=zero_fraction)
    x[0], x[1], x[2] = 0, -128, 127
    return x


def run_against_golden(device, image, x: np.ndarray):
    """Run ``x`` on ``device`` (``image`` loaded) and check its outputs and cycle counts
    against the golden model of the build the device reports; return the run's result."""
    from sparsemac.sw import run_golden

    result = device.run(x)
    golden = run_golden(image, x, device.info().timing)
    assert np.array_equal(result.outputs, golden.outputs)
    assert np.array_equal(result.cycles, golden.cycles)
    return result
