"""A built-in example model: seeded, real-shaped and magnitude-pruned, for trying the tools."""

from __future__ import annotations

import numpy as np

from .model_io import DenseModel, model_from_arrays
from .prune import global_magnitude_masks

__all__ = ["example_model"]


def example_model(sizes: tuple[int, ...] = (784, 300, 100, 10), sparsity: float = 0.9,
                  seed: int = 0) -> DenseModel:
    """A LeNet-300-100-shaped MLP with Gaussian weights, pruned globally to ``sparsity``.

    Row norms vary log-normally, as in trained layers, so some rows keep many more weights
    than others and the balanced lane assignment has work to do.
    """
    rng = np.random.default_rng(seed)
    weights, biases = [], []
    for fan_in, fan_out in zip(sizes, sizes[1:]):
        row_scale = rng.lognormal(0.0, 0.5, size=(fan_out, 1))
        weights.append(rng.standard_normal((fan_out, fan_in)) * row_scale / np.sqrt(fan_in))
        biases.append(0.1 * rng.standard_normal(fan_out))
    names = [f"fc{i + 1}" for i in range(len(weights))]
    masks = global_magnitude_masks(dict(zip(names, weights)), sparsity)
    pruned = [np.where(masks[name], w, 0.0) for name, w in zip(names, weights)]
    return model_from_arrays(pruned, biases, names=names)
