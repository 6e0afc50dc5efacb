import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings, strategies as st

from sparsemac.sw.format import pack_layer, pack_model
from sparsemac.sw.golden import EngineTiming, layer_cycles, run_golden
from sparsemac.sw.quantize import QuantLayer, QuantModel

from factories import random_inputs, random_layer, random_model
from test_numerics import reference_requantize

TIMING = EngineTiming(fifo_depth=4, broadcast_latency=2, mac_latency=3, output_latency=4,
                      layer_overhead=2)


def reference_forward(model: QuantModel, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An independent reference: scipy.sparse products, then the requantization rule in
    Python integers."""
    h, first_acc = x.astype(np.int64), None
    for layer in model.layers:
        acc = (sp.csr_matrix(layer.weight) @ h.T).T + layer.bias
        first_acc = acc if first_acc is None else first_acc
        h = np.array([[reference_requantize(int(a), int(m), int(s), layer.relu, model.activation_bits)
                       for a, m, s in zip(row, layer.multiplier, layer.shift)] for row in acc])
    return h, first_acc


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(1, 24), min_size=2, max_size=4),
       density=st.sampled_from([0.0, 0.05, 0.3, 1.0]), lanes=st.integers(1, 9),
       activation_bits=st.sampled_from([8, 16]), balance=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_outputs_match_the_independent_reference(sizes, density, lanes, activation_bits, balance, seed):
    rng = np.random.default_rng(seed)
    model = random_model(rng, sizes, density, activation_bits=activation_bits)
    image = pack_model(model, lanes=lanes, balance=balance)
    x = random_inputs(rng, 5, sizes[0], activation_bits=activation_bits)
    result = run_golden(image, x)
    outputs, accumulators = reference_forward(model, x)
    assert np.array_equal(result.outputs, outputs)
    assert np.array_equal(result.accumulators, accumulators)


def test_real_shaped_layer_against_int64_matmul(rng):
    model = random_model(rng, [784, 300, 100, 10], 0.1)
    image = pack_model(model, lanes=8)
    x = random_inputs(rng, 50, 784, zero_fraction=0.5)
    outputs, accumulators = reference_forward(model, x)
    result = run_golden(image, x)
    assert np.array_equal(result.outputs, outputs)
    assert np.array_equal(result.accumulators, x @ model.layers[0].weight.T + model.layers[0].bias)


def test_extreme_values_and_wide_accumulators():
    # 16-bit weights and activations at their extremes: accumulators past 2**53 / K use the
    # exact integer path; results must still match Python integers.
    weight = np.full((3, 64), -(1 << 15), dtype=np.int64)
    layer = QuantLayer("w", weight, np.full(3, 1 << 40), np.full(3, 65535), np.full(3, 63), False, 16)
    image = pack_model(QuantModel((layer,), 16), lanes=2)
    x = np.full((2, 64), -(1 << 15))
    result = run_golden(image, x)
    expected = int(-(1 << 15)) * int(-(1 << 15)) * 64 + (1 << 40)
    assert result.accumulators.tolist() == [[expected] * 3] * 2
    assert result.outputs.tolist() == [[reference_requantize(expected, 65535, 63, False, 16)] * 3] * 2


def test_cycle_model_hand_worked_case():
    # One lane, 3 columns, 2 slots. Column 0 has 2 entries, column 1 none, column 2 one.
    # x = [1, 0, 1]: B0 = 0, lane starts c0 at 0 + 2 and is busy 2 cycles (free at 4).
    # B1 = 0 + 1 + (2 - 0 - 1) = 2 (one empty group skipped); lane starts at max(4, 4) = 4,
    # free at 5. Scan done 2 + 1 + 0 = 3; lanes done 5 + 3 = 8.
    # Layer = 2 (overhead) + 8 + 2 (slots) + 4 (output) = 16.
    layer = QuantLayer("w", np.array([[1, 0, 2], [1, 0, 0]]), np.zeros(2, int),
                       np.full(2, 1 << 15), np.full(2, 16), False, 8)
    image = pack_layer(layer, lanes=1)
    cycles, busy = layer_cycles(image, np.array([[1, 0, 1]]), TIMING)
    assert cycles.tolist() == [16] and busy.tolist() == [[3]]
    # All-zero input: the scanner passes 3 empty groups; 2 + 3 + 2 + 4.
    cycles, busy = layer_cycles(image, np.array([[0, 0, 0]]), TIMING)
    assert cycles.tolist() == [11] and busy.tolist() == [[0]]


def test_output_walk_follows_the_output_stages(rng):
    # Stages of Ns lanes walk Ns x slots records each, in step: only the walk changes.
    layer = random_layer(rng, 40, 24, 0.3)
    image = pack_model(QuantModel((layer,), 8), lanes=4)
    x = random_inputs(rng, 3, 24)
    slots = image.layers[0].slots
    cycles = {ns: run_golden(image, x, EngineTiming(lanes_per_output_stage=ns)).cycles
              for ns in (1, 2, 4)}
    assert np.array_equal(cycles[2] - cycles[1], np.full(3, slots))
    assert np.array_equal(cycles[4] - cycles[1], np.full(3, 3 * slots))
    with pytest.raises(ValueError, match="4-lane layer cannot run on output stages of 3"):
        run_golden(image, x, EngineTiming(lanes_per_output_stage=3))
    with pytest.raises(ValueError, match="Lanes per output stage must be at least 1"):
        EngineTiming(lanes_per_output_stage=0)


def test_fifo_depth_limits_run_ahead():
    # Lane 0 has 10 entries in column 0, lane 1 has one entry per column. With a FIFO of
    # depth 1 the front end waits for lane 0 to pop each column; deeper FIFOs let lane 1 run
    # ahead, but lane 0 still bounds the layer.
    weight = np.zeros((2 * 10, 6), dtype=np.int64)
    weight[0:20:2, 0] = 1           # rows 0, 2, ..., 18 on lane 0 (interleaved), column 0
    weight[1, :] = 1                # row 1 on lane 1, every column
    layer = QuantLayer("w", weight, np.zeros(20, int), np.full(20, 1 << 15), np.full(20, 16), False, 8)
    image = pack_layer(layer, lanes=2, balance=False, run_bits=4)
    x = np.ones((1, 6), dtype=np.int64)
    shallow = layer_cycles(image, x, EngineTiming(fifo_depth=1))[0][0]
    deep = layer_cycles(image, x, EngineTiming(fifo_depth=8))[0][0]
    assert deep <= shallow
    lower_bound = max(np.maximum(image.column_entries, 1).sum(axis=1))
    assert deep >= lower_bound


def test_zero_activations_cost_no_lane_cycles(rng):
    layer = random_layer(rng, 256, 256, 0.1)
    image = pack_model(QuantModel((layer,), 8), lanes=8)
    dense_x = random_inputs(rng, 4, 256, zero_fraction=0.0)
    half_x = dense_x * (np.arange(256) % 2 == 0)
    dense, half = run_golden(image, dense_x), run_golden(image, half_x)
    assert np.all(half.lane_cycles.sum(axis=(1, 2)) < 0.6 * dense.lane_cycles.sum(axis=(1, 2)))
    assert np.all(half.cycles < 0.65 * dense.cycles)
    assert np.all((dense.utilisation > 0) & (dense.utilisation <= 1))


def test_utilisation_counts_only_useful_work(rng):
    layer = random_layer(rng, 64, 64, 0.2)
    image = pack_model(QuantModel((layer,), 8), lanes=4)
    x = random_inputs(rng, 3, 64)
    result = run_golden(image, x)
    expected = (x != 0).astype(int) @ (layer.weight != 0).sum(axis=0)
    assert np.array_equal(result.useful_macs, expected)


def test_input_errors(rng):
    image = pack_model(random_model(rng, [8, 4], 0.5), lanes=2)
    with pytest.raises(ValueError, match=r"shape \(batch, 8\)"):
        run_golden(image, np.zeros((2, 7), int))
    with pytest.raises(ValueError, match="must be integers"):
        run_golden(image, np.zeros((2, 8)))
    with pytest.raises(ValueError, match="beyond the 8-bit activation range"):
        run_golden(image, np.full((1, 8), 128))
    with pytest.raises(ValueError, match="FIFO depth must be at least 1"):
        EngineTiming(fifo_depth=0)
