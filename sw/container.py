"""The model image file: a versioned container around :class:`ModelImage` (docs/format.md §5).

Layout, all integers little-endian::

    0       8 bytes   magic b"SPMACIMG"
    8       u16       container version (1)
    10      u16       flags (0; readers refuse any other value)
    12      u32       H, length of the JSON header
    16      u64       P, length of the payload
    24      H bytes   header, UTF-8 JSON
    24+H    P bytes   payload: the arrays the header names, each at a multiple of 8
    24+H+P  u32       CRC-32 (IEEE, as zlib.crc32) of bytes [0, 24+H+P)

A file whose length is not exactly ``28 + H + P``, or whose checksum differs, is refused
before anything in it is trusted.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from .format import (FORMAT_VERSION, ImageFormatError, LayerImage, ModelImage,
                     decode_lane_stream)

__all__ = ["MAGIC", "save_image", "load_image", "image_to_bytes", "image_from_bytes"]

MAGIC = b"SPMACIMG"
_PREFIX = struct.Struct("<8sHHIQ")
_CRC = struct.Struct("<I")

# Per-layer arrays and their stored dtypes. Entries are stored as the lane bit streams.
_ARRAYS = {
    "row_of_slot": "<i4", "input_order": "<i4", "pointers": "<u4",
    "bias": "<i8", "multiplier": "<u2", "shift": "<u1", "weight_scale": "<f8",
}


def _lane_stream_bytes(entries: int, entry_bits: int) -> int:
    return -(-entries * entry_bits // 32) * 4


class _PayloadWriter:
    def __init__(self):
        self.chunks: list[bytes] = []
        self.length = 0

    def add(self, data: bytes, dtype: str, shape: tuple[int, ...]) -> dict:
        pad = -self.length % 8
        if pad:
            self.chunks.append(bytes(pad))
            self.length += pad
        record = {"dtype": dtype, "shape": list(shape), "offset": self.length, "length": len(data)}
        self.chunks.append(data)
        self.length += len(data)
        return record


def _checked_cast(array: np.ndarray, dtype: str, what: str) -> bytes:
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    if info is not None and array.size and (array.min() < info.min or array.max() > info.max):
        raise ImageFormatError(f"{what} does not fit the file's {np.dtype(dtype).name} field")
    return np.ascontiguousarray(array, dtype=dtype).tobytes()


def image_to_bytes(image: ModelImage) -> bytes:
    payload = _PayloadWriter()
    layers = []
    for layer in image.layers:
        arrays = {}
        for name, dtype in _ARRAYS.items():
            value = getattr(layer, name)
            if value is None:
                continue
            arrays[name] = payload.add(_checked_cast(value, dtype, f"{layer.name}.{name}"),
                                       dtype, value.shape)
        streams = b"".join(layer.lane_stream(lane) for lane in range(layer.lanes))
        arrays["entries"] = payload.add(streams, "|u1", (len(streams),))
        layers.append({
            "name": layer.name, "rows": layer.rows, "columns": layer.columns,
            "value_bits": layer.value_bits, "run_bits": layer.run_bits, "relu": layer.relu,
            "output_scale": layer.output_scale,
            "lane_entries": [int(n) for n in layer.lane_entries], "arrays": arrays,
        })
    header = json.dumps({
        "format": "sparsemac-image", "format_version": FORMAT_VERSION,
        "lanes": image.lanes, "activation_bits": image.activation_bits,
        "input_scale": image.input_scale, "layers": layers,
    }, separators=(",", ":")).encode()
    body = _PREFIX.pack(MAGIC, FORMAT_VERSION, 0, len(header), payload.length) + header \
        + b"".join(payload.chunks)
    return body + _CRC.pack(zlib.crc32(body))


def save_image(image: ModelImage, path: str | os.PathLike) -> None:
    """Write ``image`` to ``path`` (conventionally ``*.smac``)."""
    Path(path).write_bytes(image_to_bytes(image))


def _read_array(payload: bytes, record: dict, what: str) -> np.ndarray:
    try:
        dtype, shape = np.dtype(record["dtype"]), tuple(record["shape"])
        offset, length = int(record["offset"]), int(record["length"])
    except (KeyError, TypeError, ValueError):
        raise ImageFormatError(f"{what}: malformed array record {record!r}") from None
    if offset < 0 or offset + length > len(payload) or length != dtype.itemsize * int(np.prod(shape)):
        raise ImageFormatError(f"{what}: array record {record!r} does not fit the payload")
    return np.frombuffer(payload, dtype=dtype, count=length // dtype.itemsize,
                         offset=offset).reshape(shape).astype(np.int64 if dtype.kind in "iu" else np.float64)


def image_from_bytes(data: bytes, source: str = "image") -> ModelImage:
    """Parse and fully validate an image; :class:`ImageFormatError` says what is wrong."""
    if len(data) < _PREFIX.size + _CRC.size:
        raise ImageFormatError(f"{source}: {len(data)} bytes is too short to be a model image")
    magic, version, flags, header_length, payload_length = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise ImageFormatError(f"{source}: not a sparsemac model image (magic {magic!r})")
    if version != FORMAT_VERSION:
        raise ImageFormatError(f"{source}: format version {version}; this sparsemac reads "
                               f"version {FORMAT_VERSION}")
    if flags != 0:
        raise ImageFormatError(f"{source}: unknown flags {flags:#06x}")
    expected = _PREFIX.size + header_length + payload_length + _CRC.size
    if len(data) != expected:
        raise ImageFormatError(f"{source}: file is {len(data)} bytes but its header says "
                               f"{expected} (truncated or extended)")
    body_end = expected - _CRC.size
    (stored_crc,) = _CRC.unpack_from(data, body_end)
    if zlib.crc32(data[:body_end]) != stored_crc:
        raise ImageFormatError(f"{source}: checksum mismatch, the file is corrupt")
    try:
        header = json.loads(data[_PREFIX.size:_PREFIX.size + header_length])
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ImageFormatError(f"{source}: header is not valid JSON ({error})") from None
    payload = data[_PREFIX.size + header_length:body_end]
    try:
        return _image_from_header(header, payload, source)
    except (KeyError, TypeError, ValueError) as error:
        if isinstance(error, ImageFormatError):
            raise
        raise ImageFormatError(f"{source}: malformed header ({type(error).__name__}: {error})") from None


def _image_from_header(header: dict, payload: bytes, source: str) -> ModelImage:
    if header.get("format") != "sparsemac-image":
        raise ImageFormatError(f"{source}: header does not describe a sparsemac image")
    lanes = int(header["lanes"])
    layers = []
    for index, record in enumerate(header["layers"]):
        what = f"{source}: layer {index} ({record.get('name')!r})"
        arrays = {name: _read_array(payload, record["arrays"][name], f"{what} {name}")
                  for name in _ARRAYS if name in record["arrays"]}
        lane_entries = [int(n) for n in record["lane_entries"]]
        value_bits, run_bits = int(record["value_bits"]), int(record["run_bits"])
        if len(lane_entries) != lanes:
            raise ImageFormatError(f"{what}: {len(lane_entries)} lane entry counts for {lanes} lanes")
        streams = _read_array(payload, record["arrays"]["entries"], f"{what} entries").astype(np.uint8).tobytes()
        values, runs, offset = [], [], 0
        for count in lane_entries:
            size = _lane_stream_bytes(count, value_bits + run_bits)
            if offset + size > len(streams):
                raise ImageFormatError(f"{what}: lane streams are shorter than their entry counts")
            v, r = decode_lane_stream(streams[offset:offset + size], count, value_bits, run_bits)
            values.append(v)
            runs.append(r)
            offset += size
        if offset != len(streams):
            raise ImageFormatError(f"{what}: {len(streams) - offset} bytes of lane streams are unaccounted for")
        layers.append(LayerImage(
            name=str(record["name"]), rows=int(record["rows"]), columns=int(record["columns"]),
            lanes=lanes, value_bits=value_bits, run_bits=run_bits, relu=bool(record["relu"]),
            row_of_slot=arrays["row_of_slot"], input_order=arrays["input_order"],
            pointers=arrays["pointers"], values=np.concatenate(values), runs=np.concatenate(runs),
            bias=arrays["bias"], multiplier=arrays["multiplier"], shift=arrays["shift"],
            weight_scale=arrays.get("weight_scale"),
            output_scale=None if record.get("output_scale") is None else float(record["output_scale"])))
    input_scale = header.get("input_scale")
    return ModelImage(tuple(layers), int(header["activation_bits"]),
                      None if input_scale is None else float(input_scale))


def load_image(path: str | os.PathLike) -> ModelImage:
    """Read and validate a model image file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"No such model image: {path}") from None
    return image_from_bytes(data, str(path))
