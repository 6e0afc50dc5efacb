"""The digits demo end to end, in its quick configuration (about 10 s on 2 cores)."""

import json

import numpy as np
import pytest

from sparsemac.cli import main
from sparsemac.sw import (agp_sparsity, is_mask_update_step, load_image, model_from_arrays,
                          pack_model, quantize_model, run_golden, unpack_model)
from sparsemac.sw.demo import (QUICK, DemoConfig, EngineMismatchError, _estimated_dense_storage,
                               _load_digits, _train, run_demo, run_on_engine, small_dense_sizes)
from sparsemac.sw.prune import pruned_count

#: Tolerance of the footprint match: a small-dense model's dense storage is within 3% of its
#: large-sparse model's image. Widths are whole numbers (one unit of the first hidden width
#: moves the quick models' storage by about 1.5%), and the widths are chosen before training
#: from a worst-case estimate of the bias width.
FOOTPRINT_TOLERANCE = 0.03
#: Golden (8-bit integer) accuracy stays within 2 points of the float model's.
QUANTIZATION_TOLERANCE = 0.02


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return run_demo(out, quick=True, lanes=8, progress=False)


@pytest.fixture(scope="module")
def results(demo):
    return json.loads(demo.files["results"].read_text())


def test_files_written(demo, results):
    for key in ("schedule_plot", "accuracy_plot"):
        assert demo.files[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    names = [m.name for m in demo.models]
    assert names == ["baseline", "wide-dense", "sparse-75", "small-75", "sparse-90", "small-90"]
    assert sorted(p.stem for p in demo.files["images"].glob("*.smac")) == sorted(names)
    assert sorted(p.stem for p in demo.files["models"].glob("*.npz")) == sorted(names)
    assert [m["name"] for m in results["models"]] == names
    assert results["test_samples"] == demo.test_samples == 450


def test_schedule_follows_agp(demo, results):
    schedule = results["schedule"]                       # the data the schedule plot draws
    steps = np.array(schedule["steps"])
    wide = demo.model("wide-dense").model
    sizes = [layer.weight.size for layer in wide.layers]
    args = dict(begin_step=schedule["begin_step"], end_step=schedule["end_step"],
                frequency=schedule["frequency"])
    assert args == dict(begin_step=QUICK.prune_begin_epoch * schedule["steps_per_epoch"],
                        end_step=QUICK.prune_end_epoch * schedule["steps_per_epoch"],
                        frequency=schedule["steps_per_epoch"])
    for s in QUICK.sparsities:
        target = np.array(schedule["target"][f"{s:g}"])
        np.testing.assert_array_equal(target, agp_sparsity(steps, final_sparsity=s, **args))
        history = schedule["history"][f"{s:g}"]
        assert [step for step, _ in history] == [int(t) for t in steps
                                                 if is_mask_update_step(int(t), **args)]
        for step, reached in history:
            t = float(agp_sparsity(step, final_sparsity=s, **args))
            expected = sum(pruned_count(n, t) for n in sizes) / sum(sizes)
            assert reached == pytest.approx(expected, abs=1e-12)
        assert history[-1][1] == pytest.approx(s, abs=1e-3)


def test_pruned_weights_exactly_zero(demo):
    for m in demo.models:
        if m.kind != "large-sparse":
            continue
        for layer in m.model.layers:
            pruned = pruned_count(layer.weight.size, m.target_sparsity)
            assert np.count_nonzero(layer.weight) == layer.weight.size - pruned, m.name
        stored = unpack_model(load_image(demo.files["images"] / f"{m.name}.smac"))
        for q, layer in zip(stored.layers, m.model.layers):
            assert not np.any(q.weight[layer.weight == 0]), m.name     # zeros stay zero


def test_golden_close_to_float(demo):
    for m in demo.models:
        assert abs(m.golden_accuracy - m.float_accuracy) <= QUANTIZATION_TOLERANCE, m.name
    assert demo.model("wide-dense").golden_accuracy > 0.9


def test_small_dense_matches_footprint(demo):
    assert len(demo.comparisons) == len(QUICK.sparsities)
    for c in demo.comparisons:
        sparse, dense = demo.model(c.sparse), demo.model(c.dense)
        assert dense.kind == "small-dense" and dense.matched_to == sparse.name
        assert dense.target_sparsity == 0 and dense.footprint_bytes == dense.dense_storage_bytes
        assert sparse.footprint_bytes == sparse.image_bytes
        assert abs(c.footprint_ratio - 1) <= FOOTPRINT_TOLERANCE, c
        assert dense.sizes[1] < sparse.sizes[1]


def test_engine_not_faked(demo, results):
    assert all(m.engine_accuracy is None for m in demo.models)
    assert results["engine"] == "n/a (not yet available)"


def test_engine_hook(rng):
    model = model_from_arrays([rng.standard_normal((12, 8)), rng.standard_normal((3, 12))],
                              [rng.standard_normal(12), rng.standard_normal(3)])
    image = pack_model(quantize_model(model, rng.standard_normal((64, 8))), lanes=4)
    x = rng.integers(-128, 128, size=(20, 8))
    expected = run_golden(image, x).outputs
    assert run_on_engine(None, image, x, expected) is None
    same = run_on_engine(lambda im, xs: run_golden(im, xs).outputs.copy(), image, x, expected)
    np.testing.assert_array_equal(same, expected)

    def off_by_one(im, xs):
        y = run_golden(im, xs).outputs.copy()
        y[7, 1] += 1
        return y
    with pytest.raises(EngineMismatchError, match="for 1 of 20 inputs .first: input 7"):
        run_on_engine(off_by_one, image, x, expected, "m")
    with pytest.raises(EngineMismatchError, match="shape"):
        run_on_engine(lambda im, xs: expected[:5], image, x, expected)


def test_training_repeats_exactly():
    config = DemoConfig(epochs=1, prune_begin_epoch=0, prune_end_epoch=1, seeds=(3,))
    x_train, _, y_train, _ = _load_digits(config)
    a, b = (_train((64, 16, 10), x_train, y_train, config, 3, pruner=None, advance=lambda n: None)
            for _ in range(2))
    assert a == b


@pytest.mark.parametrize("target", [3000.0, 9000.0, 20000.0, 40000.0])
def test_small_dense_sizes(target):
    sizes = small_dense_sizes(target, (64, 256, 128, 10))
    assert sizes[0] == 64 and sizes[-1] == 10 and abs(sizes[2] - sizes[1] / 2) <= 1
    assert abs(_estimated_dense_storage(sizes) / target - 1) < 0.01


def test_cli(demo, tmp_path, monkeypatch, capsys):
    import sparsemac.sw.demo as module

    calls = []
    monkeypatch.setattr(module, "run_demo",
                        lambda output, **kw: calls.append((output, kw)) or demo)
    assert main(["demo", "--quick", "-o", str(tmp_path), "--lanes", "4", "--no-engine"]) == 0
    assert calls == [(str(tmp_path),
                      {"quick": True, "lanes": 4, "engine": None, "timing": None})]
    out = capsys.readouterr().out
    assert "small-90" in out and "n/a (not yet available)" in out and "results.json" in out


def test_cli_bad_lanes(tmp_path, capsys):
    # With the engine, its own limit is checked before anything is built or trained; without
    # it, the format's.
    assert main(["demo", "--quick", "-o", str(tmp_path), "--lanes", "33"]) == 1
    assert "Lane count must be 1 to 32, not 33" in capsys.readouterr().err
    assert main(["demo", "--quick", "-o", str(tmp_path), "--lanes", "65", "--no-engine"]) == 1
    assert "Lane count must be 1 to 64" in capsys.readouterr().err
