"""Tests of the PyTorch adapter, sparsemac.sw.torch_prune (skipped without PyTorch)."""

import io
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from sparsemac.sw.prune import Pruner, pruned_count
from sparsemac.sw.torch_prune import TorchPruner

DOCS = Path(__file__).parents[2] / "docs" / "pruning.md"
SCHEDULE = dict(final_sparsity=0.75, begin_step=10, end_step=50, frequency=10)


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def _model(torch):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 12), torch.nn.ReLU(), torch.nn.Linear(12, 4))


def _train(torch, model, pruner, steps, start=0):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(64, 8), torch.randint(0, 4, (64,))
    zeros = []
    for step in range(start, start + steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        pruner.step(step)
        zeros.append({name: int((p == 0).sum()) for name, p in model.named_parameters()
                      if name.endswith("weight")})
    return zeros


def test_missing_torch_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"pip install sparsemac\[torch\]"):
        TorchPruner(object(), **SCHEDULE)


def test_prunes_all_linear_layers_on_schedule(torch):
    model = _model(torch)
    pruner = TorchPruner(model, **SCHEDULE)
    zeros = _train(torch, model, pruner, 80)
    # Nothing before begin_step; round(0.75 * 96) = 72 and 0.75 * 48 = 36 from end_step on.
    assert zeros[9] == {"0.weight": 0, "2.weight": 0}
    assert zeros[10] == {"0.weight": pruned_count(96, pruner.pruner.schedule.sparsity(10)),
                         "2.weight": 0}
    # Step 30: 0.75 - 0.75 * (1 - 20/40)**3 = 0.65625: 63 of 96, 31.5 -> 32 of 48.
    assert zeros[30] == zeros[39] == {"0.weight": 63, "2.weight": 32}
    # The optimizer's momentum keeps moving pruned weights; step() puts them back to zero.
    assert all(z == {"0.weight": 72, "2.weight": 36} for z in zeros[50:])
    assert [t for t, _ in pruner.history] == [10, 20, 30, 40, 50]
    assert pruner.sparsity == 0.75
    masks = pruner.masks
    assert set(masks) == {"0.weight", "2.weight"} and masks["0.weight"].dtype == torch.bool
    assert torch.equal(model[0].weight == 0, ~masks["0.weight"])
    # The module's own state_dict is untouched in its keys.
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_selected_layers_and_global_scope(torch):
    model = _model(torch)
    pruner = TorchPruner(model, **SCHEDULE, layers=["2"], scope="global")
    zeros = _train(torch, model, pruner, 60)
    assert zeros[-1] == {"0.weight": 0, "2.weight": 36}
    assert pruner.pruner.scope == "global"


def test_monotone_masks(torch):
    model = _model(torch)
    pruner = TorchPruner(model, **SCHEDULE)
    previous = None
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    x, y = torch.randn(64, 8), torch.randint(0, 4, (64,))
    for step in range(60):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        pruner.step(step)
        masks = pruner.masks
        if previous:
            for name in masks:
                assert not bool((masks[name] & ~previous[name]).any())
        previous = masks


def test_state_dict_round_trip(torch):
    model = _model(torch)
    pruner = TorchPruner(model, **SCHEDULE)
    _train(torch, model, pruner, 35)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "pruner": pruner.state_dict()}, buffer)
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)

    restored = _model(torch)
    restored.load_state_dict(checkpoint["model"])
    resumed = TorchPruner(restored, **SCHEDULE)
    resumed.load_state_dict(checkpoint["pruner"])
    assert resumed.history == pruner.history
    for name, mask in pruner.masks.items():
        assert torch.equal(resumed.masks[name], mask)
    assert torch.equal(restored[0].weight, model[0].weight)
    _train(torch, restored, resumed, 30, start=35)
    assert resumed.sparsity == 0.75


def test_state_dict_before_first_update(torch):
    model = _model(torch)
    pruner = TorchPruner(model, **SCHEDULE)
    state = pruner.state_dict()
    assert state == {"masks": {}, "history": []}
    other = TorchPruner(model, **SCHEDULE)
    other.load_state_dict(state)
    assert other.masks == {}
    other.apply()  # nothing to do


def test_load_state_dict_errors(torch):
    model = _model(torch)
    pruner = TorchPruner(model, **SCHEDULE)
    with pytest.raises(ValueError, match="The state has masks for"):
        pruner.load_state_dict({"masks": {"0.weight": torch.ones(12, 8, dtype=torch.bool)},
                                "history": []})
    with pytest.raises(ValueError, match=r"Mask of '0.weight' has shape \(8, 12\)"):
        pruner.load_state_dict({"masks": {"0.weight": torch.ones(8, 12, dtype=torch.bool),
                                          "2.weight": torch.ones(4, 12, dtype=torch.bool)},
                                "history": []})


def test_constructor_errors(torch):
    model = _model(torch)
    with pytest.raises(ValueError, match=r"'1' is not an nn.Linear layer .* \['0', '2'\]"):
        TorchPruner(model, **SCHEDULE, layers=["1"])
    with pytest.raises(ValueError, match=r"'fc' is not an nn.Linear layer"):
        TorchPruner(model, **SCHEDULE, layers=["fc"])
    with pytest.raises(ValueError, match="unique"):
        TorchPruner(model, **SCHEDULE, layers=["0", "0"])
    with pytest.raises(ValueError, match="layers is empty"):
        TorchPruner(model, **SCHEDULE, layers=[])
    with pytest.raises(ValueError, match="no nn.Linear layers"):
        TorchPruner(torch.nn.ReLU(), **SCHEDULE)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        TorchPruner(object(), **SCHEDULE)
    with pytest.raises(ValueError, match="not a multiple of frequency"):
        TorchPruner(model, final_sparsity=0.5, begin_step=0, end_step=15, frequency=10)


def test_bare_linear_and_nan(torch):
    layer = torch.nn.Linear(4, 4)
    pruner = TorchPruner(layer, final_sparsity=0.5, begin_step=0, end_step=10, frequency=10)
    pruner.step(10)
    assert list(pruner.masks) == ["weight"]
    assert int((layer.weight == 0).sum()) == 8
    with torch.no_grad():
        layer.weight[0, 0] = float("nan")
    pruner2 = TorchPruner(layer, final_sparsity=0.5, begin_step=0, end_step=10, frequency=10)
    with pytest.raises(ValueError, match=r"Layer 'weight' has 1 NaN"):
        pruner2.step(0)


def test_matches_numpy_pruner(torch):
    model = _model(torch)
    pruner = TorchPruner(model, **SCHEDULE)
    reference = Pruner(**SCHEDULE)
    weights = {name: p.detach().numpy().copy() for name, p in model.named_parameters()
               if name.endswith("weight")}
    pruner.step(50)
    masks = reference.step(weights, 50)
    for name, mask in masks.items():
        np.testing.assert_array_equal(pruner.masks[name].numpy(), mask)


def test_docs_torch_example_runs(torch):
    blocks = [b for b in re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.S)
              if "import torch" in b]
    assert blocks
    for block in blocks:
        exec(compile(block, str(DOCS), "exec"), {})
