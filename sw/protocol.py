"""The engine's byte protocol, host side: frames, commands, responses and image loading.

docs/protocol.md is the specification. This module only encodes and decodes bytes; it moves
none. The host driver, a UART link and the testbenches all build their commands here, so
every transport speaks the same protocol.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

import numpy as np

from .format import LayerImage, ModelImage
from .golden import EngineTiming
from .numerics import signed_range

__all__ = [
    "PROTOCOL_VERSION", "COMMAND_SYNC", "RESPONSE_SYNC", "MAX_PAYLOAD",
    "Opcode", "Status", "Target", "BuildInfo", "MemoryWrite", "LayerRow", "Response",
    "ProtocolError", "ImageTooLargeError",
    "frame", "info_command", "write_command", "write_input_command", "run_command",
    "read_output_command", "status_command", "reset_command",
    "parse_response", "split_responses", "memory_writes", "load_commands",
    "encode_layer_row", "encode_row_params", "encode_input", "decode_outputs",
    "outputs_in_row_order", "RunStatus",
]

PROTOCOL_VERSION = 2
#: First byte of every command frame.
COMMAND_SYNC = 0xA5
#: First byte of every response frame.
RESPONSE_SYNC = 0x5A
#: Longest payload any command may carry; a longer length field is refused at once.
MAX_PAYLOAD = 1 << 20
#: Size of the WRITE payload's header: target, lane, address.
WRITE_HEADER = 6


class Opcode(enum.IntEnum):
    INFO = 0x01
    WRITE = 0x02
    WRITE_INPUT = 0x03
    RUN = 0x04
    READ_OUTPUT = 0x05
    STATUS = 0x06
    RESET = 0x07


class Status(enum.IntEnum):
    OK = 0x00
    BAD_OPCODE = 0x01
    BAD_LENGTH = 0x02
    BAD_TARGET = 0x03
    BAD_ADDRESS = 0x04
    BAD_VALUE = 0x05
    NOT_LOADED = 0x06
    NO_INPUT = 0x07
    NO_RESULT = 0x08


class Target(enum.IntEnum):
    """The memories a WRITE reaches (docs/protocol.md section 4)."""
    POINTER = 0
    ENTRY = 1
    PARAM = 2
    LAYER = 3


class ProtocolError(ValueError):
    """A response is malformed or reports an error."""


class ImageTooLargeError(ValueError):
    """A model image does not fit the engine build it is being loaded into."""


@dataclass(frozen=True)
class BuildInfo:
    """What an engine build reports in answer to INFO (docs/protocol.md section 3.1)."""
    lanes: int
    weight_bits: int
    activation_bits: int
    accumulator_bits: int
    max_run_bits: int
    word_bits: int
    entry_words: int
    pointer_depth: int
    slot_depth: int
    bank_depth: int
    layer_depth: int
    pointer_bits: int
    timing: EngineTiming
    version: int = PROTOCOL_VERSION

    _FORMAT = "<BBBBBBBBBIIIIIBBBBB"

    @property
    def fifo_depth(self) -> int:
        """The lanes' FIFO depth ``D``: INFO carries it once, as part of the timing."""
        return self.timing.fifo_depth

    def to_bytes(self) -> bytes:
        t = self.timing
        return struct.pack(self._FORMAT, self.version, self.lanes, self.weight_bits,
                           self.activation_bits, self.accumulator_bits, self.max_run_bits,
                           self.word_bits, self.fifo_depth, self.pointer_bits,
                           self.entry_words, self.pointer_depth, self.slot_depth,
                           self.bank_depth, self.layer_depth, t.broadcast_latency,
                           t.mac_latency, t.output_latency, t.layer_overhead,
                           t.lanes_per_output_stage)

    @classmethod
    def from_bytes(cls, payload: bytes) -> "BuildInfo":
        if payload and payload[0] != PROTOCOL_VERSION:
            raise ProtocolError(f"Engine speaks protocol version {payload[0]}, this host "
                                f"{PROTOCOL_VERSION}")
        if len(payload) != struct.calcsize(cls._FORMAT):
            raise ProtocolError(f"INFO payload is {len(payload)} bytes, expected "
                                f"{struct.calcsize(cls._FORMAT)}")
        (version, lanes, wb, ab, accb, rb, word, fifo, pb, ew, pd, sd, bd, ld,
         lb, lm, lo, lh, group) = struct.unpack(cls._FORMAT, payload)
        return cls(lanes, wb, ab, accb, rb, word, ew, pd, sd, bd, ld, pb,
                   EngineTiming(fifo, lb, lm, lo, lh, group), version)

    @property
    def max_pointer(self) -> int:
        return (1 << self.pointer_bits) - 1


# -- Framing -----------------------------------------------------------------------------------

def frame(opcode: int, payload: bytes = b"") -> bytes:
    """One command frame: sync, opcode, u32 payload length, payload."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"Payload of {len(payload)} bytes exceeds the {MAX_PAYLOAD}-byte limit")
    return struct.pack("<BBI", COMMAND_SYNC, int(opcode), len(payload)) + bytes(payload)


def info_command() -> bytes:
    return frame(Opcode.INFO)


def status_command() -> bytes:
    return frame(Opcode.STATUS)


def reset_command() -> bytes:
    return frame(Opcode.RESET)


def run_command(first_layer: int, layer_count: int) -> bytes:
    return frame(Opcode.RUN, struct.pack("<BB", first_layer, layer_count))


def read_output_command(count: int) -> bytes:
    return frame(Opcode.READ_OUTPUT, struct.pack("<I", count))


def write_command(target: Target, lane: int, address: int, items: bytes) -> bytes:
    return frame(Opcode.WRITE, struct.pack("<BBI", int(target), lane, address) + bytes(items))


def encode_input(x: np.ndarray, activation_bits: int) -> bytes:
    """Activations as little-endian two's complement of ``activation_bits // 8`` bytes."""
    x = np.asarray(x)
    lo, hi = signed_range(activation_bits)
    if x.ndim != 1 or x.dtype.kind not in "iu":
        raise ValueError(f"An input must be a vector of integers, not {x.dtype} {x.shape}")
    if x.size and (x.min() < lo or x.max() > hi):
        raise ValueError(f"Inputs span [{x.min()}, {x.max()}], beyond the "
                         f"{activation_bits}-bit range [{lo}, {hi}]")
    return x.astype("<i1" if activation_bits == 8 else "<i2").tobytes()


def write_input_command(x: np.ndarray, activation_bits: int) -> bytes:
    """Write the input vector, physical column 0 first, into the input buffer."""
    return frame(Opcode.WRITE_INPUT, encode_input(x, activation_bits))


def decode_outputs(payload: bytes, activation_bits: int) -> np.ndarray:
    width = activation_bits // 8
    if len(payload) % width:
        raise ProtocolError(f"Output payload of {len(payload)} bytes is not a whole number "
                            f"of {width}-byte activations")
    return np.frombuffer(payload, dtype="<i1" if width == 1 else "<i2").astype(np.int64)


def outputs_in_row_order(physical: np.ndarray, layer: LayerImage) -> np.ndarray:
    """The last layer's outputs read in physical order (slot * lanes + lane), by row."""
    rows = layer.row_of_slot.T.reshape(-1)
    held = rows >= 0
    out = np.zeros(layer.rows, dtype=np.int64)
    out[rows[held]] = np.asarray(physical)[: rows.size][held]
    return out


# -- Responses ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Response:
    status: Status | int
    payload: bytes

    def check(self, what: str = "command") -> bytes:
        if self.status != Status.OK:
            try:
                name = Status(self.status).name
            except ValueError:
                name = f"unknown status {self.status:#04x}"
            raise ProtocolError(f"The engine refused the {what}: {name}")
        return self.payload


@dataclass(frozen=True)
class RunStatus:
    """The payload of STATUS (docs/protocol.md section 3.6)."""
    has_input: bool
    has_result: bool
    cycles: int
    result_count: int

    @classmethod
    def from_bytes(cls, payload: bytes) -> "RunStatus":
        if len(payload) != 9:
            raise ProtocolError(f"STATUS payload is {len(payload)} bytes, expected 9")
        flags, cycles, count = struct.unpack("<BII", payload)
        return cls(bool(flags & 1), bool(flags & 2), cycles, count)


def split_responses(data: bytes) -> tuple[list[Response], bytes]:
    """Parse as many whole response frames as ``data`` holds; return them and the rest."""
    responses = []
    data = bytes(data)
    while len(data) >= 6:
        sync, status, length = struct.unpack_from("<BBI", data)
        if sync != RESPONSE_SYNC:
            raise ProtocolError(f"Response frame starts with {sync:#04x}, not "
                                f"{RESPONSE_SYNC:#04x}")
        if len(data) < 6 + length:
            break
        responses.append(Response(Status(status) if status in Status._value2member_map_
                                  else status, data[6:6 + length]))
        data = data[6 + length:]
    return responses, data


def parse_response(data: bytes) -> Response:
    """Exactly one response frame."""
    responses, rest = split_responses(data)
    if len(responses) != 1 or rest:
        raise ProtocolError(f"Expected one response frame, got {len(responses)} and "
                            f"{len(rest)} stray bytes")
    return responses[0]


# -- Loading an image --------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerRow:
    """One row of the engine's layer table (docs/protocol.md section 4.4)."""
    columns: int
    groups: int
    slots: int
    value_bits: int
    run_bits: int
    relu: bool
    entry_base: int
    pointer_base: int
    param_base: int

    def to_bytes(self) -> bytes:
        return struct.pack("<IHHBBBBIII", self.columns, self.groups, self.slots,
                           self.value_bits, self.run_bits, int(self.relu), 0,
                           self.entry_base, self.pointer_base, self.param_base)


#: Bytes of one item per WRITE target; ENTRY items are ``word_bits // 8`` bytes.
ITEM_BYTES = {Target.POINTER: 4, Target.PARAM: 11, Target.LAYER: 24}


def item_bytes(target: Target, word_bits: int) -> int:
    return word_bits // 8 if target == Target.ENTRY else ITEM_BYTES[target]


def encode_layer_row(row: LayerRow) -> bytes:
    return row.to_bytes()


def encode_row_params(bias: np.ndarray, multiplier: np.ndarray, shift: np.ndarray) -> bytes:
    """Row parameter items: bias i64, multiplier u16, shift u8, each little-endian."""
    record = np.dtype([("bias", "<i8"), ("multiplier", "<u2"), ("shift", "u1")])
    items = np.zeros(len(bias), dtype=record)
    items["bias"], items["multiplier"], items["shift"] = bias, multiplier, shift
    return items.tobytes()


@dataclass(frozen=True)
class MemoryWrite:
    """Consecutive items for one memory of one lane, starting at ``address``."""
    target: Target
    lane: int
    address: int
    items: tuple

    def payload(self, build: BuildInfo) -> bytes:
        if self.target == Target.POINTER:
            return np.asarray(self.items, dtype="<u4").tobytes()
        if self.target == Target.ENTRY:
            width = build.word_bits // 8
            return b"".join(int(word).to_bytes(width, "little") for word in self.items)
        if self.target == Target.PARAM:
            bias, multiplier, shift = (np.array(field) for field in zip(*self.items))
            return encode_row_params(bias, multiplier, shift)
        return b"".join(row.to_bytes() for row in self.items)


def _lane_words(layer: LayerImage, lane: int, word_bits: int) -> list[int]:
    """Lane ``lane``'s bit stream cut into ``word_bits``-bit words (docs/format.md section 3)."""
    entries = int(layer.lane_entries[lane])
    count = -(-entries * layer.entry_bits // word_bits)
    stream = int.from_bytes(layer.lane_stream(lane), "little")
    mask = (1 << word_bits) - 1
    return [(stream >> (w * word_bits)) & mask for w in range(count)]


def memory_writes(image: ModelImage, build: BuildInfo) -> list[MemoryWrite]:
    """The memory contents that load ``image`` into an engine ``build``.

    Layer ``i`` goes to layer-table row ``i``; its entries, pointers and row parameters follow
    the previous layers' in each lane's memories (docs/protocol.md section 5).

    Raises
    ------
    ImageTooLargeError
        If the image needs more lanes, wider fields, or deeper memories than the build has.
    """
    def refuse(message):
        raise ImageTooLargeError(f"The image does not fit this engine build: {message}")

    if image.lanes != build.lanes:
        refuse(f"it is packed for {image.lanes} lanes, the engine has {build.lanes}")
    if image.activation_bits != build.activation_bits:
        refuse(f"it uses {image.activation_bits}-bit activations, the engine "
               f"{build.activation_bits}-bit")
    if len(image.layers) > build.layer_depth:
        refuse(f"it has {len(image.layers)} layers, the layer table holds {build.layer_depth}")
    need = image.accumulator_bits()
    if need > build.accumulator_bits:
        refuse(f"it needs {need}-bit accumulators, the engine has {build.accumulator_bits}")
    if image.layers[0].physical_columns > build.lanes * build.bank_depth:
        refuse(f"its input has {image.layers[0].physical_columns} values, the activation "
               f"banks hold {build.lanes * build.bank_depth}")

    writes: list[MemoryWrite] = []
    rows: list[LayerRow] = []
    entry_base = pointer_base = param_base = 0
    for layer in image.layers:
        where = f"layer {layer.name!r}"
        if layer.value_bits > build.weight_bits:
            refuse(f"{where} has {layer.value_bits}-bit weights, the engine decodes "
                   f"{build.weight_bits}")
        if layer.run_bits > build.max_run_bits:
            refuse(f"{where} has {layer.run_bits}-bit runs, the engine decodes "
                   f"{build.max_run_bits}")
        if layer.slots > build.bank_depth:
            refuse(f"{where} has {layer.slots} slots per lane, the engine at most "
                   f"{build.bank_depth}")
        groups = -(-layer.physical_columns // build.lanes)
        if groups > build.bank_depth:
            refuse(f"{where} has {layer.physical_columns} inputs, the activation banks hold "
                   f"{build.lanes * build.bank_depth}")
        if int(layer.pointers.max(initial=0)) > build.max_pointer:
            refuse(f"{where} has {int(layer.pointers.max())} entries in a lane, the engine's "
                   f"pointers reach {build.max_pointer}")
        words = [_lane_words(layer, lane, build.word_bits) for lane in range(build.lanes)]
        layer_words = max(len(w) for w in words)
        layer_words += layer_words % 2                  # keep every layer's base even
        if entry_base + layer_words > build.entry_words:
            refuse(f"its entries need {entry_base + layer_words} words per lane up to "
                   f"{where}, the engine has {build.entry_words}")
        if pointer_base + layer.physical_columns + 1 > build.pointer_depth:
            refuse(f"its column pointers need {pointer_base + layer.physical_columns + 1} "
                   f"per lane up to {where}, the engine has {build.pointer_depth}")
        if param_base + layer.slots > build.slot_depth:
            refuse(f"its row parameters need {param_base + layer.slots} per lane up to "
                   f"{where}, the engine has {build.slot_depth}")
        for lane in range(build.lanes):
            if words[lane]:
                writes.append(MemoryWrite(Target.ENTRY, lane, entry_base, tuple(words[lane])))
            writes.append(MemoryWrite(Target.POINTER, lane, pointer_base,
                                      tuple(int(v) for v in layer.pointers[lane])))
            writes.append(MemoryWrite(Target.PARAM, lane, param_base, tuple(
                (int(b), int(m), int(s)) for b, m, s in
                zip(layer.bias[lane], layer.multiplier[lane], layer.shift[lane]))))
        rows.append(LayerRow(layer.physical_columns, groups, layer.slots, layer.value_bits,
                             layer.run_bits, layer.relu, entry_base, pointer_base, param_base))
        entry_base += layer_words
        pointer_base += layer.physical_columns + 1
        param_base += layer.slots
    writes.append(MemoryWrite(Target.LAYER, 0, 0, tuple(rows)))
    return writes


def load_commands(image: ModelImage, build: BuildInfo, *,
                  max_payload: int = 4096) -> list[bytes]:
    """WRITE command frames that load ``image`` into an engine ``build``.

    Each :class:`MemoryWrite` is split into frames of at most ``max_payload`` bytes.
    Raises :class:`ImageTooLargeError` if the image does not fit.
    """
    commands = []
    for write in memory_writes(image, build):
        size = item_bytes(write.target, build.word_bits)
        per_frame = max(1, (max_payload - WRITE_HEADER) // size)
        for start in range(0, len(write.items), per_frame):
            part = MemoryWrite(write.target, write.lane, write.address + start,
                               write.items[start:start + per_frame])
            commands.append(write_command(write.target, write.lane, part.address,
                                          part.payload(build)))
    return commands
