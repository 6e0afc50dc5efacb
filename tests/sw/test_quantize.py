import numpy as np
import pytest

from sparsemac.sw.format import pack_model
from sparsemac.sw.golden import run_golden
from sparsemac.sw.model_io import model_from_arrays
from sparsemac.sw.quantize import dequantize_outputs, quantize_activations, quantize_model


def float_forward(model, x):
    for layer in model.layers:
        x = x @ layer.weight.T + (0 if layer.bias is None else layer.bias)
        x = np.maximum(x, 0) if layer.relu else x
    return x


@pytest.fixture
def float_model(rng):
    weights = [rng.standard_normal((32, 20)) / 4, rng.standard_normal((6, 32)) / 6]
    weights = [w * (rng.random(w.shape) > 0.7) for w in weights]
    return model_from_arrays(weights, [rng.standard_normal(32) * 0.1, rng.standard_normal(6) * 0.1])


def test_integer_model_tracks_the_float_model(float_model, rng):
    calibration = rng.standard_normal((512, 20))
    qmodel = quantize_model(float_model, calibration)
    x = calibration[:200]     # inside the calibrated ranges, so nothing clips
    reference = float_forward(float_model, x)
    x_int = quantize_activations(x, qmodel.input_scale, 8)
    y = dequantize_outputs(run_golden(pack_model(qmodel, lanes=4), x_int).outputs, qmodel.output_scale)
    # 8-bit quantization: errors of a few output steps, far below the signal.
    error = np.abs(y - reference).max()
    assert error < 6 * qmodel.output_scale
    assert np.corrcoef(y.ravel(), reference.ravel())[0, 1] > 0.99


def test_scales_and_zeros(float_model, rng):
    qmodel = quantize_model(float_model, rng.standard_normal((64, 20)), weight_bits=6)
    for dense, layer in zip(float_model.layers, qmodel.layers):
        assert np.all(layer.weight[dense.weight == 0] == 0)             # pruned stay pruned
        assert np.all(np.abs(layer.weight).max(axis=1) == 31)           # full 6-bit range used
        np.testing.assert_allclose(layer.weight * layer.weight_scale[:, None], dense.weight,
                                   atol=layer.weight_scale.max() / 2 + 1e-12)


def test_default_calibration_is_seeded(float_model):
    a, b = quantize_model(float_model), quantize_model(float_model)
    assert a.input_scale == b.input_scale
    assert all(np.array_equal(x.multiplier, y.multiplier) for x, y in zip(a.layers, b.layers))


def test_calibration_errors(float_model):
    with pytest.raises(ValueError, match=r"shape \(samples, 20\)"):
        quantize_model(float_model, np.zeros((4, 19)))
    with pytest.raises(ValueError, match="NaN or infinite"):
        quantize_model(float_model, np.full((4, 20), np.nan))
    with pytest.raises(ValueError, match="Weight width"):
        quantize_model(float_model, weight_bits=3)
    with pytest.raises(ValueError, match="Activation width"):
        quantize_model(float_model, activation_bits=12)


def test_negligible_weights_next_to_a_bias(rng):
    # A dead unit under weight decay: weights of 1e-30 and a bias of 0.3. Its bias must not
    # overflow; the row's weights round to zero and its output is its bias.
    w = rng.standard_normal((4, 6))
    w[2] = 1e-30 * np.sign(w[2])
    model = model_from_arrays([w], [np.full(4, 0.3)])
    calibration = rng.standard_normal((64, 6))
    qmodel = quantize_model(model, calibration)
    layer = qmodel.layers[0]
    assert np.abs(layer.bias).max() <= 1 << 30
    assert np.all(layer.weight[2] == 0)
    x = quantize_activations(calibration, qmodel.input_scale, 8)
    y = dequantize_outputs(run_golden(pack_model(qmodel, lanes=2), x).outputs, qmodel.output_scale)
    np.testing.assert_allclose(y[:, 2], 0.3, atol=qmodel.output_scale)
