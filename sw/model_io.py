"""Dense models and the weight files they come from, per docs/model-files.md.

A model is an ordered chain of fully connected layers ``y = W @ x + b``, ``W`` of shape
``(out, in)`` as in PyTorch's ``nn.Linear``, each optionally followed by a ReLU. This module
reads such chains from ``.npz``, ``.safetensors`` and PyTorch ``.pt``/``.pth`` state dicts, and
writes ``.npz`` and ``.safetensors`` with a manifest so a round trip keeps the layer order and
the ReLU flags exactly.

Dtype rule: integer weights and biases (already quantized) keep their dtype; floating point
ones become float64, whatever their width in the file (float16, bfloat16, float32...).
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DenseLayer",
    "DenseModel",
    "ModelFileError",
    "MODEL_SUFFIXES",
    "load_model",
    "save_model",
    "model_from_arrays",
]

#: File suffixes `load_model` reads, lower case.
MODEL_SUFFIXES = (".npz", ".safetensors", ".pt", ".pth")
_SAVE_SUFFIXES = (".npz", ".safetensors")

# Manifest keys. npz: string arrays; safetensors: comma separated metadata values;
# .pt: list of str (or one comma separated str) entries of the state dict.
_NPZ_LAYERS, _NPZ_RELU = "__layers__", "__relu__"
_ST_LAYERS, _ST_RELU = "sparsemac.layers", "sparsemac.relu"
_ST_PREFIX = "sparsemac."

# Per-layer tensor names: `<name>.<param>`. The `_orig`/`_mask` pairs are what
# torch.nn.utils.prune leaves in a state dict until `prune.remove` is called.
_PARAMS = ("weight", "bias", "weight_orig", "weight_mask", "bias_orig", "bias_mask")

_NAME_FORBIDDEN = re.compile(r"[,\s]")


class ModelFileError(ValueError):
    """A model file is unreadable, corrupt, or does not hold a dense layer chain.

    The message starts with the file's path.
    """


def _as_param(value: Any, what: str) -> np.ndarray:
    """Apply the dtype rule: integers keep their dtype, floats become float64."""
    array = np.asarray(value)
    if array.dtype.kind in "iu":
        array = array.copy()
    elif array.dtype.kind == "f":
        array = array.astype(np.float64)
    else:
        raise ValueError(f"{what} must hold integers or floating point numbers, "
                         f"not {array.dtype}")
    array.setflags(write=False)
    return array


def _count_non_finite(array: np.ndarray) -> int:
    if array.dtype.kind != "f":
        return 0
    return int(array.size - np.count_nonzero(np.isfinite(array)))


@dataclass(frozen=True, eq=False, repr=False)
class DenseLayer:
    """One fully connected layer ``y = weight @ x + bias``, then ReLU if ``relu``.

    The arrays are copied, made read-only, and follow the dtype rule: integer arrays keep
    their dtype, floating point arrays become float64. Two layers are equal when names, ReLU
    flags, dtypes and values agree.

    Parameters
    ----------
    name : str
        Non-empty, without commas or whitespace (it is written into comma separated
        manifests).
    weight : array_like, shape (out, in)
        Integer or floating point, both dimensions non-zero, all values finite.
    bias : array_like, shape (out,), or None
        Integer or floating point, all values finite.
    relu : bool
        Whether a ReLU follows this layer.

    Raises
    ------
    ValueError
        If the name, a shape, a dtype or a value is not as above.
    TypeError
        If ``relu`` is not a bool.
    """

    name: str
    weight: np.ndarray
    bias: np.ndarray | None
    relu: bool

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or _NAME_FORBIDDEN.search(self.name):
            raise ValueError(f"Layer name must be a non-empty string without commas or "
                             f"whitespace, not {self.name!r}")
        if not isinstance(self.relu, (bool, np.bool_)):
            raise TypeError(f"Layer {self.name!r}: relu must be a bool, not {self.relu!r}")
        object.__setattr__(self, "relu", bool(self.relu))

        weight = _as_param(self.weight, f"Layer {self.name!r} weight")
        if weight.ndim != 2 or weight.size == 0:
            raise ValueError(f"Layer {self.name!r}: weight must be a non-empty 2-D (out, in) "
                             f"array, not shape {weight.shape}")
        object.__setattr__(self, "weight", weight)
        if bad := _count_non_finite(weight):
            raise ValueError(f"Layer {self.name!r}: weight has {bad} non-finite value(s) "
                             f"(NaN or infinity) out of {weight.size}")

        if self.bias is not None:
            bias = _as_param(self.bias, f"Layer {self.name!r} bias")
            if bias.shape != (weight.shape[0],):
                raise ValueError(f"Layer {self.name!r}: bias must have shape "
                                 f"({weight.shape[0]},) to match weight {weight.shape}, "
                                 f"not {bias.shape}")
            object.__setattr__(self, "bias", bias)
            if bad := _count_non_finite(bias):
                raise ValueError(f"Layer {self.name!r}: bias has {bad} non-finite value(s) "
                                 f"(NaN or infinity) out of {bias.size}")

    @property
    def shape(self) -> tuple[int, int]:
        """``(out, in)``, the weight's shape."""
        return self.weight.shape

    @property
    def in_size(self) -> int:
        """Number of inputs."""
        return self.weight.shape[1]

    @property
    def out_size(self) -> int:
        """Number of outputs."""
        return self.weight.shape[0]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DenseLayer):
            return NotImplemented
        return (self.name == other.name and self.relu == other.relu
                and _same_array(self.weight, other.weight) and _same_array(self.bias, other.bias))

    __hash__ = None  # type: ignore[assignment]  # holds arrays

    def __repr__(self) -> str:
        def describe(array: np.ndarray | None) -> str:
            return "None" if array is None else f"{array.dtype}{list(array.shape)}"
        return (f"DenseLayer(name={self.name!r}, weight={describe(self.weight)}, "
                f"bias={describe(self.bias)}, relu={self.relu})")


def _same_array(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.dtype == b.dtype and a.shape == b.shape and bool(np.array_equal(a, b))


def _chain_error(layers: Sequence[DenseLayer]) -> str | None:
    for before, after in zip(layers, layers[1:]):
        if after.in_size != before.out_size:
            return (f"Layer {after.name!r} (weight {after.shape[0]}x{after.shape[1]}) takes "
                    f"{after.in_size} inputs, but the layer before it, {before.name!r} "
                    f"(weight {before.shape[0]}x{before.shape[1]}), gives {before.out_size} "
                    f"outputs")
    return None


@dataclass(frozen=True)
class DenseModel:
    """An ordered chain of `DenseLayer`, input first.

    Parameters
    ----------
    layers : sequence of DenseLayer
        At least one, with unique names, each layer's ``in_size`` equal to the previous
        layer's ``out_size``. Stored as a tuple.

    Raises
    ------
    ValueError
        If there are no layers, a name repeats, or the shapes do not chain.
    TypeError
        If an item of ``layers`` is not a `DenseLayer`.
    """

    layers: tuple[DenseLayer, ...]

    def __post_init__(self) -> None:
        layers = tuple(self.layers)
        object.__setattr__(self, "layers", layers)
        if not layers:
            raise ValueError("A model needs at least one layer")
        for layer in layers:
            if not isinstance(layer, DenseLayer):
                raise TypeError(f"Model layers must be DenseLayer, not {type(layer).__name__}")
        names = [layer.name for layer in layers]
        if repeated := sorted({name for name in names if names.count(name) > 1}):
            raise ValueError(f"Layer names must be unique; repeated: {', '.join(repeated)}")
        if message := _chain_error(layers):
            raise ValueError(message)

    @property
    def input_size(self) -> int:
        """Number of inputs of the first layer."""
        return self.layers[0].in_size

    @property
    def output_size(self) -> int:
        """Number of outputs of the last layer."""
        return self.layers[-1].out_size

    @property
    def names(self) -> tuple[str, ...]:
        """Layer names, input first."""
        return tuple(layer.name for layer in self.layers)

    def __len__(self) -> int:
        return len(self.layers)


def _default_relu(count: int) -> list[bool]:
    return [True] * (count - 1) + [False]


def model_from_arrays(weights: Sequence[np.ndarray],
                      biases: Sequence[np.ndarray | None] | None = None,
                      names: Sequence[str] | None = None,
                      relu: bool | Sequence[bool] | None = None) -> DenseModel:
    """Build a `DenseModel` from per-layer arrays, input layer first.

    Parameters
    ----------
    weights : sequence of (out, in) arrays
    biases : sequence of (out,) arrays or None, optional
        One entry per layer; None (the default) means no layer has a bias.
    names : sequence of str, optional
        Defaults to ``fc0``, ``fc1``, ...
    relu : bool or sequence of bool, optional
        None (the default) puts a ReLU after every layer but the last; a bool applies to
        every layer; a sequence gives each layer's flag.

    Raises
    ------
    ValueError
        If the sequences' lengths differ, or a layer or the chain is invalid (see
        `DenseLayer` and `DenseModel`).
    """
    count = len(weights)
    if count == 0:
        raise ValueError("A model needs at least one layer; no weights were given")
    if biases is None:
        biases = [None] * count
    if names is None:
        names = [f"fc{i}" for i in range(count)]
    if relu is None:
        relu = _default_relu(count)
    elif isinstance(relu, (bool, np.bool_)):
        relu = [bool(relu)] * count
    for what, seq in (("biases", biases), ("names", names), ("relu flags", relu)):
        if len(seq) != count:
            raise ValueError(f"Expected {count} {what}, one per weight, not {len(seq)}")
    return DenseModel(tuple(DenseLayer(n, w, b, r)
                            for n, w, b, r in zip(names, weights, biases, relu)))


# -- Loading ------------------------------------------------------------------------------------

def _natural_key(name: str) -> tuple[list[str | int], str]:
    """Sort key that compares digit runs as numbers: ``fc2 < fc10``, ``layers.2 < layers.10``."""
    parts: list[str | int] = re.split(r"(\d+)", name)
    parts[1::2] = [int(digits) for digits in parts[1::2]]
    return parts, name


def _parse_name_list(value: Any, key: str) -> list[str]:
    """A manifest value: a comma separated str, or a 1-D sequence/array of str."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "US" or value.ndim > 1:
            raise ValueError(f"manifest {key!r} must be a 1-D array of strings, not "
                             f"{value.dtype} of shape {value.shape}")
        value = value.item() if value.ndim == 0 else value.tolist()
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        value = value.split(",") if value.strip() else []
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"manifest {key!r} must list layer names, not {type(value).__name__}")
    names = [item.decode() if isinstance(item, bytes) else item for item in value]
    if not all(isinstance(item, str) and item.strip() for item in names):
        raise ValueError(f"manifest {key!r} holds an empty or non-string name: {value!r}")
    names = [item.strip() for item in names]
    if repeated := sorted({name for name in names if names.count(name) > 1}):
        raise ValueError(f"manifest {key!r} names a layer more than once: {', '.join(repeated)}")
    return names


def _group_tensors(tensors: Mapping[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    groups: dict[str, dict[str, np.ndarray]] = {}
    unknown = []
    for key, value in tensors.items():
        name, _, param = key.rpartition(".")
        if name and param in _PARAMS:
            groups.setdefault(name, {})[param] = value
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(
            f"the file holds tensors that are not fully connected layer parameters: "
            f"{', '.join(sorted(unknown, key=_natural_key))}. Expected only '<name>.weight' "
            f"(out, in) and optional '<name>.bias' (out,), as in a PyTorch state_dict of "
            f"nn.Linear layers; other tensors (normalisation statistics, embeddings...) would "
            f"change what the network computes, so they are refused rather than dropped")
    if not groups:
        raise ValueError("the file holds no layers: no '<name>.weight' tensors")
    return groups


def _effective(name: str, params: Mapping[str, np.ndarray], kind: str) -> np.ndarray | None:
    """The `kind` ("weight" or "bias") of one layer, folding in a torch pruning mask."""
    plain, orig, mask = (params.get(kind), params.get(f"{kind}_orig"), params.get(f"{kind}_mask"))
    if plain is not None:
        if orig is not None or mask is not None:
            raise ValueError(f"layer {name!r} has both '{name}.{kind}' and a pruning pair "
                             f"'{kind}_orig'/'{kind}_mask'; expected one or the other")
        return plain
    if (orig is None) != (mask is None):
        present = f"{kind}_orig" if orig is not None else f"{kind}_mask"
        raise ValueError(f"layer {name!r} has '{name}.{present}' without its pruning partner; "
                         f"expected both '{name}.{kind}_orig' and '{name}.{kind}_mask'")
    if orig is None:
        return None
    if np.shape(orig) != np.shape(mask):
        raise ValueError(f"layer {name!r}: pruning mask shape {np.shape(mask)} differs from "
                         f"'{kind}_orig' shape {np.shape(orig)}")
    product = np.asarray(orig) * np.asarray(mask)
    # A float mask must not promote integer weights: keep the original's integer dtype.
    return product.astype(np.asarray(orig).dtype, copy=False)


def _build_model(tensors: Mapping[str, np.ndarray], order: list[str] | None,
                 relu_names: list[str] | None, keys: tuple[str, str]) -> DenseModel:
    """The shared part of every loader. Raises ValueError with a message to prefix a path to.

    ``keys`` names the file format's layer order and ReLU manifest entries, for messages.
    """
    order_key, relu_key = keys
    groups = _group_tensors(tensors)
    layer_params = {}
    for name, params in groups.items():
        weight = _effective(name, params, "weight")
        if weight is None:
            raise ValueError(f"layer {name!r} has {', '.join(sorted(params))} but no "
                             f"'{name}.weight'")
        layer_params[name] = (weight, _effective(name, params, "bias"))

    manifest_given = order is not None
    if order is not None:
        if missing := [name for name in order if name not in layer_params]:
            raise ValueError(f"manifest {order_key!r} names layer(s) the file does not hold: "
                             f"{', '.join(missing)}")
        if extra := sorted(set(layer_params) - set(order), key=_natural_key):
            raise ValueError(f"manifest {order_key!r} leaves out layer(s) the file holds: "
                             f"{', '.join(extra)}")
    else:
        order = sorted(layer_params, key=_natural_key)

    if relu_names is None:
        relu = _default_relu(len(order))
    else:
        if unknown := [name for name in relu_names if name not in layer_params]:
            raise ValueError(f"manifest {relu_key!r} names layer(s) the file does not hold: "
                             f"{', '.join(unknown)}")
        relu = [name in relu_names for name in order]

    layers = []
    for name, flag in zip(order, relu):
        weight, bias = layer_params[name]
        layers.append(DenseLayer(name, weight, bias, flag))
    if message := _chain_error(layers):
        if manifest_given:
            raise ValueError(f"{message}, in the order manifest {order_key!r} gives")
        raise ValueError(
            f"{message}, in natural name order ({', '.join(order)}). If that is not the "
            f"network's order, name it in a manifest ({order_key!r}, see "
            f"docs/model-files.md) or save the model with sparsemac's save_model")
    return DenseModel(tuple(layers))


_Tensors = dict[str, np.ndarray]
# The raw manifest entries (layer order, ReLU layers) as stored, None where absent.
_Manifest = tuple[Any, Any]


def _read_npz(path: Path) -> tuple[_Tensors, _Manifest]:
    # Opened here, outside the try, so that permission errors stay OSErrors.
    with open(path, "rb") as file:
        # np.load would take anything that is neither zip nor .npy for a pickle.
        magic = file.read(6)
        file.seek(0)
        if magic == b"\x93NUMPY":
            raise ModelFileError(f"{path}: not a readable .npz archive (it holds a single "
                                 f"array, .npy data, rather than an archive of named tensors)")
        if not magic.startswith(b"PK"):
            raise ModelFileError(f"{path}: not a readable .npz archive (no zip signature at "
                                 f"the start: {magic!r})")
        try:
            with np.load(file, allow_pickle=False) as archive:
                arrays = {key: archive[key] for key in archive.files}
        except (ValueError, EOFError, OSError, zipfile.BadZipFile, zlib.error) as error:
            raise ModelFileError(f"{path}: not a readable .npz archive "
                                 f"({type(error).__name__}: {error})") from error
    return arrays, (arrays.pop(_NPZ_LAYERS, None), arrays.pop(_NPZ_RELU, None))


def _read_bf16(path: Path, key: str) -> np.ndarray:
    """A BF16 safetensors tensor as float32 (NumPy has no bfloat16; the conversion is exact)."""
    with open(path, "rb") as file:
        (header_size,) = struct.unpack("<Q", file.read(8))
        entry = json.loads(file.read(header_size))[key]
        start, end = entry["data_offsets"]
        file.seek(8 + header_size + start)
        raw = np.frombuffer(file.read(end - start), dtype="<u2")
    return (raw.astype(np.uint32) << 16).view(np.float32).reshape(entry["shape"])


def _read_safetensors(path: Path) -> tuple[_Tensors, _Manifest]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, framework="numpy") as file:
            metadata = file.metadata() or {}
            tensors = {}
            for key in file.keys():
                if file.get_slice(key).get_dtype() == "BF16":
                    tensors[key] = _read_bf16(path, key)
                else:
                    tensors[key] = file.get_tensor(key)
    except (SafetensorError, TypeError, ValueError, KeyError, struct.error) as error:
        raise ModelFileError(f"{path}: not a readable .safetensors file "
                             f"({type(error).__name__}: {error})") from error
    if unknown := sorted(key for key in metadata
                         if key.startswith(_ST_PREFIX) and key not in (_ST_LAYERS, _ST_RELU)):
        raise ModelFileError(f"{path}: unknown sparsemac metadata key(s) {', '.join(unknown)}; "
                             f"expected {_ST_LAYERS!r} and {_ST_RELU!r}")
    return tensors, (metadata.get(_ST_LAYERS), metadata.get(_ST_RELU))


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as error:
        raise ImportError("Reading PyTorch .pt/.pth files needs PyTorch: "
                          "pip install sparsemac[torch]") from error
    return torch


def _read_torch(path: Path) -> tuple[_Tensors, _Manifest]:
    torch = _import_torch()
    with open(path, "rb") as file:
        try:
            loaded = torch.load(file, map_location="cpu", weights_only=True)
        # torch.load fails in many ways on a bad file (RuntimeError from its zip reader,
        # UnpicklingError, KeyError or EOFError from the legacy format...), none documented.
        except Exception as error:  # noqa: BLE001
            if isinstance(error, pickle.UnpicklingError):
                reason = ("it holds Python objects other than tensors, which weights_only "
                          "loading refuses; save model.state_dict(), not the model")
            else:
                first_line = (str(error).splitlines() or [""])[0]
                reason = f"{type(error).__name__}: {first_line}"
            raise ModelFileError(f"{path}: not a readable PyTorch state_dict file ({reason})"
                                 ) from error
    if not isinstance(loaded, Mapping):
        raise ModelFileError(f"{path}: holds a {type(loaded).__name__}, not a state_dict "
                             f"(a mapping of names to tensors)")
    entries = dict(loaded)
    manifest = (entries.pop(_NPZ_LAYERS, None), entries.pop(_NPZ_RELU, None))
    if others := [key for key, value in entries.items() if not isinstance(value, torch.Tensor)]:
        raise ModelFileError(
            f"{path}: entries that are not tensors: {', '.join(map(str, others))}. Expected a "
            f"state_dict; from a training checkpoint, save checkpoint['state_dict'] alone")
    tensors = {}
    for key, tensor in entries.items():
        tensor = tensor.detach().cpu()
        if tensor.is_quantized:
            raise ModelFileError(f"{path}: tensor {key!r} is a quantized {tensor.dtype} tensor; "
                                 f"expected plain integer or floating point tensors")
        if tensor.layout != torch.strided:
            tensor = tensor.to_dense()
        if tensor.is_floating_point() and tensor.dtype not in (torch.float16, torch.float32,
                                                                torch.float64):
            tensor = tensor.to(torch.float64)   # bfloat16, float8...: NumPy has no such dtype
        tensors[key] = tensor.numpy()
    return tensors, manifest


_READERS: dict[str, tuple[Callable[[Path], tuple[_Tensors, _Manifest]], tuple[str, str]]] = {
    ".npz": (_read_npz, (_NPZ_LAYERS, _NPZ_RELU)),
    ".safetensors": (_read_safetensors, (_ST_LAYERS, _ST_RELU)),
    ".pt": (_read_torch, (_NPZ_LAYERS, _NPZ_RELU)),
    ".pth": (_read_torch, (_NPZ_LAYERS, _NPZ_RELU)),
}


def load_model(path: str | os.PathLike[str]) -> DenseModel:
    """Read a dense layer chain from a weight file.

    The format follows the suffix: ``.npz`` (NumPy archive), ``.safetensors``, or
    ``.pt``/``.pth`` (a PyTorch state_dict, read with ``torch.load(weights_only=True)``;
    needs ``pip install sparsemac[torch]``). Each layer is a ``<name>.weight`` tensor of shape
    (out, in) with an optional ``<name>.bias`` of shape (out,); a PyTorch pruning pair
    ``<name>.weight_orig``/``<name>.weight_mask`` counts as their product. The layer order
    and ReLU flags come from the file's manifest if it has one, else the order is the
    natural sort of the names (``fc2`` before ``fc10``) with a ReLU after every layer but the
    last. See docs/model-files.md.

    Integer tensors keep their dtype; floating point tensors become float64.

    Raises
    ------
    FileNotFoundError, IsADirectoryError
        If there is no file at ``path``.
    ModelFileError
        If the suffix is unknown, the file is corrupt or truncated, holds tensors other than
        layer parameters, a manifest is inconsistent, a tensor has the wrong shape or a
        non-finite value, or the shapes do not chain. The message starts with the path.
    ImportError
        For a ``.pt``/``.pth`` file when PyTorch is not installed.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _READERS:
        raise ModelFileError(f"{path}: unknown model file suffix {path.suffix!r}; expected one "
                             f"of {', '.join(MODEL_SUFFIXES)}")
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, "No such model file", str(path))
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "A directory, not a model file", str(path))
    reader, keys = _READERS[suffix]
    tensors, (order, relu) = reader(path)
    try:
        return _build_model(tensors,
                            None if order is None else _parse_name_list(order, keys[0]),
                            None if relu is None else _parse_name_list(relu, keys[1]), keys)
    except ValueError as error:
        raise ModelFileError(f"{path}: {error}") from error


def save_model(model: DenseModel, path: str | os.PathLike[str]) -> None:
    """Write a model to ``.npz`` or ``.safetensors``, with its manifest.

    Tensors are named ``<name>.weight`` and ``<name>.bias`` and keep the model's dtypes.
    The manifest (npz: string arrays ``__layers__`` and ``__relu__``; safetensors: metadata
    ``sparsemac.layers`` and ``sparsemac.relu``, comma separated) records the layer order and
    which layers have a ReLU, so `load_model` gives back an equal model.

    Raises
    ------
    TypeError
        If ``model`` is not a `DenseModel`.
    ValueError
        If the suffix is neither ``.npz`` nor ``.safetensors``.
    """
    if not isinstance(model, DenseModel):
        raise TypeError(f"Expected a DenseModel, not {type(model).__name__}")
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _SAVE_SUFFIXES:
        raise ValueError(f"Cannot write model file {path}: the suffix must be one of "
                         f"{', '.join(_SAVE_SUFFIXES)}, not {path.suffix!r}")
    tensors = {}
    for layer in model.layers:
        tensors[f"{layer.name}.weight"] = np.ascontiguousarray(layer.weight)
        if layer.bias is not None:
            tensors[f"{layer.name}.bias"] = np.ascontiguousarray(layer.bias)
    relu_names = [layer.name for layer in model.layers if layer.relu]
    if suffix == ".npz":
        manifest = {_NPZ_LAYERS: np.array(model.names, dtype=str),
                    _NPZ_RELU: np.array(relu_names, dtype=str)}
        with open(path, "wb") as file:
            np.savez(file, **tensors, **manifest)
    else:
        from safetensors.numpy import save

        metadata = {_ST_LAYERS: ",".join(model.names), _ST_RELU: ",".join(relu_names)}
        data = save(tensors, metadata=metadata)
        with open(path, "wb") as file:
            file.write(data)
