"""The host side of the engine protocol: frames, build info, and how an image maps to writes."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from sparsemac.sw import protocol as proto
from sparsemac.sw.format import decode_lane_stream, pack_model
from sparsemac.sw.golden import EngineTiming
from sparsemac.sw.protocol import ImageTooLargeError, Opcode, Status, Target
from sparsemac.sw.quantize import QuantLayer, QuantModel

BUILD = proto.BuildInfo(lanes=4, weight_bits=8, activation_bits=8, accumulator_bits=32,
                        max_run_bits=4, word_bits=16, entry_words=256,
                        pointer_depth=256, slot_depth=64, bank_depth=32, layer_depth=4,
                        pointer_bits=10, timing=EngineTiming(fifo_depth=4,
                                                               lanes_per_output_stage=2))


def model(seed=0, shapes=((12, 10), (5, 12)), density=0.4, weight_bits=8):
    rng = np.random.default_rng(seed)
    layers = []
    for index, (rows, columns) in enumerate(shapes):
        weight = rng.integers(-127, 128, size=(rows, columns))
        weight[rng.random((rows, columns)) > density] = 0
        layers.append(QuantLayer(f"fc{index}", weight, rng.integers(-100, 100, size=rows),
                                 rng.integers(1 << 15, 1 << 16, size=rows),
                                 np.full(rows, 20), index == 0, weight_bits))
    return QuantModel(tuple(layers), 8)


def test_frame_layout():
    assert proto.frame(Opcode.RUN, b"\x01\x02") == b"\xa5\x04\x02\x00\x00\x00\x01\x02"
    assert proto.info_command() == b"\xa5\x01\x00\x00\x00\x00"
    assert proto.read_output_command(300) == b"\xa5\x05\x04\x00\x00\x00\x2c\x01\x00\x00"
    with pytest.raises(ValueError, match="exceeds"):
        proto.frame(Opcode.WRITE, bytes(proto.MAX_PAYLOAD + 1))


def test_build_info_holds_one_fifo_depth():
    # INFO carries D once; the build reports its timing's.
    deeper = proto.BuildInfo(**{**BUILD.__dict__, "timing": EngineTiming(fifo_depth=8)})
    assert deeper.fifo_depth == 8
    assert proto.BuildInfo.from_bytes(deeper.to_bytes()).timing.fifo_depth == 8


def test_build_info_round_trip():
    data = BUILD.to_bytes()
    assert len(data) == 34
    assert proto.BuildInfo.from_bytes(data) == BUILD
    with pytest.raises(proto.ProtocolError, match="version 3"):
        proto.BuildInfo.from_bytes(b"\x03" + data[1:])
    # A version 1 engine answered 33 bytes (no lanes per output stage): its version is what
    # the host names, not the length.
    with pytest.raises(proto.ProtocolError, match="version 1"):
        proto.BuildInfo.from_bytes(b"\x01" + data[1:33])
    with pytest.raises(proto.ProtocolError, match="34"):
        proto.BuildInfo.from_bytes(data[:33])


def test_responses_split_and_check():
    data = b"\x5a\x00\x04\x00\x00\x00\x07\x00\x00\x00" + b"\x5a\x05\x00\x00\x00\x00" + b"\x5a"
    responses, rest = proto.split_responses(data)
    assert [r.status for r in responses] == [Status.OK, Status.BAD_VALUE] and rest == b"\x5a"
    assert responses[0].check() == b"\x07\x00\x00\x00"
    with pytest.raises(proto.ProtocolError, match="BAD_VALUE"):
        responses[1].check("RUN")
    with pytest.raises(proto.ProtocolError, match="starts with"):
        proto.split_responses(b"\x00" * 6)


def test_input_encoding_refuses_out_of_range():
    assert proto.encode_input(np.array([-1, 2]), 16) == b"\xff\xff\x02\x00"
    with pytest.raises(ValueError, match="beyond the 8-bit range"):
        proto.encode_input(np.array([128]), 8)


def test_memory_writes_map_each_layer_after_the_last():
    image = pack_model(model(), lanes=4, max_run_bits=4)
    writes = proto.memory_writes(image, BUILD)
    rows = [w for w in writes if w.target == Target.LAYER][0].items
    assert len(rows) == 2
    first, second = image.layers
    assert rows[0].pointer_base == 0 and rows[1].pointer_base == first.physical_columns + 1
    assert rows[0].param_base == 0 and rows[1].param_base == first.slots
    assert rows[1].groups == -(-second.physical_columns // 4) and rows[0].relu
    for index, layer in enumerate(image.layers):
        for lane in range(4):
            words = [w for w in writes if w.target == Target.ENTRY and w.lane == lane
                     and w.address == rows[index].entry_base]
            stream = b"".join(int(v).to_bytes(2, "little") for v in (words[0].items if words else ()))
            start, end = layer.lane_offsets[lane], layer.lane_offsets[lane + 1]
            values, runs = decode_lane_stream(stream, end - start, layer.value_bits,
                                              layer.run_bits)
            assert np.array_equal(values, layer.values[start:end])
            assert np.array_equal(runs, layer.runs[start:end])
        assert rows[index].entry_base % 2 == 0


def test_load_commands_respect_the_payload_limit():
    image = pack_model(model(), lanes=4, max_run_bits=4)
    commands = proto.load_commands(image, BUILD, max_payload=40)
    assert all(len(c) <= 46 for c in commands)
    for command in commands:
        sync, opcode, length = struct.unpack_from("<BBI", command)
        assert (sync, opcode, length) == (proto.COMMAND_SYNC, Opcode.WRITE, len(command) - 6)
        size = proto.item_bytes(Target(command[6]), BUILD.word_bits)
        assert (length - 6) % size == 0


@pytest.mark.parametrize("change,message", [
    (dict(lanes=8), "packed for 4 lanes"),
    (dict(activation_bits=16), "8-bit activations"),
    (dict(layer_depth=1), "layer table holds 1"),
    (dict(accumulator_bits=16), "accumulators"),
    (dict(max_run_bits=2), "3-bit runs"),
    (dict(weight_bits=6), "weights"),
    (dict(bank_depth=2), "activation banks hold 8"),
    (dict(entry_words=4), "entry words|words per lane"),
    (dict(pointer_depth=8), "column pointers"),
    (dict(slot_depth=3), "row parameters"),
    (dict(pointer_bits=3), "pointers reach"),
])
def test_images_the_build_cannot_hold_are_refused(change, message):
    image = pack_model(model(), lanes=4, run_bits=3)
    fields = {**BUILD.__dict__, **change}
    with pytest.raises(ImageTooLargeError, match=message):
        proto.memory_writes(image, proto.BuildInfo(**fields))


def test_outputs_in_row_order():
    image = pack_model(model(shapes=((7, 5),)), lanes=4)
    layer = image.layers[0]
    physical = np.arange(4 * layer.slots) + 100
    out = proto.outputs_in_row_order(physical, layer)
    for lane in range(4):
        for slot in range(layer.slots):
            row = layer.row_of_slot[lane, slot]
            if row >= 0:
                assert out[row] == physical[slot * 4 + lane]


def test_layers_with_more_slots_than_a_bank_are_refused():
    image = pack_model(model(shapes=((20, 6), (5, 20))), lanes=4)
    with pytest.raises(ImageTooLargeError, match="has 5 slots per lane, the engine at most 4"):
        proto.memory_writes(image, proto.BuildInfo(**{**BUILD.__dict__, "bank_depth": 4}))
