"""Tests of sparsemac.sw.prune against hand-computed values and the documented rules."""

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsemac.sw.prune import (
    AGPSchedule,
    LayerwiseConstantSchedule,
    Pruner,
    agp_sparsity,
    global_magnitude_masks,
    imp_sparsities,
    is_mask_update_step,
    iterative_magnitude_pruning,
    magnitude_mask,
    pruned_count,
)

DOCS = Path(__file__).parents[2] / "docs" / "pruning.md"
SCHEDULE = dict(initial_sparsity=0.0, final_sparsity=0.9, begin_step=0, end_step=100,
                frequency=10)


# -- the AGP schedule --------------------------------------------------------------------------

# s_i=0, s_f=0.9, t0=0, n*dt=100, dt=10, by hand: s_t = 0.9 - 0.9 * (1 - t/100)**3.
@pytest.mark.parametrize("step, expected", [
    (-5, 0.0),         # before begin_step: initial sparsity
    (0, 0.0),          # 0.9 - 0.9 * 1
    (10, 0.2439),      # 0.9 - 0.9 * 0.729
    (15, 0.2439),      # held from step 10
    (19, 0.2439),
    (20, 0.4392),      # 0.9 - 0.9 * 0.512
    (50, 0.7875),      # 0.9 - 0.9 * 0.125
    (59, 0.7875),
    (90, 0.8991),      # 0.9 - 0.9 * 0.001
    (99, 0.8991),
    (100, 0.9),        # end_step: final sparsity
    (12345, 0.9),
])
def test_agp_hand_values(step, expected):
    assert agp_sparsity(step, **SCHEDULE) == pytest.approx(expected, abs=1e-12)


# s_i=0.2, s_f=0.8, t0=100, n=3, dt=100: s_t = 0.8 - 0.6 * (1 - (t-100)/300)**3.
@pytest.mark.parametrize("step, expected", [
    (0, 0.2),
    (99, 0.2),
    (100, 0.2),
    (199, 0.2),
    (200, 28 / 45),    # 0.8 - 0.6 * 8/27 = 0.8 - 16/90 = 56/90
    (300, 7 / 9),      # 0.8 - 0.6 / 27 = 0.8 - 1/45 = 35/45
    (399, 7 / 9),
    (400, 0.8),
])
def test_agp_hand_values_offset(step, expected):
    s = agp_sparsity(step, initial_sparsity=0.2, final_sparsity=0.8, begin_step=100,
                     end_step=400, frequency=100)
    assert s == pytest.approx(expected, abs=1e-12)


def test_agp_end_points_exact():
    kwargs = dict(initial_sparsity=0.1, final_sparsity=0.9, begin_step=5, end_step=25,
                  frequency=5)
    # 0.9 + (0.1 - 0.9) is 0.09999999999999998 in floating point; the end points are exact.
    assert agp_sparsity(5, **kwargs) == 0.1
    assert agp_sparsity(4, **kwargs) == 0.1
    assert agp_sparsity(25, **kwargs) == 0.9
    assert isinstance(agp_sparsity(7, **kwargs), float)


def test_agp_vectorised():
    steps = np.array([[-5, 0, 15], [50, 99, 100]])
    result = agp_sparsity(steps, **SCHEDULE)
    assert result.shape == (2, 3)
    np.testing.assert_allclose(result, [[0.0, 0.0, 0.2439], [0.7875, 0.8991, 0.9]], atol=1e-12)
    scalars = [agp_sparsity(int(t), **SCHEDULE) for t in steps.ravel()]
    np.testing.assert_array_equal(result.ravel(), scalars)


def test_agp_constant_schedule():
    assert agp_sparsity(50, initial_sparsity=0.5, final_sparsity=0.5, begin_step=0,
                        end_step=100, frequency=10) == 0.5


def test_agp_matches_tf_mot_on_update_steps():
    # TF-MOT evaluates the polynomial at the step itself; on update steps the values agree.
    schedule = AGPSchedule(**SCHEDULE)
    for t in schedule.update_steps:
        p = min(1.0, max(0.0, (t - 0) / 100))
        assert schedule.sparsity(t) == pytest.approx((0.0 - 0.9) * (1 - p) ** 3 + 0.9, abs=1e-15)


def test_schedule_update_steps():
    schedule = AGPSchedule(final_sparsity=0.5, begin_step=30, end_step=90, frequency=20)
    assert schedule.n_updates == 3
    np.testing.assert_array_equal(schedule.update_steps, [30, 50, 70, 90])
    assert schedule.initial_sparsity == 0.0


@pytest.mark.parametrize("step, expected", [
    (-10, False), (0, False), (29, False), (30, True), (31, False), (49, False), (50, True),
    (70, True), (90, True), (100, False), (110, False),
])
def test_is_mask_update_step(step, expected):
    assert is_mask_update_step(step, begin_step=30, end_step=90, frequency=20) is expected


def test_is_mask_update_step_vectorised():
    result = is_mask_update_step(np.arange(25, 100, 5), begin_step=30, end_step=90, frequency=20)
    np.testing.assert_array_equal(np.flatnonzero(result) * 5 + 25, [30, 50, 70, 90])


def test_frequency_one():
    assert is_mask_update_step(7, begin_step=0, end_step=10, frequency=1)
    assert agp_sparsity(5, final_sparsity=0.8, begin_step=0, end_step=10,
                        frequency=1) == pytest.approx(0.8 - 0.8 * 0.125)


@pytest.mark.parametrize("kwargs, message", [
    (dict(end_step=105), r"end_step=105 - begin_step=0 = 105 is not a multiple of frequency=10"),
    (dict(end_step=0), r"end_step must be an integer greater than begin_step.*end_step=0"),
    (dict(end_step=-10), r"end_step=-10 with begin_step=0"),
    (dict(frequency=0), r"frequency must be an integer >= 1, not 0"),
    (dict(frequency=2.0), r"frequency must be an integer >= 1, not 2.0"),
    (dict(begin_step=-10), r"begin_step must be an integer >= 0, not -10"),
    (dict(initial_sparsity=-0.1), r"initial_sparsity must be a number in \[0, 1\), not -0.1"),
    (dict(final_sparsity=1.0), r"final_sparsity must be a number in \[0, 1\), not 1.0"),
    (dict(final_sparsity=float("nan")), r"final_sparsity must be a number in \[0, 1\)"),
    (dict(final_sparsity=True), r"final_sparsity must be a number in \[0, 1\), not True"),
    (dict(initial_sparsity=0.5, final_sparsity=0.4),
     r"final_sparsity=0.4 is below initial_sparsity=0.5"),
])
def test_schedule_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        agp_sparsity(0, **{**SCHEDULE, **kwargs})
    with pytest.raises(ValueError, match=message):
        AGPSchedule(**{**SCHEDULE, **kwargs})
    with pytest.raises(ValueError, match=message):
        Pruner(**{**SCHEDULE, **kwargs})


def test_update_step_errors():
    with pytest.raises(ValueError, match="not a multiple of frequency=10"):
        is_mask_update_step(0, begin_step=0, end_step=95, frequency=10)
    with pytest.raises(ValueError, match="frequency must be"):
        is_mask_update_step(0, begin_step=0, end_step=100, frequency=0)


@pytest.mark.parametrize("step", [1.0, 2.5, True, np.array([1.0, 2.0]), "3"])
def test_step_must_be_integer(step):
    with pytest.raises(ValueError, match="Training steps must be integers"):
        agp_sparsity(step, **SCHEDULE)
    with pytest.raises(ValueError, match="Training steps must be integers"):
        is_mask_update_step(step, begin_step=0, end_step=100, frequency=10)


# -- layerwise constant ------------------------------------------------------------------------

def test_layerwise_constant():
    # Two layers, 10 updates: "a" over [0, 50], "b" over [50, 100], 5 updates each.
    schedule = AGPSchedule(final_sparsity=0.5, begin_step=0, end_step=100, frequency=10)
    layerwise = LayerwiseConstantSchedule(("a", "b"), schedule)
    windows = layerwise.schedules
    assert [(w.begin_step, w.end_step, w.frequency) for w in windows.values()] == [
        (0, 50, 10), (50, 100, 10)]
    # At 25 (held from 20): a = 0.5 - 0.5 * (1 - 20/50)**3 = 0.5 - 0.5 * 0.216 = 0.392.
    assert layerwise.sparsity(25) == pytest.approx({"a": 0.392, "b": 0.0})
    assert layerwise.sparsity(50) == pytest.approx({"a": 0.5, "b": 0.0})
    assert layerwise.sparsity(70) == pytest.approx({"a": 0.5, "b": 0.392})
    assert layerwise.sparsity(100) == {"a": 0.5, "b": 0.5}
    assert [layerwise.layer_at(t) for t in (-1, 0, 25, 49, 50, 99, 100, 101)] == [
        None, "a", "a", "a", "b", "b", "b", None]


def test_layerwise_one_layer_changes_at_a_time():
    schedule = AGPSchedule(final_sparsity=0.8, begin_step=10, end_step=130, frequency=10)
    layerwise = LayerwiseConstantSchedule(["x", "y", "z"], schedule)
    previous = layerwise.sparsity(10)
    for t in schedule.update_steps[1:]:
        current = layerwise.sparsity(int(t))
        changed = [name for name in current if current[name] != previous[name]]
        assert len(changed) == 1
        previous = current


def test_layerwise_errors():
    schedule = AGPSchedule(final_sparsity=0.5, begin_step=0, end_step=100, frequency=10)
    with pytest.raises(ValueError, match=r"Cannot split 10 mask updates .* into 3 equal windows"):
        LayerwiseConstantSchedule(("a", "b", "c"), schedule)
    with pytest.raises(ValueError, match="at least one layer"):
        LayerwiseConstantSchedule((), schedule)
    with pytest.raises(ValueError, match="unique"):
        LayerwiseConstantSchedule(("a", "a"), schedule)
    with pytest.raises(ValueError, match="integer >= 1"):
        schedule.split(0)


# -- counts and masks --------------------------------------------------------------------------

@pytest.mark.parametrize("size, sparsity, expected", [
    (10, 0.0, 0),
    (10, 0.14, 1),     # 1.4
    (10, 0.15, 2),     # 1.5, half up
    (10, 0.05, 1),     # 0.5, half up
    (10, 0.04, 0),     # 0.4
    (3, 0.5, 2),       # 1.5
    (4, 0.5, 2),
    (1, 0.4, 0),
    (1, 0.5, 1),       # a single weight can be pruned
    (100, 0.29, 29),   # 0.29 * 100 is 28.999999999999996 in floating point
    (100, 0.145, 15),  # 0.145 * 100 is 14.499999999999998 in floating point
    (2048, 0.9, 1843),  # 1843.2
    (7, 0.999, 7),     # 6.993
])
def test_pruned_count(size, sparsity, expected):
    assert pruned_count(size, sparsity) == expected


def test_pruned_count_numpy_scalars():
    assert pruned_count(np.int64(100), np.float64(0.145)) == 15


@given(st.integers(1, 10_000), st.floats(0, 1, exclude_max=True),
       st.floats(0, 1, exclude_max=True))
def test_pruned_count_monotone(size, a, b):
    lo, hi = sorted((a, b))
    assert 0 <= pruned_count(size, lo) <= pruned_count(size, hi) <= size
    assert abs(pruned_count(size, hi) - hi * size) <= 0.5 + 1e-9 * size


@pytest.mark.parametrize("size, sparsity, message", [
    (0, 0.5, "size must be an integer >= 1, not 0"),
    (10.0, 0.5, "size must be an integer >= 1, not 10.0"),
    (10, 1.0, r"sparsity must be a number in \[0, 1\), not 1.0"),
    (10, -0.5, r"sparsity must be a number in \[0, 1\), not -0.5"),
])
def test_pruned_count_errors(size, sparsity, message):
    with pytest.raises(ValueError, match=message):
        pruned_count(size, sparsity)


def test_magnitude_mask_smallest_first():
    w = np.array([[0.3, -5.0, 0.01], [2.0, -0.2, 1.0]])
    np.testing.assert_array_equal(magnitude_mask(w, 0.5),
                                  [[False, True, False], [True, False, True]])
    assert magnitude_mask(w, 0.0).all()


def test_magnitude_mask_ties_lower_index_first():
    # |1| four times; 0.5 is smallest, then the tied ones by C-order index.
    w = np.array([1.0, -1.0, 1.0, 0.5, -1.0])
    np.testing.assert_array_equal(magnitude_mask(w, 0.4), [False, True, True, False, True])
    np.testing.assert_array_equal(magnitude_mask(w, 0.6), [False, False, True, False, True])
    # C order across rows: (0, 1) comes before (1, 0).
    w2 = np.array([[2.0, 1.0], [1.0, 2.0]])
    np.testing.assert_array_equal(magnitude_mask(w2, 0.25), [[True, False], [True, True]])


def test_magnitude_mask_zeros_first():
    w = np.array([0.0, 3.0, 0.0, -0.0, 2.0])
    # 0.5 * 5 = 2.5 -> 3 pruned: the three zeros.
    np.testing.assert_array_equal(magnitude_mask(w, 0.5), [False, True, False, False, True])


def test_magnitude_mask_integer_weights():
    # int8 -128 has no int8 magnitude; it must rank as 128, the largest.
    w = np.array([-128, 1, -2, 127, 0], dtype=np.int8)
    np.testing.assert_array_equal(magnitude_mask(w, 0.6), [True, False, False, True, False])


def test_magnitude_mask_with_prior_mask_stays_monotone():
    # Index 3 was pruned; training set index 0 to exactly 0 and left 7.0 in index 3's storage.
    w = np.array([0.0, 4.0, 3.0, 7.0])
    prior = np.array([True, True, True, False])
    # Ranked by the masked value alone, index 0 (zero, lower index) would replace index 3.
    np.testing.assert_array_equal(magnitude_mask(w * prior, 0.25),
                                  [False, True, True, True])
    np.testing.assert_array_equal(magnitude_mask(w, 0.25, mask=prior), prior)
    np.testing.assert_array_equal(magnitude_mask(w, 0.5, mask=prior), [False, True, True, False])
    # A target below what is already pruned never un-prunes.
    np.testing.assert_array_equal(magnitude_mask(w, 0.0, mask=prior), prior)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-4, 4), min_size=1, max_size=60), st.floats(0, 1, exclude_max=True))
def test_magnitude_mask_properties(values, sparsity):
    w = np.array(values, dtype=np.float64) / 2
    mask = magnitude_mask(w, sparsity)
    assert np.count_nonzero(~mask) == pruned_count(w.size, sparsity)
    pruned, kept = np.flatnonzero(~mask), np.flatnonzero(mask)
    if pruned.size and kept.size:
        assert np.abs(w[pruned]).max() <= np.abs(w[kept]).min()
        # Ties at the threshold: every pruned one precedes every kept one.
        edge = np.abs(w[pruned]).max()
        tied_pruned = pruned[np.abs(w[pruned]) == edge]
        tied_kept = kept[np.abs(w[kept]) == edge]
        if tied_kept.size:
            assert tied_pruned.max() < tied_kept.min()


def test_global_vs_layer():
    layers = {"a": np.array([1.0, 2.0, 3.0, 4.0]), "b": np.array([10.0, 20.0, 30.0, 40.0])}
    masks = global_magnitude_masks(layers, 0.5)
    np.testing.assert_array_equal(masks["a"], [False] * 4)
    np.testing.assert_array_equal(masks["b"], [True] * 4)
    for name, w in layers.items():
        np.testing.assert_array_equal(magnitude_mask(w, 0.5), [False, False, True, True])


def test_global_shapes_and_count():
    rng = np.random.default_rng(1)
    layers = {"a": rng.normal(size=(3, 5)), "b": rng.normal(size=7),
              "c": rng.normal(size=(2, 2, 2))}
    masks = global_magnitude_masks(layers, 0.3)
    assert list(masks) == ["a", "b", "c"]
    assert all(masks[n].shape == layers[n].shape and masks[n].dtype == bool for n in layers)
    assert sum(np.count_nonzero(~m) for m in masks.values()) == 9  # 0.3 * 30
    flat = np.concatenate([np.abs(w).ravel() for w in layers.values()])
    keep = np.concatenate([m.ravel() for m in masks.values()])
    assert flat[~keep].max() < flat[keep].min()


def test_global_ties_follow_mapping_order():
    a, b = np.array([1.0, 2.0]), np.array([1.0, 0.5])
    masks = global_magnitude_masks({"a": a, "b": b}, 0.5)
    np.testing.assert_array_equal(masks["a"], [False, True])
    np.testing.assert_array_equal(masks["b"], [True, False])
    masks = global_magnitude_masks({"b": b, "a": a}, 0.5)
    np.testing.assert_array_equal(masks["a"], [True, True])
    np.testing.assert_array_equal(masks["b"], [False, False])


def test_global_with_prior_masks():
    layers = {"a": np.array([5.0, 0.0]), "b": np.array([9.0, 1.0])}
    prior = {"a": np.array([True, True]), "b": np.array([False, True])}
    masks = global_magnitude_masks(layers, 0.25, masks=prior)
    np.testing.assert_array_equal(masks["a"], [True, True])
    np.testing.assert_array_equal(masks["b"], [False, True])
    with pytest.raises(ValueError, match="masks must have the layers' names"):
        global_magnitude_masks(layers, 0.5, masks={"a": prior["a"]})
    with pytest.raises(ValueError, match=r"Mask of layer 'b' must be a boolean array of shape"):
        global_magnitude_masks(layers, 0.5, masks={"a": prior["a"], "b": np.ones(3, bool)})


@pytest.mark.parametrize("bad, message", [
    (np.array([1.0, np.nan]), r"Layer 'weights' has 1 NaN or infinite weight\(s\) out of 2"),
    (np.array([np.inf, -np.inf, 1.0]), r"has 2 NaN or infinite weight\(s\) out of 3"),
    (np.zeros((0, 4)), r"Layer 'weights' is empty \(shape \(0, 4\)\)"),
])
def test_magnitude_mask_bad_weights(bad, message):
    with pytest.raises(ValueError, match=message):
        magnitude_mask(bad, 0.5)


def test_mask_errors():
    with pytest.raises(ValueError, match=r"sparsity must be a number in \[0, 1\), not 1.5"):
        magnitude_mask(np.ones(4), 1.5)
    with pytest.raises(TypeError, match="floating-point weights, not dtype complex128"):
        magnitude_mask(np.ones(4, complex), 0.5)
    with pytest.raises(TypeError, match="not dtype bool"):
        magnitude_mask(np.ones(4, bool), 0.5)
    with pytest.raises(ValueError, match=r"shape \(4,\), not int64 of shape \(4,\)"):
        magnitude_mask(np.ones(4), 0.5, mask=np.ones(4, np.int64))
    with pytest.raises(ValueError, match="layers is empty"):
        global_magnitude_masks({}, 0.5)
    with pytest.raises(TypeError, match="mapping of layer names"):
        global_magnitude_masks([np.ones(3)], 0.5)
    with pytest.raises(ValueError, match=r"Layer 'b' has 1 NaN"):
        global_magnitude_masks({"a": np.ones(3), "b": np.array([np.nan])}, 0.5)
    with pytest.raises(ValueError, match=r"Layer 'b' is empty"):
        global_magnitude_masks({"a": np.ones(3), "b": np.array([])}, 0.5)
    with pytest.raises(ValueError, match=r"sparsity must be a number in \[0, 1\), not -0.1"):
        global_magnitude_masks({"a": np.ones(3)}, -0.1)


# -- iterative magnitude pruning ---------------------------------------------------------------

def test_imp_sparsities_hand_values():
    # 1 - 0.125 = 0.5**3: half the remaining weights each round.
    np.testing.assert_allclose(imp_sparsities(0.875, 3), [0.5, 0.75, 0.875], atol=1e-15)
    # 1 - 0.19 = 0.9**2: 10% per round.
    np.testing.assert_allclose(imp_sparsities(0.19, 2), [0.1, 0.19], atol=1e-15)
    np.testing.assert_array_equal(imp_sparsities(0.9, 1), [0.9])
    np.testing.assert_array_equal(imp_sparsities(0.0, 4), [0.0] * 4)


@given(st.floats(0, 0.999), st.integers(1, 50))
def test_imp_sparsities_properties(final, rounds):
    targets = imp_sparsities(final, rounds)
    assert targets.shape == (rounds,)
    assert targets[-1] == final
    assert np.all(np.diff(targets) >= 0)
    # Each round prunes the same fraction of what remains.
    remaining = np.concatenate([[1.0], 1.0 - targets])
    np.testing.assert_allclose(remaining[1:] / remaining[:-1], (1 - final) ** (1 / rounds),
                               rtol=1e-9)


@pytest.mark.parametrize("final, rounds, message", [
    (1.0, 3, r"final_sparsity must be a number in \[0, 1\), not 1.0"),
    (0.5, 0, "rounds must be an integer >= 1, not 0"),
    (0.5, 2.0, "rounds must be an integer >= 1, not 2.0"),
])
def test_imp_sparsities_errors(final, rounds, message):
    with pytest.raises(ValueError, match=message):
        imp_sparsities(final, rounds)


def test_iterative_magnitude_pruning():
    rng = np.random.default_rng(2)
    weights = {"a": rng.normal(size=(8, 8)), "b": rng.normal(size=(4, 16))}
    original = {n: w.copy() for n, w in weights.items()}
    calls = []

    def retrain(w, m):
        calls.append({n: int(np.count_nonzero(~m[n])) for n in m})
        for name in w:
            assert np.all(w[name][~m[name]] == 0)
        # Move every weight, pruned ones too: the loop must zero them again.
        return {name: w[name] + 0.05 for name in w}

    pruned, masks = iterative_magnitude_pruning(weights, 0.875, 3, retrain)
    # 128 weights: 64, 96, 112 pruned over the three rounds.
    assert [sum(c.values()) for c in calls] == [64, 96, 112]
    assert sum(np.count_nonzero(~m) for m in masks.values()) == 112
    for name in weights:
        np.testing.assert_array_equal(weights[name], original[name])  # input untouched
        assert np.all(pruned[name][~masks[name]] == 0)
        assert np.all(pruned[name][masks[name]] != 0)


def test_iterative_magnitude_pruning_masks_only_grow():
    rng = np.random.default_rng(3)
    weights = {"a": rng.normal(size=50), "b": rng.normal(size=30)}
    history = []

    def retrain(w, m):
        history.append(m)
        return {n: w[n] + rng.normal(size=w[n].shape) for n in w}   # large moves

    _, _ = iterative_magnitude_pruning(weights, 0.9, 5, retrain, scope="layer")
    for before, after in zip(history, history[1:]):
        for name in before:
            assert not np.any(after[name] & ~before[name])
    assert [int(np.count_nonzero(~m["a"])) for m in history] == [
        pruned_count(50, s) for s in imp_sparsities(0.9, 5)]


def test_iterative_magnitude_pruning_errors():
    weights = {"a": np.ones(4)}
    with pytest.raises(ValueError, match="scope must be 'global' or 'layer', not 'net'"):
        iterative_magnitude_pruning(weights, 0.5, 2, lambda w, m: w, scope="net")
    with pytest.raises(TypeError, match="must return a mapping .* round 1 it returned NoneType"):
        iterative_magnitude_pruning(weights, 0.5, 2, lambda w, m: None)
    with pytest.raises(ValueError, match=r"retrain must return the layers \['a'\]"):
        iterative_magnitude_pruning(weights, 0.5, 2, lambda w, m: {"b": w["a"]})
    with pytest.raises(ValueError, match=r"changed the shape of layer 'a' from \(4,\) to \(2, 2\)"):
        iterative_magnitude_pruning(weights, 0.5, 2, lambda w, m: {"a": w["a"].reshape(2, 2)})
    with pytest.raises(ValueError, match=r"unusable weights in round 1: Layer 'a' has 4 NaN"):
        iterative_magnitude_pruning(weights, 0.5, 2, lambda w, m: {"a": w["a"] * np.nan})
    # Round 1 prunes 1 of 4 (0.29 * 4 = 1.17), round 2 prunes 2; NaN only in round 2.
    with pytest.raises(ValueError, match=r"unusable weights in round 2: Layer 'a' has 4 NaN"):
        iterative_magnitude_pruning(
            weights, 0.5, 2, lambda w, m: {"a": np.where(m["a"].sum() == 2, np.nan, w["a"])})
    # Order of the returned mapping does not matter.
    two = {"a": np.ones(2), "b": np.ones(2)}
    iterative_magnitude_pruning(two, 0.5, 2, lambda w, m: {"b": w["b"], "a": w["a"]})
    with pytest.raises(ValueError, match="rounds must be"):
        iterative_magnitude_pruning(weights, 0.5, 0, lambda w, m: w)


# -- the Pruner --------------------------------------------------------------------------------

def test_pruner_follows_schedule():
    rng = np.random.default_rng(4)
    weights = {"a": rng.normal(size=(10, 10)), "b": rng.normal(size=(5, 20))}
    pruner = Pruner(**SCHEDULE)
    assert pruner.masks == {} and pruner.sparsity == 0.0
    seen = []
    for step in range(-3, 130):
        masks = pruner.step(weights, step)
        pruner.apply(weights)
        seen.append({n: int(np.count_nonzero(~m)) for n, m in masks.items()})
    # 0.9 * 100 per layer at the end, frozen after end_step.
    assert seen[-1] == {"a": 90, "b": 90}
    assert seen[-1] == seen[103]                          # step 100
    # Step 50: round(0.7875 * 100) = 79 (78.75); held through step 59.
    assert seen[53] == seen[62] == {"a": 79, "b": 79}
    assert seen[0] == {"a": 0, "b": 0}
    assert [t for t, _ in pruner.history] == list(range(0, 101, 10))
    assert pruner.history[5] == (50, 0.79)
    assert pruner.layer_sparsities == {"a": 0.9, "b": 0.9}
    for name, w in weights.items():
        assert np.count_nonzero(w) == 10


def test_pruner_masks_read_only():
    pruner = Pruner(**SCHEDULE)
    masks = pruner.step({"a": np.arange(1.0, 11.0)}, 50)
    with pytest.raises(ValueError, match="read-only"):
        masks["a"][0] = True


def test_pruner_keeps_pruned_weights_pruned_on_ties():
    # Same target at both update steps (s_i = s_f): the count stays 1.
    pruner = Pruner(initial_sparsity=0.25, final_sparsity=0.25, begin_step=0, end_step=10,
                    frequency=10)
    first = pruner.step({"w": np.array([5.0, 4.0, 3.0, 0.1])}, 0)
    np.testing.assert_array_equal(first["w"], [True, True, True, False])
    # Training drove index 0 to exactly zero and left 7.0 in pruned index 3 (no apply()).
    second = pruner.step({"w": np.array([0.0, 4.0, 3.0, 7.0])}, 10)
    np.testing.assert_array_equal(second["w"], [True, True, True, False])


def test_pruner_global_and_layerwise():
    weights = {"a": np.arange(1.0, 11.0), "b": np.arange(11.0, 21.0)}
    pruner = Pruner(final_sparsity=0.5, begin_step=0, end_step=100, frequency=10, scope="global")
    masks = pruner.step(weights, 100)
    assert not masks["a"].any() and masks["b"].all()

    pruner = Pruner(final_sparsity=0.5, begin_step=0, end_step=100, frequency=10,
                    scope="layerwise_constant")
    counts = []
    for step in range(0, 101, 10):
        masks = pruner.step(weights, step)
        counts.append((int(np.count_nonzero(~masks["a"])), int(np.count_nonzero(~masks["b"]))))
    # "a" over [0, 50], "b" over [50, 100]; at 20 a = 0.392 of 10 -> 4 pruned.
    assert counts[2] == (4, 0)
    assert counts[5] == (5, 0)
    assert counts[7] == (5, 4)
    assert counts[-1] == (5, 5)
    assert pruner.layerwise_schedule.layers == ("a", "b")


def test_pruner_layerwise_split_error_at_first_step():
    pruner = Pruner(final_sparsity=0.5, begin_step=0, end_step=100, frequency=10,
                    scope="layerwise_constant")
    with pytest.raises(ValueError, match="into 3 equal windows"):
        pruner.step({"a": np.ones(4), "b": np.ones(4), "c": np.ones(4)}, 0)


def test_pruner_state_dict_round_trip():
    rng = np.random.default_rng(5)
    weights = {"a": rng.normal(size=20)}
    pruner = Pruner(**SCHEDULE)
    for step in range(60):
        pruner.step(weights, step)
    state = pruner.state_dict()
    other = Pruner(**SCHEDULE)
    other.load_state_dict(state)
    assert other.history == pruner.history
    np.testing.assert_array_equal(other.masks["a"], pruner.masks["a"])
    for step in range(60, 120):
        np.testing.assert_array_equal(other.step(weights, step)["a"],
                                      pruner.step(weights, step)["a"])
    with pytest.raises(ValueError, match="'masks' and 'history'"):
        other.load_state_dict({"masks": {}})
    with pytest.raises(ValueError, match="must be boolean"):
        other.load_state_dict({"masks": {"a": np.ones(20)}, "history": []})


def test_pruner_errors():
    with pytest.raises(ValueError, match="scope must be one of .* not 'net'"):
        Pruner(**SCHEDULE, scope="net")
    pruner = Pruner(**SCHEDULE)
    with pytest.raises(RuntimeError, match="call Pruner.step"):
        pruner.apply({"a": np.ones(3)})
    with pytest.raises(ValueError, match="weights is empty"):
        pruner.step({}, 0)
    with pytest.raises(ValueError, match=r"Layer 'a' is empty"):
        pruner.step({"a": np.ones(0)}, 0)
    pruner.step({"a": np.ones(3)}, 0)
    with pytest.raises(ValueError, match=r"started on layers \['a'\], not \['b'\]"):
        pruner.step({"b": np.ones(3)}, 5)
    with pytest.raises(ValueError, match=r"Layer 'a' changed shape from \(3,\) to \(4,\)"):
        pruner.step({"a": np.ones(4)}, 5)
    with pytest.raises(ValueError, match=r"Layer 'a' has 1 NaN"):
        pruner.step({"a": np.array([1.0, np.nan, 2.0])}, 10)
    pruner.step({"a": np.array([1.0, np.nan, 2.0])}, 11)   # not an update step: not looked at
    with pytest.raises(TypeError, match="must be a NumPy array"):
        pruner.apply({"a": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match="missing"):
        pruner.apply({"b": np.ones(3)})


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_pruner_monotone(data):
    s_i = data.draw(st.floats(0, 0.9), label="initial_sparsity")
    s_f = data.draw(st.floats(s_i, 0.99), label="final_sparsity")
    begin = data.draw(st.integers(0, 5), label="begin_step")
    frequency = data.draw(st.integers(1, 4), label="frequency")
    n = data.draw(st.integers(1, 6), label="n")
    scope = data.draw(st.sampled_from(["layer", "global"]), label="scope")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    sizes = data.draw(st.lists(st.integers(1, 40), min_size=1, max_size=3), label="sizes")
    end = begin + n * frequency
    rng = np.random.default_rng(seed)
    # Coarse values so that ties and exact zeros are common.
    weights = {f"l{i}": rng.integers(-3, 4, size=k).astype(float) for i, k in enumerate(sizes)}
    pruner = Pruner(initial_sparsity=s_i, final_sparsity=s_f, begin_step=begin, end_step=end,
                    frequency=frequency, scope=scope)
    previous = None
    for step in range(end + 3):
        masks = pruner.step(weights, step)
        if previous is not None:
            for name in masks:
                assert not np.any(masks[name] & ~previous[name]), "a pruned weight came back"
        if pruner.is_update_step(step):
            target = agp_sparsity(step, initial_sparsity=s_i, final_sparsity=s_f,
                                  begin_step=begin, end_step=end, frequency=frequency)
            if scope == "global":
                expected = pruned_count(sum(sizes), target)
                assert sum(np.count_nonzero(~m) for m in masks.values()) == expected
            else:
                for name, w in weights.items():
                    assert np.count_nonzero(~masks[name]) == pruned_count(w.size, target)
        previous = masks
        # Training moves weights, sometimes to exactly zero; half the time apply() is skipped.
        for w in weights.values():
            w += rng.integers(-1, 2, size=w.shape)
        if rng.random() < 0.5:
            pruner.apply(weights)
    assert pruner.sparsity == pytest.approx(pruner.history[-1][1])


# -- docs --------------------------------------------------------------------------------------

def _doc_blocks():
    return re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.S)


def test_docs_numpy_examples_run():
    blocks = [b for b in _doc_blocks() if "import torch" not in b]
    assert blocks
    for block in blocks:
        exec(compile(block, str(DOCS), "exec"), {})
