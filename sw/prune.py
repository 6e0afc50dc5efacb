"""Magnitude pruning: the AGP schedule, exact-count masks, and iterative magnitude pruning.

This module is the host-side pruning library, in NumPy only. It follows Zhu & Gupta, "To prune,
or not to prune" (automated gradual pruning, AGP, equation (1)), with the step semantics of
TensorFlow Model Optimization's ``PolynomialDecay(power=3)``, and iterative magnitude pruning
(IMP: prune, retrain, repeat). ``docs/pruning.md`` describes the rules; in short:

* A mask is a boolean array shaped like its weights: ``True`` keeps a weight, ``False`` prunes it.
* A mask at sparsity ``s`` over ``size`` weights prunes exactly ``pruned_count(size, s)``
  weights, ``s * size`` rounded to the nearest integer with halves rounded up.
* The smallest magnitudes are pruned first; among equal magnitudes the lower flat (C-order)
  index goes first, and across layers (global scope) the earlier layer in mapping order.
* Masks only grow: a weight that was pruned stays pruned.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, overload

import numpy as np
import numpy.typing as npt

__all__ = [
    "AGPSchedule",
    "LayerwiseConstantSchedule",
    "Pruner",
    "agp_sparsity",
    "is_mask_update_step",
    "pruned_count",
    "magnitude_mask",
    "global_magnitude_masks",
    "imp_sparsities",
    "iterative_magnitude_pruning",
]

#: Scopes a :class:`Pruner` accepts.
SCOPES = ("layer", "global", "layerwise_constant")

Steps = int | np.integer | npt.NDArray[np.integer]


# -- argument checks ---------------------------------------------------------------------------

def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_sparsity(value: object, name: str = "sparsity") -> float:
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                       np.floating))
            or not 0.0 <= float(value) < 1.0):
        raise ValueError(f"{name} must be a number in [0, 1), not {value!r}")
    return float(value)


def _check_step_params(begin_step: object, end_step: object, frequency: object) -> None:
    if not _is_int(frequency) or frequency < 1:
        raise ValueError(f"frequency must be an integer >= 1, not {frequency!r}")
    if not _is_int(begin_step) or begin_step < 0:
        raise ValueError(f"begin_step must be an integer >= 0, not {begin_step!r}")
    if not _is_int(end_step) or end_step <= begin_step:
        raise ValueError(
            f"end_step must be an integer greater than begin_step, not end_step={end_step!r} "
            f"with begin_step={begin_step!r}")
    span = end_step - begin_step
    if span % frequency:
        raise ValueError(
            f"end_step - begin_step must be a whole number n of frequency steps "
            f"(end_step = begin_step + n * frequency), but end_step={end_step} - "
            f"begin_step={begin_step} = {span} is not a multiple of frequency={frequency}")


def _check_steps(step: object) -> np.ndarray:
    array = np.asarray(step)
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"Training steps must be integers, not {step!r}")
    return array.astype(np.int64, copy=False)


def _check_weights(weights: object, name: str) -> np.ndarray:
    array = np.asarray(weights)
    if array.dtype == np.bool_ or not (np.issubdtype(array.dtype, np.integer)
                                       or np.issubdtype(array.dtype, np.floating)):
        raise TypeError(
            f"Layer {name!r} must hold real integer or floating-point weights, not dtype "
            f"{array.dtype}")
    if array.size == 0:
        raise ValueError(
            f"Layer {name!r} is empty (shape {array.shape}); pruning needs at least one weight")
    if np.issubdtype(array.dtype, np.floating):
        bad = np.count_nonzero(~np.isfinite(array))
        if bad:
            raise ValueError(
                f"Layer {name!r} has {bad} NaN or infinite weight(s) out of {array.size}; "
                f"only finite weights can be ranked by magnitude")
    return array


def _check_mask(mask: object, shape: tuple[int, ...], name: str) -> np.ndarray:
    array = np.asarray(mask)
    if array.dtype != np.bool_ or array.shape != shape:
        raise ValueError(
            f"Mask of layer {name!r} must be a boolean array of shape {shape}, not "
            f"{array.dtype} of shape {array.shape}")
    return array


def _check_layers(layers: object, what: str = "layers") -> dict[str, np.ndarray]:
    if not isinstance(layers, Mapping):
        raise TypeError(f"{what} must be a mapping of layer names to arrays, not "
                        f"{type(layers).__name__}")
    if not layers:
        raise ValueError(f"{what} is empty; pruning needs at least one layer")
    return {name: _check_weights(weights, name) for name, weights in layers.items()}


# -- the AGP schedule --------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class AGPSchedule:
    """The automated gradual pruning schedule of Zhu & Gupta, equation (1).

    ``s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt)) ** 3`` for
    ``t in {t0, t0 + dt, ..., t0 + n * dt}``, with TensorFlow Model Optimization's
    ``PolynomialDecay(initial_sparsity, final_sparsity, begin_step, end_step, power=3,
    frequency)`` naming: ``begin_step = t0``, ``end_step = t0 + n * dt``, ``frequency = dt``.

    Parameters
    ----------
    initial_sparsity : float
        ``s_i``, in [0, 1). The paper's usual value, 0, is the default.
    final_sparsity : float
        ``s_f``, in [0, 1) and not below ``initial_sparsity``.
    begin_step : int
        ``t0``, the first mask update step, >= 0.
    end_step : int
        ``t0 + n * dt``, the last mask update step: ``end_step - begin_step`` must be a
        positive multiple of ``frequency``.
    frequency : int
        ``dt``, steps between mask updates, >= 1.

    Raises
    ------
    ValueError
        If a parameter is outside the ranges above; the message names the values.
    """

    initial_sparsity: float = 0.0
    final_sparsity: float
    begin_step: int
    end_step: int
    frequency: int

    def __post_init__(self) -> None:
        s_i = _check_sparsity(self.initial_sparsity, "initial_sparsity")
        s_f = _check_sparsity(self.final_sparsity, "final_sparsity")
        if s_f < s_i:
            raise ValueError(
                f"final_sparsity={self.final_sparsity!r} is below "
                f"initial_sparsity={self.initial_sparsity!r}; AGP sparsity may only grow")
        _check_step_params(self.begin_step, self.end_step, self.frequency)
        object.__setattr__(self, "initial_sparsity", s_i)
        object.__setattr__(self, "final_sparsity", s_f)
        for field in ("begin_step", "end_step", "frequency"):
            object.__setattr__(self, field, int(getattr(self, field)))

    @property
    def n_updates(self) -> int:
        """``n``, the number of mask updates after ``begin_step`` (``n + 1`` in all)."""
        return (self.end_step - self.begin_step) // self.frequency

    @property
    def update_steps(self) -> np.ndarray:
        """All mask update steps, ``begin_step, begin_step + frequency, ..., end_step``."""
        return np.arange(self.begin_step, self.end_step + 1, self.frequency, dtype=np.int64)

    @overload
    def sparsity(self, step: int | np.integer) -> float: ...
    @overload
    def sparsity(self, step: npt.NDArray[np.integer]) -> np.ndarray: ...

    def sparsity(self, step: Steps) -> float | np.ndarray:
        """The target sparsity at ``step``; see :func:`agp_sparsity`."""
        t = _check_steps(step)
        begin, end, dt = self.begin_step, self.end_step, self.frequency
        # Hold the value of the last update step: round t down onto the update grid.
        last = begin + (t - begin) // dt * dt
        progress = (np.clip(last, begin, end) - begin) / (end - begin)
        s_i, s_f = self.initial_sparsity, self.final_sparsity
        value = s_f + (s_i - s_f) * (1.0 - progress) ** 3
        # The end points exactly, free of rounding in s_f + (s_i - s_f).
        value = np.where(progress <= 0.0, s_i, np.where(progress >= 1.0, s_f, value))
        return float(value) if value.ndim == 0 else value

    @overload
    def is_update_step(self, step: int | np.integer) -> bool: ...
    @overload
    def is_update_step(self, step: npt.NDArray[np.integer]) -> np.ndarray: ...

    def is_update_step(self, step: Steps) -> bool | np.ndarray:
        """Whether masks are recomputed at ``step``; see :func:`is_mask_update_step`."""
        t = _check_steps(step)
        result = ((t >= self.begin_step) & (t <= self.end_step)
                  & ((t - self.begin_step) % self.frequency == 0))
        return bool(result) if result.ndim == 0 else result

    def split(self, parts: int) -> tuple[AGPSchedule, ...]:
        """Cut the pruning span into ``parts`` equal consecutive windows, each a full schedule.

        Window ``k`` runs from ``begin_step + k * w`` to ``begin_step + (k + 1) * w`` with
        ``w = (end_step - begin_step) / parts``, the same frequency and the same sparsities.

        Raises
        ------
        ValueError
            If ``n_updates`` is not a multiple of ``parts``, so the windows would not fall on
            the update grid.
        """
        if not _is_int(parts) or parts < 1:
            raise ValueError(f"The number of windows must be an integer >= 1, not {parts!r}")
        if self.n_updates % parts:
            raise ValueError(
                f"Cannot split {self.n_updates} mask updates (end_step={self.end_step} - "
                f"begin_step={self.begin_step} over frequency={self.frequency}) into {parts} "
                f"equal windows: the number of updates must be a multiple of {parts}")
        width = (self.end_step - self.begin_step) // parts
        return tuple(
            AGPSchedule(initial_sparsity=self.initial_sparsity,
                        final_sparsity=self.final_sparsity,
                        begin_step=self.begin_step + k * width,
                        end_step=self.begin_step + (k + 1) * width,
                        frequency=self.frequency)
            for k in range(parts))


def agp_sparsity(step: Steps, *, initial_sparsity: float = 0.0, final_sparsity: float,
                 begin_step: int, end_step: int, frequency: int) -> float | np.ndarray:
    """The AGP target sparsity at a training step (Zhu & Gupta, equation (1)).

    ``s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt)) ** 3`` with ``t0 = begin_step``,
    ``dt = frequency`` and ``n * dt = end_step - begin_step``.

    Equation (1) defines ``s_t`` on the update steps only. Between two update steps this
    function holds the value of the last one: ``t`` is rounded down to the last step with
    ``(t - begin_step) % frequency == 0``. TensorFlow Model Optimization evaluates the
    polynomial at every step but applies it only on update steps, so the sparsity of the masks
    is the same either way. Before ``begin_step`` the value is ``initial_sparsity``; from
    ``end_step`` on it is ``final_sparsity``.

    Parameters
    ----------
    step : int or array of int
        Training step(s). An array gives an array of the same shape.
    initial_sparsity, final_sparsity, begin_step, end_step, frequency
        The schedule; see :class:`AGPSchedule` for the constraints.

    Returns
    -------
    float or numpy.ndarray
        The target sparsity, in [``initial_sparsity``, ``final_sparsity``].

    Raises
    ------
    ValueError
        If the schedule is invalid (see :class:`AGPSchedule`) or a step is not an integer.

    Examples
    --------
    >>> agp_sparsity(50, initial_sparsity=0.0, final_sparsity=0.9, begin_step=0,
    ...              end_step=100, frequency=10)
    0.7875
    """
    schedule = AGPSchedule(initial_sparsity=initial_sparsity, final_sparsity=final_sparsity,
                           begin_step=begin_step, end_step=end_step, frequency=frequency)
    return schedule.sparsity(step)


def is_mask_update_step(step: Steps, *, begin_step: int, end_step: int,
                        frequency: int) -> bool | np.ndarray:
    """Whether masks are recomputed at ``step``: TensorFlow Model Optimization's rule.

    True when ``begin_step <= step <= end_step`` and ``(step - begin_step) % frequency == 0``.

    Parameters
    ----------
    step : int or array of int
        Training step(s). An array gives a boolean array of the same shape.
    begin_step, end_step, frequency
        The schedule's steps; see :class:`AGPSchedule` for the constraints.

    Raises
    ------
    ValueError
        If the schedule's steps are invalid or a step is not an integer.
    """
    _check_step_params(begin_step, end_step, frequency)
    t = _check_steps(step)
    result = (t >= begin_step) & (t <= end_step) & ((t - begin_step) % frequency == 0)
    return bool(result) if result.ndim == 0 else result


@dataclass(frozen=True)
class LayerwiseConstantSchedule:
    """The paper's "layerwise constant" variant: one layer at a time, each over its own window.

    Zhu & Gupta (section 4.3) "subdivide the pruning interval and increase the sparsity of one
    layer at a time". Here the span ``[begin_step, end_step]`` of ``schedule`` is cut into
    ``len(layers)`` equal consecutive windows (:meth:`AGPSchedule.split`) in the order of
    ``layers``; layer ``k`` follows the full AGP curve from ``initial_sparsity`` to
    ``final_sparsity`` inside window ``k``, holds ``initial_sparsity`` before it and
    ``final_sparsity`` after it. Masks are updated on the update steps of ``schedule``; at each
    one only the layer of the current window changes, except at ``begin_step`` where every
    layer takes ``initial_sparsity`` (nothing, when it is 0).

    Parameters
    ----------
    layers : sequence of str
        Layer names, in pruning order. Duplicates are refused.
    schedule : AGPSchedule
        The whole span. Its number of updates must be a multiple of ``len(layers)``.

    Raises
    ------
    ValueError
        If ``layers`` is empty or has duplicates, or the span does not split evenly.
    """

    layers: tuple[str, ...]
    schedule: AGPSchedule

    def __post_init__(self) -> None:
        layers = tuple(self.layers)
        if not layers:
            raise ValueError("The layerwise constant schedule needs at least one layer")
        if len(set(layers)) != len(layers):
            raise ValueError(f"Layer names must be unique, not {list(layers)!r}")
        if not isinstance(self.schedule, AGPSchedule):
            raise TypeError(f"schedule must be an AGPSchedule, not {type(self.schedule).__name__}")
        object.__setattr__(self, "layers", layers)
        self.schedule.split(len(layers))  # check that the windows fall on the update grid

    @property
    def schedules(self) -> dict[str, AGPSchedule]:
        """Each layer's own AGP schedule, over its window."""
        return dict(zip(self.layers, self.schedule.split(len(self.layers))))

    def sparsity(self, step: int) -> dict[str, float]:
        """Every layer's target sparsity at ``step``."""
        return {name: float(window.sparsity(step)) for name, window in self.schedules.items()}

    def layer_at(self, step: int) -> str | None:
        """The layer whose window holds ``step``, or None outside ``[begin_step, end_step]``.

        Windows are half-open, ``[begin_k, end_k)``, except that the last one includes
        ``end_step``. A layer's last update, to ``final_sparsity``, falls on ``end_k``, which is
        the first step of the next layer's window.
        """
        t = int(_check_steps(step))
        s = self.schedule
        if not s.begin_step <= t <= s.end_step:
            return None
        width = (s.end_step - s.begin_step) // len(self.layers)
        return self.layers[min((t - s.begin_step) // width, len(self.layers) - 1)]


# -- masks -------------------------------------------------------------------------------------

def pruned_count(size: int, sparsity: float) -> int:
    """How many of ``size`` weights a mask at ``sparsity`` prunes.

    ``sparsity * size`` rounded to the nearest integer, halves rounded up, computed exactly on
    the decimal value Python prints for ``sparsity`` (``repr``): 0.145 of 100 weights is 14.5,
    so 15 are pruned, although ``0.145 * 100`` is 14.499999999999998 in binary floating point.
    The count never decreases as the sparsity grows. It may reach ``size`` for tiny layers
    (``size < 1 / (2 * (1 - sparsity))``).

    Raises
    ------
    ValueError
        If ``size`` is not a positive integer or ``sparsity`` is outside [0, 1).
    """
    if not _is_int(size) or size < 1:
        raise ValueError(f"size must be an integer >= 1, not {size!r}")
    exact = Decimal(repr(_check_sparsity(sparsity))) * int(size)
    return int(exact.to_integral_value(rounding=ROUND_HALF_UP))


def _ranking_key(weights: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    # float64 magnitudes, flat in C order; |int8(-128)| would overflow in int8.
    key = np.abs(weights.astype(np.float64, copy=False)).ravel()
    if mask is not None:
        # Already-pruned weights rank below every magnitude, so they are pruned again first.
        key = np.where(mask.ravel(), key, -1.0)
    return key


def _prune_smallest(key: np.ndarray, count: int) -> np.ndarray:
    # Linear time, same result as pruning the first `count` of a stable argsort of `key`:
    # everything below the count-th smallest key, then the lowest indices tied with it.
    keep = np.ones(key.size, dtype=bool)
    if count <= 0:
        return keep
    threshold = np.partition(key, count - 1)[count - 1]
    below = key < threshold
    keep[below] = False
    tied = np.flatnonzero(key == threshold)
    keep[tied[:count - int(np.count_nonzero(below))]] = False
    return keep


def magnitude_mask(weights: npt.ArrayLike, sparsity: float, *,
                   mask: npt.ArrayLike | None = None) -> np.ndarray:
    """The mask that prunes one layer's smallest-magnitude weights.

    Exactly ``pruned_count(weights.size, sparsity)`` weights are pruned: the smallest
    ``abs(weights)``, ties broken by the lower flat (C-order) index first. Zero weights have the
    smallest magnitude, so they are pruned first.

    Parameters
    ----------
    weights : array_like
        Real weights of any shape, finite and not empty.
    sparsity : float
        Target fraction of pruned weights, in [0, 1).
    mask : array_like of bool, optional
        The layer's current mask (``False`` = pruned). Weights it prunes rank below all
        others whatever their stored value, so they stay pruned; if it already prunes more than
        the target count, the result prunes exactly those weights. Use it to keep pruning
        monotone across steps.

    Returns
    -------
    numpy.ndarray of bool
        Shaped like ``weights``: ``True`` keeps a weight, ``False`` prunes it.

    Raises
    ------
    ValueError
        If ``weights`` is empty or holds NaN or infinity, ``sparsity`` is outside [0, 1), or
        ``mask`` is not a boolean array of the weights' shape.
    TypeError
        If ``weights`` is not a real numeric array.
    """
    array = _check_weights(weights, "weights")
    count = pruned_count(array.size, sparsity)
    if mask is not None:
        mask = _check_mask(mask, array.shape, "weights")
        count = max(count, int(mask.size - np.count_nonzero(mask)))
    return _prune_smallest(_ranking_key(array, mask), count).reshape(array.shape)


def global_magnitude_masks(layers: Mapping[str, npt.ArrayLike], sparsity: float, *,
                           masks: Mapping[str, npt.ArrayLike] | None = None
                           ) -> dict[str, np.ndarray]:
    """Masks from one magnitude threshold across all layers ("global" pruning).

    The layers are ranked as one array, their flat (C-order) contents concatenated in mapping
    order: ``pruned_count(total size, sparsity)`` weights are pruned, the smallest magnitudes
    first, ties to the earlier layer and then the lower flat index. Each layer ends with its own
    sparsity.

    Parameters
    ----------
    layers : mapping of str to array_like
        Real weights, finite and not empty.
    sparsity : float
        Target fraction of pruned weights over all layers, in [0, 1).
    masks : mapping of str to array_like of bool, optional
        Current masks, one per layer; weights they prune stay pruned (see
        :func:`magnitude_mask`).

    Returns
    -------
    dict of str to numpy.ndarray of bool
        One mask per layer, in the same order: ``True`` keeps, ``False`` prunes.

    Raises
    ------
    ValueError
        If ``layers`` is empty, a layer is empty or holds NaN or infinity, ``sparsity`` is
        outside [0, 1), or ``masks`` does not match ``layers``.
    TypeError
        If ``layers`` is not a mapping of real numeric arrays.
    """
    arrays = _check_layers(layers)
    if masks is not None:
        if not isinstance(masks, Mapping) or list(masks) != list(arrays):
            raise ValueError(f"masks must have the layers' names {list(arrays)!r}, not "
                             f"{list(masks) if isinstance(masks, Mapping) else masks!r}")
        masks = {name: _check_mask(masks[name], arrays[name].shape, name) for name in arrays}
    sizes = [a.size for a in arrays.values()]
    count = pruned_count(sum(sizes), sparsity)
    if masks is not None:
        count = max(count, sum(m.size - int(np.count_nonzero(m)) for m in masks.values()))
    key = np.concatenate([_ranking_key(a, None if masks is None else masks[name])
                          for name, a in arrays.items()])
    flat = np.split(_prune_smallest(key, count), np.cumsum(sizes)[:-1])
    return {name: keep.reshape(a.shape) for (name, a), keep in zip(arrays.items(), flat)}


# -- iterative magnitude pruning ---------------------------------------------------------------

def imp_sparsities(final_sparsity: float, rounds: int) -> np.ndarray:
    """Per-round target sparsities of iterative magnitude pruning.

    Each round prunes the same fraction ``p = 1 - (1 - final_sparsity) ** (1 / rounds)`` of the
    weights still remaining, so after round ``r`` (1-based) the sparsity is
    ``1 - (1 - p) ** r``, and after the last round exactly ``final_sparsity``.

    Parameters
    ----------
    final_sparsity : float
        In [0, 1).
    rounds : int
        Number of prune-and-retrain rounds, >= 1.

    Returns
    -------
    numpy.ndarray
        ``rounds`` float64 targets, non-decreasing, the last equal to ``final_sparsity``.

    Raises
    ------
    ValueError
        If ``final_sparsity`` is outside [0, 1) or ``rounds`` is not an integer >= 1.
    """
    s_f = _check_sparsity(final_sparsity, "final_sparsity")
    if not _is_int(rounds) or rounds < 1:
        raise ValueError(f"rounds must be an integer >= 1, not {rounds!r}")
    remaining = (1.0 - s_f) ** (1.0 / rounds)
    targets = 1.0 - remaining ** np.arange(1, rounds + 1, dtype=np.float64)
    targets[-1] = s_f
    return np.minimum(targets, s_f)


def _masks_for(scope: str, weights: Mapping[str, np.ndarray],
               sparsity: float | Mapping[str, float],
               masks: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """New masks for one update: one target for all layers, or one per layer."""
    if isinstance(sparsity, Mapping):
        return {name: magnitude_mask(w, sparsity[name], mask=masks[name])
                for name, w in weights.items()}
    if scope == "global":
        return global_magnitude_masks(weights, sparsity, masks=masks)
    return {name: magnitude_mask(w, sparsity, mask=masks[name]) for name, w in weights.items()}


def iterative_magnitude_pruning(
        weights: Mapping[str, npt.ArrayLike], final_sparsity: float, rounds: int,
        retrain: Callable[[dict[str, np.ndarray], dict[str, np.ndarray]], Mapping[str, Any]], *,
        scope: str = "global") -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Iterative magnitude pruning: prune, retrain, repeat.

    For each target of :func:`imp_sparsities` in turn: compute masks from the magnitudes of the
    current (masked) weights, zero the pruned weights, and call ``retrain(weights, masks)``,
    which returns the retrained weights. Masks only grow between rounds. After the last round
    the result is retrained once more by that call, so the returned weights are the last
    retraining's output with the final masks applied.

    Parameters
    ----------
    weights : mapping of str to array_like
        Starting (usually trained, dense) weights, finite and not empty. They are copied, never
        modified.
    final_sparsity : float
        Sparsity after the last round, in [0, 1).
    rounds : int
        Number of prune-and-retrain rounds, >= 1.
    retrain : callable
        ``retrain(weights, masks) -> weights``: gets dicts of the pruned float weights and of the
        masks (``True`` keeps), in the original order, and returns a mapping with the same names
        and shapes. It should keep pruned weights at zero (multiply gradients or weights by the
        masks); whatever it returns, pruned weights are zeroed again. It may modify the arrays
        it gets. Rewinding to early weights (lottery tickets) is the callable's business.
    scope : {"global", "layer"}
        "global" ranks all layers together, as in the IMP paper; "layer" prunes each layer to
        the round's target on its own.

    Returns
    -------
    weights : dict of str to numpy.ndarray
        The final retrained weights, pruned weights zero.
    masks : dict of str to numpy.ndarray of bool
        The final masks.

    Raises
    ------
    ValueError
        If an argument is invalid, or ``retrain`` returns different names or shapes.
    TypeError
        If ``retrain`` does not return a mapping.
    """
    if scope not in ("global", "layer"):
        raise ValueError(f"scope must be 'global' or 'layer', not {scope!r}")
    targets = imp_sparsities(final_sparsity, rounds)
    current = {name: np.array(w, copy=True) for name, w in _check_layers(weights).items()}
    masks = {name: np.ones(w.shape, dtype=bool) for name, w in current.items()}
    for round_index, target in enumerate(targets, start=1):
        masks = _masks_for(scope, current, float(target), masks)
        for name, w in current.items():
            w[~masks[name]] = 0
        result = retrain(current, {name: m.copy() for name, m in masks.items()})
        if not isinstance(result, Mapping):
            raise TypeError(f"retrain must return a mapping of layer names to weights, but in "
                            f"round {round_index} it returned {type(result).__name__}")
        if set(result) != set(current):
            raise ValueError(f"retrain must return the layers {list(current)!r}, but in round "
                             f"{round_index} it returned {list(result)!r}")
        retrained = {}
        for name, old in current.items():
            new = np.array(result[name], copy=True)
            if new.shape != old.shape:
                raise ValueError(f"retrain changed the shape of layer {name!r} from {old.shape} "
                                 f"to {new.shape} in round {round_index}")
            try:
                _check_weights(new, name)
            except (ValueError, TypeError) as error:
                raise type(error)(f"retrain returned unusable weights in round {round_index}: "
                                  f"{error}") from None
            new[~masks[name]] = 0
            retrained[name] = new
        current = retrained
    return current, masks


# -- the pruner --------------------------------------------------------------------------------

class Pruner:
    """Apply an AGP schedule to named NumPy weight arrays, framework-agnostic.

    Call :meth:`step` once per training step with the current weights. On mask update steps
    (:func:`is_mask_update_step`) the masks are recomputed from the magnitudes of the masked
    weights at the schedule's target sparsity; on other steps, before ``begin_step`` (all
    weights kept, as in TensorFlow Model Optimization) and after ``end_step`` (masks frozen)
    they are returned unchanged. Call :meth:`apply` to zero the pruned weights in place.

    A weight once pruned stays pruned: pruned weights rank below every other weight whatever
    value the training step left in them, and the pruned count never decreases.

    Parameters
    ----------
    initial_sparsity, final_sparsity, begin_step, end_step, frequency
        The AGP schedule; see :class:`AGPSchedule`.
    scope : {"layer", "global", "layerwise_constant"}
        "layer": every layer is pruned to the target sparsity on its own (the paper's standard
        scheme). "global": one magnitude ranking across all layers (:func:`global_magnitude_masks`).
        "layerwise_constant": one layer at a time, each over its own window, in the order of
        the first weights mapping (:class:`LayerwiseConstantSchedule`); the window split is
        checked at the first :meth:`step`.

    Attributes
    ----------
    history : list of (int, float)
        ``(step, sparsity)`` after every mask update: the fraction of all weights pruned.

    Raises
    ------
    ValueError
        If the schedule or scope is invalid.
    """

    def __init__(self, *, initial_sparsity: float = 0.0, final_sparsity: float, begin_step: int,
                 end_step: int, frequency: int, scope: str = "layer") -> None:
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES!r}, not {scope!r}")
        self._schedule = AGPSchedule(initial_sparsity=initial_sparsity,
                                     final_sparsity=final_sparsity, begin_step=begin_step,
                                     end_step=end_step, frequency=frequency)
        self._scope = scope
        self._masks: dict[str, np.ndarray] | None = None
        self._layerwise: LayerwiseConstantSchedule | None = None
        self.history: list[tuple[int, float]] = []

    @property
    def schedule(self) -> AGPSchedule:
        return self._schedule

    @property
    def scope(self) -> str:
        return self._scope

    @property
    def layerwise_schedule(self) -> LayerwiseConstantSchedule | None:
        """The per-layer windows of the "layerwise_constant" scope, once the layers are known."""
        return self._layerwise

    @property
    def masks(self) -> dict[str, np.ndarray]:
        """The current masks (read-only arrays, ``True`` keeps); empty before the first step."""
        return dict(self._masks or {})

    @property
    def sparsity(self) -> float:
        """The fraction of all weights currently pruned."""
        if not self._masks:
            return 0.0
        total = sum(m.size for m in self._masks.values())
        return sum(m.size - int(np.count_nonzero(m)) for m in self._masks.values()) / total

    @property
    def layer_sparsities(self) -> dict[str, float]:
        """The fraction of each layer's weights currently pruned."""
        return {name: 1.0 - np.count_nonzero(m) / m.size for name, m in (self._masks or {}).items()}

    def is_update_step(self, step: int) -> bool:
        """Whether :meth:`step` recomputes masks at ``step``."""
        return bool(self._schedule.is_update_step(step))

    def _bind(self, weights: Mapping[str, npt.ArrayLike]) -> None:
        if not isinstance(weights, Mapping):
            raise TypeError(f"weights must be a mapping of layer names to arrays, not "
                            f"{type(weights).__name__}")
        if self._masks is None:
            arrays = _check_layers(weights, "weights")
            self._set_masks({name: np.ones(a.shape, dtype=bool) for name, a in arrays.items()})
            return
        if set(weights) != set(self._masks):
            raise ValueError(f"The Pruner was started on layers {list(self._masks)!r}, not "
                             f"{list(weights)!r}")
        for name, mask in self._masks.items():
            shape = np.shape(weights[name])
            if shape != mask.shape:
                raise ValueError(f"Layer {name!r} changed shape from {mask.shape} to {shape}")

    def _set_masks(self, masks: dict[str, np.ndarray]) -> None:
        for mask in masks.values():
            mask.flags.writeable = False
        self._masks = masks
        if self._scope == "layerwise_constant" and (self._layerwise is None
                                                    or self._layerwise.layers != tuple(masks)):
            self._layerwise = LayerwiseConstantSchedule(tuple(masks), self._schedule)

    def step(self, weights: Mapping[str, npt.ArrayLike], step: int) -> dict[str, np.ndarray]:
        """Advance to training ``step``: recompute the masks if it is an update step.

        Parameters
        ----------
        weights : mapping of str to array_like
            The current weights. The first call fixes the layer names, shapes and (for the
            global tie rule and the layerwise order) their order; later calls must pass the
            same names and shapes, in any order.
        step : int
            The training step.

        Returns
        -------
        dict of str to numpy.ndarray of bool
            The masks after this step (read-only arrays).

        Raises
        ------
        ValueError
            If the layers differ from the first call's, or on an update step a layer holds NaN
            or infinity.
        """
        self._bind(weights)
        assert self._masks is not None
        if self._schedule.is_update_step(step):
            ordered = {name: _check_weights(weights[name], name) for name in self._masks}
            if self._layerwise is not None:
                target: float | dict[str, float] = self._layerwise.sparsity(step)
            else:
                target = float(self._schedule.sparsity(step))
            self._set_masks(_masks_for(self._scope, ordered, target, self._masks))
            self.history.append((int(step), self.sparsity))
        return self.masks

    def apply(self, weights: Mapping[str, np.ndarray]) -> None:
        """Zero the pruned weights in place.

        Parameters
        ----------
        weights : mapping of str to numpy.ndarray
            Writable arrays with the pruned layers' names and shapes (other names are ignored).

        Raises
        ------
        RuntimeError
            If called before the first :meth:`step`.
        ValueError, TypeError
            If a layer is missing, has another shape, or is not a NumPy array.
        """
        if self._masks is None:
            raise RuntimeError("Pruner.apply() needs masks: call Pruner.step() first")
        for name, mask in self._masks.items():
            if name not in weights:
                raise ValueError(f"Layer {name!r} is missing from the weights to prune")
            array = weights[name]
            if not isinstance(array, np.ndarray):
                raise TypeError(f"Layer {name!r} must be a NumPy array to be pruned in place, not "
                                f"{type(array).__name__}")
            if array.shape != mask.shape:
                raise ValueError(f"Layer {name!r} has shape {array.shape}, its mask {mask.shape}")
            array[~mask] = 0

    def state_dict(self) -> dict[str, Any]:
        """The masks and history, to save with a training checkpoint."""
        return {"masks": {name: m.copy() for name, m in (self._masks or {}).items()},
                "history": list(self.history)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned.

        Raises
        ------
        ValueError
            If ``state`` does not hold boolean masks and a history.
        """
        try:
            masks, history = state["masks"], state["history"]
        except (KeyError, TypeError):
            raise ValueError("state must be a mapping with 'masks' and 'history', as "
                             "Pruner.state_dict() returns") from None
        loaded = {}
        for name, mask in masks.items():
            array = np.array(mask, copy=True)
            if array.dtype != np.bool_:
                raise ValueError(f"Mask of layer {name!r} must be boolean, not {array.dtype}")
            loaded[name] = array
        if loaded:
            self._set_masks(loaded)
        else:
            self._masks, self._layerwise = None, None
        self.history = [(int(step), float(s)) for step, s in history]
