"""Model files: round trips, layer order, manifests, dtypes and every refusal."""

from __future__ import annotations

import json
import re
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from sparsemac.sw.model_io import (MODEL_SUFFIXES, DenseLayer, DenseModel, ModelFileError,
                                   load_model, model_from_arrays, save_model)

SUFFIXES = (".npz", ".safetensors")
SEEDS = range(8)


def random_model(seed: int) -> DenseModel:
    """A chain of 1 to 5 layers of random shapes, dtypes, bias presence and ReLU flags."""
    rng = np.random.default_rng(seed)
    count = int(rng.integers(1, 6))
    sizes = rng.integers(1, 24, size=count + 1)
    dtypes = [np.float32, np.float64, np.float16, np.int8, np.int16, np.int32]
    weights, biases = [], []
    for i in range(count):
        dtype = dtypes[rng.integers(len(dtypes))]
        shape = (sizes[i + 1], sizes[i])
        if np.issubdtype(dtype, np.integer):
            weights.append(rng.integers(-100, 100, size=shape).astype(dtype))
            bias = rng.integers(-1000, 1000, size=shape[0]).astype(np.int32)
        else:
            weights.append(rng.standard_normal(shape).astype(dtype))
            bias = rng.standard_normal(shape[0])
        biases.append(bias if rng.random() < 0.6 else None)
    relu = [bool(flag) for flag in rng.random(count) < 0.5]
    names = [f"layer{i}_{rng.integers(1000)}" for i in range(count)]
    return model_from_arrays(weights, biases, names=names, relu=relu)


def forward(model: DenseModel, x: np.ndarray) -> np.ndarray:
    for layer in model.layers:
        x = layer.weight @ x + (0 if layer.bias is None else layer.bias)
        if layer.relu:
            x = np.maximum(x, 0)
    return x


def chain(*shapes: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) for shape in shapes]


# -- Round trips --------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("seed", SEEDS)
def test_round_trip(tmp_path: Path, suffix: str, seed: int) -> None:
    model = random_model(seed)
    path = tmp_path / f"model{suffix}"
    save_model(model, path)
    loaded = load_model(path)
    assert loaded == model, f"seed {seed}"
    assert loaded.names == model.names
    assert [layer.relu for layer in loaded.layers] == [layer.relu for layer in model.layers]


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_round_trip_keeps_unsorted_order_and_no_relu(tmp_path: Path, suffix: str) -> None:
    # Natural order would be a, b2, b10; the manifest must win.
    model = model_from_arrays(chain((5, 3), (4, 5), (2, 4)), names=["b10", "a", "b2"],
                              relu=False)
    path = tmp_path / f"model{suffix}"
    save_model(model, path)
    loaded = load_model(path)
    assert loaded.names == ("b10", "a", "b2")
    assert not any(layer.relu for layer in loaded.layers)
    assert loaded == model


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_dtype_rule(tmp_path: Path, suffix: str) -> None:
    weights = [np.ones((3, 2), np.float32), np.ones((2, 3), np.int8), np.ones((1, 2), np.float16)]
    biases = [np.zeros(3, np.float32), np.zeros(2, np.int32), None]
    model = model_from_arrays(weights, biases)
    assert [layer.weight.dtype for layer in model.layers] == [np.float64, np.int8, np.float64]
    assert model.layers[0].bias.dtype == np.float64
    assert model.layers[1].bias.dtype == np.int32
    path = tmp_path / f"model{suffix}"
    save_model(model, path)
    assert load_model(path) == model


def test_float32_file_loads_as_float64_exactly(tmp_path: Path) -> None:
    weight = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
    save_file({"fc.weight": weight}, tmp_path / "m.safetensors")
    loaded = load_model(tmp_path / "m.safetensors").layers[0].weight
    assert loaded.dtype == np.float64
    np.testing.assert_array_equal(loaded, weight.astype(np.float64))


def test_bfloat16_safetensors(tmp_path: Path) -> None:
    # NumPy has no bfloat16, so write the file by hand: bf16 is the top half of a float32.
    values = np.array([[1.5, -2.0], [0.0, 3.140625], [-0.0078125, 65536.0]], np.float32)
    raw = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    header = json.dumps({"fc.weight": {"dtype": "BF16", "shape": [3, 2],
                                       "data_offsets": [0, len(raw)]}}).encode()
    path = tmp_path / "m.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + raw)
    np.testing.assert_array_equal(load_model(path).layers[0].weight, values)


# -- Order and manifests ------------------------------------------------------------------------

@pytest.mark.parametrize("names", [["fc1", "fc2", "fc10"], ["layers.2", "layers.10", "layers.11"],
                                   ["0", "2", "10"], ["net.9.lin", "net.10.lin", "out"]])
def test_natural_order_without_manifest(tmp_path: Path, names: list[str]) -> None:
    weights = chain((7, 3), (5, 7), (2, 5))
    arrays = {f"{name}.weight": w for name, w in zip(names, weights)}
    np.savez(tmp_path / "m.npz", **dict(reversed(arrays.items())))
    model = load_model(tmp_path / "m.npz")
    assert model.names == tuple(names)
    assert [layer.relu for layer in model.layers] == [True, True, False]
    assert (model.input_size, model.output_size) == (3, 2)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_manifest_overrides_names(tmp_path: Path, suffix: str) -> None:
    # Sorted, "a" would come first and the chain would not hold.
    tensors = {"z.weight": np.ones((4, 3)), "a.weight": np.ones((2, 4)), "a.bias": np.ones(2)}
    path = tmp_path / f"m{suffix}"
    if suffix == ".npz":
        np.savez(path, **tensors, __layers__=np.array(["z", "a"]))
    else:
        save_file(tensors, path, metadata={"sparsemac.layers": "z, a", "format": "pt"})
    model = load_model(path)
    assert model.names == ("z", "a")
    assert [layer.relu for layer in model.layers] == [True, False]


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_relu_manifest_alone(tmp_path: Path, suffix: str) -> None:
    tensors = {"fc1.weight": np.ones((4, 3)), "fc2.weight": np.ones((2, 4))}
    path = tmp_path / f"m{suffix}"
    if suffix == ".npz":
        np.savez(path, **tensors, __relu__=np.array(["fc2"]))
    else:
        save_file(tensors, path, metadata={"sparsemac.relu": "fc2"})
    assert [layer.relu for layer in load_model(path).layers] == [False, True]


def test_npz_manifest_as_one_comma_separated_string(tmp_path: Path) -> None:
    np.savez(tmp_path / "m.npz", **{"b.weight": np.ones((4, 3)), "a.weight": np.ones((2, 4))},
             __layers__=np.array("b,a"), __relu__=np.array(""))
    model = load_model(tmp_path / "m.npz")
    assert model.names == ("b", "a")
    assert not any(layer.relu for layer in model.layers)


@pytest.mark.parametrize("manifest, message", [
    ({"__layers__": np.array(["fc1", "fc2", "fc3"])}, "names layer(s) the file does not hold: fc3"),
    ({"__layers__": np.array(["fc1"])}, "leaves out layer(s) the file holds: fc2"),
    ({"__layers__": np.array(["fc1", "fc2", "fc1"])}, "more than once: fc1"),
    ({"__layers__": np.array(["fc1", ""])}, "empty or non-string name"),
    ({"__layers__": np.array([1, 2])}, "must be a 1-D array of strings"),
    ({"__relu__": np.array(["fc9"])}, "'__relu__' names layer(s) the file does not hold: fc9"),
])
def test_npz_manifest_errors(tmp_path: Path, manifest: dict, message: str) -> None:
    path = tmp_path / "m.npz"
    np.savez(path, **{"fc1.weight": np.ones((4, 3)), "fc2.weight": np.ones((2, 4))}, **manifest)
    with pytest.raises(ModelFileError, match=f"^{path}: .*" + re.escape(message)):
        load_model(path)


@pytest.mark.parametrize("metadata, message", [
    ({"sparsemac.layers": "fc2"}, "leaves out layer(s) the file holds: fc1"),
    ({"sparsemac.layers": "fc1,,fc2"}, "empty or non-string name"),
    ({"sparsemac.relu": "fc1,fc7"}, "names layer(s) the file does not hold: fc7"),
    ({"sparsemac.layer": "fc1,fc2"}, "unknown sparsemac metadata key(s) sparsemac.layer"),
])
def test_safetensors_manifest_errors(tmp_path: Path, metadata: dict, message: str) -> None:
    path = tmp_path / "m.safetensors"
    save_file({"fc1.weight": np.ones((4, 3)), "fc2.weight": np.ones((2, 4))}, path,
              metadata=metadata)
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_chain_mismatch_without_manifest_suggests_one(tmp_path: Path) -> None:
    # Named so that natural order puts the 2x4 layer first.
    path = tmp_path / "m.npz"
    np.savez(path, **{"decoder.weight": np.ones((2, 4)), "encoder.weight": np.ones((4, 3))})
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    message = str(info.value)
    for part in ("'encoder' (weight 4x3) takes 3 inputs", "'decoder' (weight 2x4)",
                 "gives 2 outputs", "natural name order (decoder, encoder)", "manifest",
                 "'__layers__'"):
        assert part in message


def test_chain_mismatch_with_manifest(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    save_file({"a.weight": np.ones((4, 3)), "b.weight": np.ones((2, 5))}, path,
              metadata={"sparsemac.layers": "a,b"})
    with pytest.raises(ModelFileError, match="takes 5 inputs.*gives 4 outputs.*in the order "
                                             "manifest 'sparsemac.layers' gives"):
        load_model(path)


# -- Tensor content -----------------------------------------------------------------------------

@pytest.mark.parametrize("tensors, message", [
    ({"fc.weight": np.array([[1.0, np.nan], [np.nan, 2.0], [np.inf, 0.0]])},
     "Layer 'fc': weight has 3 non-finite value(s) (NaN or infinity) out of 6"),
    ({"fc.weight": np.ones((2, 2)), "fc.bias": np.array([0.0, -np.inf])},
     "Layer 'fc': bias has 1 non-finite value(s)"),
    ({"fc.weight": np.ones(3)}, "weight must be a non-empty 2-D (out, in) array, not shape (3,)"),
    ({"fc.weight": np.ones((2, 3, 4))}, "not shape (2, 3, 4)"),
    ({"fc.weight": np.ones((0, 3))}, "not shape (0, 3)"),
    ({"fc.weight": np.ones((2, 3)), "fc.bias": np.ones(3)},
     "bias must have shape (2,) to match weight (2, 3), not (3,)"),
    ({"fc.weight": np.ones((2, 3)), "fc.bias": np.ones((2, 1))}, "not (2, 1)"),
    ({"fc.weight": np.ones((2, 3), bool)},
     "must hold integers or floating point numbers, not bool"),
    ({"fc.bias": np.ones(3)}, "layer 'fc' has bias but no 'fc.weight'"),
    ({"fc.weight": np.ones((2, 2)), "bn.running_mean": np.ones(2), "bn.num_batches_tracked":
      np.array(3), "weight": np.ones(2)},
     "not fully connected layer parameters: bn.num_batches_tracked, bn.running_mean, weight"),
    ({"__layers__": np.array(["fc"])}, "holds no layers"),
    ({"fc.weight_orig": np.ones((2, 2))}, "without its pruning partner"),
    ({"fc.weight": np.ones((2, 2)), "fc.weight_mask": np.ones((2, 2))}, "both 'fc.weight' and"),
    ({"fc.weight_orig": np.ones((2, 2)), "fc.weight_mask": np.ones((2, 3))},
     "pruning mask shape (2, 3) differs"),
])
@pytest.mark.parametrize("suffix", SUFFIXES)
def test_bad_tensors(tmp_path: Path, suffix: str, tensors: dict, message: str) -> None:
    path = tmp_path / f"m{suffix}"
    if suffix == ".npz":
        np.savez(path, **tensors)
    else:
        tensors = {key: value for key, value in tensors.items() if key != "__layers__"}
        save_file(tensors, path, metadata={"sparsemac.layers": "fc"})
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_pruning_pair_is_folded(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    orig = rng.integers(-5, 5, size=(3, 4)).astype(np.int8)
    mask = (rng.random((3, 4)) < 0.5).astype(np.float32)
    np.savez(tmp_path / "m.npz", **{"fc.weight_orig": orig, "fc.weight_mask": mask,
                                    "fc.bias": np.ones(3)})
    layer = load_model(tmp_path / "m.npz").layers[0]
    assert layer.weight.dtype == np.int8
    np.testing.assert_array_equal(layer.weight, orig * (mask != 0))


# -- Unreadable files ---------------------------------------------------------------------------

def saved_bytes(tmp_path: Path, suffix: str) -> bytes:
    path = tmp_path / f"good{suffix}"
    save_model(model_from_arrays(chain((6, 5), (3, 6)), [np.ones(6), None]), path)
    return path.read_bytes()


def corrupt(data: bytes, suffix: str, how: str) -> bytes:
    if how == "truncated":
        return data[:len(data) * 2 // 3]
    if how == "short":
        return data[:5]
    if how == "empty":
        return b""
    if how == "text":
        return b"this is not a model file\n"
    # "header": break the part that describes the tensors.
    if suffix == ".safetensors":
        return data[:8] + b"{garbage" + data[16:]
    # npz: flip bytes inside the first member's data, so the zip CRC check fails.
    return data[:60] + bytes(b ^ 0xFF for b in data[60:90]) + data[90:]


@pytest.mark.parametrize("how", ["truncated", "short", "empty", "text", "header"])
@pytest.mark.parametrize("suffix", SUFFIXES)
def test_corrupt_file(tmp_path: Path, suffix: str, how: str) -> None:
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(corrupt(saved_bytes(tmp_path, suffix), suffix, how))
    with pytest.raises(ModelFileError, match=f"^{path}: not a readable "):
        load_model(path)


def test_npz_with_pickled_object_array_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.npz"
    np.savez(path, **{"fc.weight": np.array([[1, "x"]], dtype=object)})
    with pytest.raises(ModelFileError, match="not a readable .npz archive .ValueError: Object arrays"):
        load_model(path)


def test_npy_data_under_npz_suffix(tmp_path: Path) -> None:
    path = tmp_path / "m.npz"
    with open(path, "wb") as file:
        np.save(file, np.ones((2, 2)))
    with pytest.raises(ModelFileError, match="not a readable .npz archive .it holds a single"):
        load_model(path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.safetensors"
    with pytest.raises(FileNotFoundError, match="absent.safetensors"):
        load_model(path)


@pytest.mark.parametrize("name", ["model.onnx", "model", "model.npy"])
def test_unknown_suffix(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(ModelFileError, match="unknown model file suffix.*" + ", ".join(
            MODEL_SUFFIXES).replace(".", r"\.")):
        load_model(tmp_path / name)


def test_model_file_error_is_a_value_error() -> None:
    assert issubclass(ModelFileError, ValueError)


# -- Saving -------------------------------------------------------------------------------------

def test_save_refuses_other_suffixes(tmp_path: Path) -> None:
    model = model_from_arrays(chain((2, 2)))
    for name in ("m.pt", "m.npy", "m"):
        with pytest.raises(ValueError, match="suffix must be one of .npz, .safetensors"):
            save_model(model, tmp_path / name)
    with pytest.raises(TypeError, match="Expected a DenseModel"):
        save_model(model.layers, tmp_path / "m.npz")  # type: ignore[arg-type]


def test_upper_case_suffix(tmp_path: Path) -> None:
    model = model_from_arrays(chain((2, 3)))
    save_model(model, tmp_path / "M.NPZ")
    assert load_model(tmp_path / "M.NPZ") == model


# -- The dataclasses and model_from_arrays -------------------------------------------------------

def test_model_properties() -> None:
    model = model_from_arrays(chain((5, 3), (2, 5)), [None, np.zeros(2)])
    assert (model.input_size, model.output_size, len(model)) == (3, 2, 2)
    assert model.names == ("fc0", "fc1")
    assert [layer.relu for layer in model.layers] == [True, False]
    assert model.layers[0].shape == (5, 3)
    assert (model.layers[0].in_size, model.layers[0].out_size) == (3, 5)
    assert "float64[5, 3]" in repr(model.layers[0])
    x = np.arange(3.0)
    w0, w1 = (layer.weight for layer in model.layers)
    np.testing.assert_array_equal(forward(model, x), w1 @ np.maximum(w0 @ x, 0))


def test_arrays_are_copied_and_read_only() -> None:
    weight = np.ones((2, 2), np.int16)
    layer = DenseLayer("fc", weight, None, relu=False)
    weight[0, 0] = 7
    assert layer.weight[0, 0] == 1
    with pytest.raises(ValueError, match="read-only"):
        layer.weight[0, 0] = 3
    with pytest.raises(AttributeError):
        layer.name = "other"  # type: ignore[misc]


def test_layer_equality() -> None:
    a = DenseLayer("fc", np.ones((2, 2)), None, relu=True)
    assert a == DenseLayer("fc", np.ones((2, 2)), None, relu=True)
    assert a != DenseLayer("fc", np.ones((2, 2)), None, relu=False)
    assert a != DenseLayer("fc", np.ones((2, 2)), np.zeros(2), relu=True)
    assert a != DenseLayer("fc", np.ones((2, 2), np.int64), None, relu=True)
    assert a != DenseLayer("fc", np.ones((2, 2)) * 2, None, relu=True)


@pytest.mark.parametrize("name", ["", "a,b", "a b", " fc", 3])
def test_bad_layer_names(name: object) -> None:
    with pytest.raises(ValueError, match="Layer name must be a non-empty string"):
        DenseLayer(name, np.ones((2, 2)), None, relu=False)  # type: ignore[arg-type]


def test_relu_must_be_bool() -> None:
    with pytest.raises(TypeError, match="relu must be a bool"):
        DenseLayer("fc", np.ones((2, 2)), None, relu=1)  # type: ignore[arg-type]


def test_model_validation() -> None:
    with pytest.raises(ValueError, match="at least one layer"):
        DenseModel(())
    layer = DenseLayer("fc", np.ones((2, 2)), None, relu=False)
    with pytest.raises(ValueError, match="unique; repeated: fc"):
        DenseModel((layer, layer))
    with pytest.raises(TypeError, match="must be DenseLayer"):
        DenseModel((np.ones((2, 2)),))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"Layer 'fc1' \(weight 2x3\) takes 3 inputs, but the "
                                         r"layer before it, 'fc0' \(weight 4x2\), gives 4"):
        model_from_arrays(chain((4, 2), (2, 3)))


def test_model_from_arrays_arguments() -> None:
    weights = chain((4, 3), (2, 4))
    assert all(layer.relu for layer in model_from_arrays(weights, relu=True).layers)
    assert not any(layer.relu for layer in model_from_arrays(weights, relu=False).layers)
    assert all(layer.bias is None for layer in model_from_arrays(weights).layers)
    with pytest.raises(ValueError, match="Expected 2 biases, one per weight, not 1"):
        model_from_arrays(weights, [None])
    with pytest.raises(ValueError, match="Expected 2 names"):
        model_from_arrays(weights, names=["a"])
    with pytest.raises(ValueError, match="Expected 2 relu flags"):
        model_from_arrays(weights, relu=[True])
    with pytest.raises(ValueError, match="at least one layer"):
        model_from_arrays([])


# -- PyTorch ------------------------------------------------------------------------------------

def test_torch_missing_gives_install_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "m.pt"
    path.write_bytes(b"not read")
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    with pytest.raises(ImportError, match=r"pip install sparsemac\[torch\]"):
        load_model(path)


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("suffix", [".pt", ".pth"])
def test_torch_state_dict(tmp_path: Path, torch, suffix: str) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(*[module for i in range(11) for module in
                                (torch.nn.Linear(3 + i, 4 + i), torch.nn.ReLU())][:-1])
    path = tmp_path / f"m{suffix}"
    torch.save(net.state_dict(), path)
    model = load_model(path)
    # Sequential names its layers 0, 2, ..., 20: natural order, not "0, 10, 12, ..., 2".
    assert model.names == tuple(str(i) for i in range(0, 21, 2))
    x = np.random.default_rng(0).standard_normal(3)
    with torch.no_grad():
        expected = net(torch.from_numpy(x).float()).double().numpy()
    np.testing.assert_allclose(forward(model, x), expected, rtol=1e-5, atol=1e-5)


def test_torch_pruned_state_dict(tmp_path: Path, torch) -> None:
    prune = pytest.importorskip("torch.nn.utils.prune")
    net = torch.nn.Sequential(torch.nn.Linear(8, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2))
    prune.l1_unstructured(net[0], "weight", amount=0.5)
    assert "0.weight_mask" in net.state_dict()
    torch.save(net.state_dict(), tmp_path / "m.pt")
    layer = load_model(tmp_path / "m.pt").layers[0]
    np.testing.assert_array_equal(layer.weight, net[0].weight.detach().double().numpy())
    assert np.count_nonzero(layer.weight) == 24


def test_torch_dtypes_and_manifest(tmp_path: Path, torch) -> None:
    state = {"b.weight": torch.tensor([[1.5, -2.25]], dtype=torch.bfloat16),
             "a.weight": torch.ones((2, 3), dtype=torch.int8),
             "a.bias": torch.tensor([1, -1], dtype=torch.int32),
             "__layers__": ["a", "b"], "__relu__": "b"}
    torch.save(state, tmp_path / "m.pt")
    model = load_model(tmp_path / "m.pt")
    assert model.names == ("a", "b")
    assert [layer.relu for layer in model.layers] == [False, True]
    assert model.layers[0].weight.dtype == np.int8
    assert model.layers[0].bias.dtype == np.int32
    np.testing.assert_array_equal(model.layers[1].weight, [[1.5, -2.25]])


def test_torch_refusals(tmp_path: Path, torch) -> None:
    net = torch.nn.Sequential(torch.nn.Linear(3, 2))
    cases = {
        "whole.pt": (net, "save model.state_dict(), not the model"),
        "checkpoint.pt": ({"state_dict": net.state_dict(), "epoch": 3},
                          "entries that are not tensors: state_dict, epoch"),
        "list.pt": ([torch.ones(2, 2)], "holds a list, not a state_dict"),
        "nan.pt": ({"fc.weight": torch.tensor([[float("nan")]])}, "1 non-finite value(s)"),
        "bn.pt": (torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2)).state_dict(),
                  "1.num_batches_tracked, 1.running_mean, 1.running_var"),
    }
    for name, (obj, message) in cases.items():
        torch.save(obj, tmp_path / name)
        with pytest.raises(ModelFileError) as info:
            load_model(tmp_path / name)
        assert str(info.value).startswith(f"{tmp_path / name}: "), name
        assert message in str(info.value), name
    torch.save(net.state_dict(), tmp_path / "good.pt")
    data = (tmp_path / "good.pt").read_bytes()
    for name, broken in {"truncated.pt": data[:len(data) // 2], "text.pt": b"hello",
                         "empty.pt": b""}.items():
        (tmp_path / name).write_bytes(broken)
        with pytest.raises(ModelFileError, match="not a readable PyTorch state_dict file"):
            load_model(tmp_path / name)


# -- The documentation's examples ---------------------------------------------------------------

DOC = Path(__file__).resolve().parents[2] / "docs" / "model-files.md"
DOC_EXAMPLES = re.findall(r"^```python\n(.*?)^```", DOC.read_text(), re.S | re.M)


@pytest.mark.parametrize("source", DOC_EXAMPLES, ids=[f"example{i}" for i in
                                                      range(len(DOC_EXAMPLES))])
def test_doc_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str) -> None:
    if "import torch" in source:
        pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    exec(compile(source, str(DOC), "exec"), {})


def test_doc_has_examples() -> None:
    assert len(DOC_EXAMPLES) == 2
