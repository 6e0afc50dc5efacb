import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings, strategies as st

from sparsemac.sw.container import image_from_bytes, image_to_bytes
from sparsemac.sw.format import (ImageFormatError, LayerImage, assign_rows, choose_run_bits,
                                 decode_lane_stream, encode_lane_stream, pack_layer, pack_model,
                                 unpack_layer, unpack_model)
from sparsemac.sw.quantize import QuantLayer, QuantModel

from factories import random_layer, random_model


def integer_layer(weight, *, weight_bits=8, relu=False, name="w") -> QuantLayer:
    weight = np.asarray(weight, dtype=np.int64)
    rows = weight.shape[0]
    return QuantLayer(name, weight, np.arange(rows), np.full(rows, 1 << 15), np.full(rows, 16),
                      relu, weight_bits)


def lane_entries(image: LayerImage, lane: int) -> list[tuple[int, int]]:
    start, end = image.lane_offsets[lane], image.lane_offsets[lane + 1]
    return list(zip(image.values[start:end].tolist(), image.runs[start:end].tolist()))


def test_hand_worked_layer():
    # Interleaved over 2 lanes: lane 0 holds rows 0 and 2, lane 1 rows 1 and 3.
    weight = [[0, 5, 0],
              [3, 0, 0],
              [0, 0, 0],
              [-2, 7, 0]]
    image = pack_layer(integer_layer(weight), lanes=2, run_bits=1, balance=False)
    assert image.row_of_slot.tolist() == [[0, 2], [1, 3]]
    assert lane_entries(image, 0) == [(5, 0)]
    assert image.pointers[0].tolist() == [0, 0, 1, 1]
    assert lane_entries(image, 1) == [(3, 0), (-2, 0), (7, 1)]
    assert image.pointers[1].tolist() == [0, 2, 3, 3]
    assert image.fillers == 0 and image.nonzeros == 4


@pytest.mark.parametrize("run_bits", [1, 2, 3, 4])
def test_fillers_at_the_run_limit(run_bits):
    # One lane, interleaved (slot = row), one column: nonzeros after gaps of exactly 2**b - 1 and exactly 2**b zeros.
    limit = 1 << run_bits
    column = np.zeros(1 + (limit - 1) + 1 + limit + 1, dtype=np.int64)
    first, second = limit, limit + 1 + limit
    column[[0, first, second]] = [9, -9, 4]
    image = pack_layer(integer_layer(column[:, None]), lanes=1, run_bits=run_bits, balance=False)
    assert lane_entries(image, 0) == [(9, 0), (-9, limit - 1), (0, limit - 1), (4, 0)]
    assert image.fillers == 1


def test_long_gap_needs_several_fillers():
    column = np.zeros(40, dtype=np.int64)
    column[39] = 1                             # gap 39 with 2-bit runs: 39 >> 2 = 9 fillers
    image = pack_layer(integer_layer(column[:, None]), lanes=1, run_bits=2, balance=False)
    assert lane_entries(image, 0) == [(0, 3)] * 9 + [(1, 3)]
    assert np.array_equal(unpack_layer(image).weight, column[:, None])


def test_bit_stream_worked_example():
    # Entry 0: value 1, run 2 -> 0b10_0001 = 33; entry 1: value -1 (0xF), run 0 -> 15.
    # Stream = 33 + 15 * 64 = 993 = 0x3E1, little-endian, padded to 32 bits.
    stream = encode_lane_stream(np.array([1, -1]), np.array([2, 0]), 4, 2)
    assert stream == bytes([0xE1, 0x03, 0x00, 0x00])
    values, runs = decode_lane_stream(stream, 2, 4, 2)
    assert values.tolist() == [1, -1] and runs.tolist() == [2, 0]


def test_choose_run_bits_worked_case():
    # Gaps [0, 5, 20] with 8-bit values: b=1 costs (3+0+2+10)*9=135, b=2 (3+0+1+5)*10=90,
    # b=3 (3+0+0+2)*11=55, b=4 (3+0+0+1)*12=48, b=5 3*13=39, b=6 42 ...: the best is 5.
    assert choose_run_bits(np.array([0, 5, 20]), 8) == 5
    # No gaps cost 0 bits at every width: the tie goes to the widest field.
    assert choose_run_bits(np.array([], dtype=np.int64), 8, 6) == 6


def test_assign_rows_interleave_and_balance():
    assert assign_rows(np.ones(5, int), 2, balance=False).tolist() == [[0, 2, 4], [1, 3, -1]]
    work = np.array([100, 1, 1, 1, 90, 1, 1, 1])
    balanced = assign_rows(work, 2, balance=True)
    # Heaviest first to the lightest open lane: 0 -> lane 0 (100), 4 -> lane 1 (90), then
    # rows 1, 2, 3 -> lane 1 (91, 92, 93, now full), rows 5, 6, 7 -> lane 0 (103).
    assert balanced.tolist() == [[0, 5, 6, 7], [4, 1, 2, 3]]
    interleaved = assign_rows(work, 2, balance=False)
    # Interleaved, lane 0 holds rows 0, 2, 4, 6: 100 + 1 + 90 + 1.
    assert max(work[r[r >= 0]].sum() for r in interleaved) == 192


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.integers(1, 40), columns=st.integers(1, 40), density=st.sampled_from([0, 0.02, 0.1, 0.5, 1]),
       lanes=st.integers(1, 17), run_bits=st.sampled_from(["auto", 1, 2, 3, 8]),
       weight_bits=st.integers(4, 16), balance=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_round_trip(rows, columns, density, lanes, run_bits, weight_bits, balance, seed):
    rng = np.random.default_rng(seed)
    model = QuantModel((random_layer(rng, rows, columns, density, weight_bits=weight_bits, name="a"),
                        random_layer(rng, 7, rows, density, weight_bits=weight_bits, name="b")), 8)
    image = pack_model(model, lanes=lanes, run_bits=run_bits, balance=balance)
    for through in (image, image_from_bytes(image_to_bytes(image))):
        back = unpack_model(through)
        for original, restored in zip(model.layers, back.layers):
            for field in ("weight", "bias", "multiplier", "shift"):
                assert np.array_equal(getattr(original, field), getattr(restored, field))
            assert original.relu == restored.relu


@pytest.mark.parametrize("weight", [
    np.zeros((6, 5), int),                                         # all zero
    np.pad([[7]], ((2, 3), (4, 0))),                                # one nonzero
    np.array([[1, 0, 2], [0, 0, 0], [3, 0, 4]]),                    # empty row and column
    np.full((3, 3), -128),                                          # extreme values
    np.full((1, 300), 127),                                         # one wide row
], ids=["all-zero", "one-nonzero", "empty-row-column", "extreme", "wide"])
def test_edge_cases_round_trip(weight):
    for lanes in (1, 2, 4, 8):
        image = pack_layer(integer_layer(weight), lanes=lanes)
        assert np.array_equal(unpack_layer(image).weight, weight)


def test_pointers_match_scipy_csc(rng):
    # Independent reference: with no fillers (8-bit runs, fewer than 256 slots), each lane's
    # pointers are scipy's CSC indptr of the lane's rows in slot order.
    layer = random_layer(rng, 200, 150, 0.1)
    image = pack_layer(layer, lanes=4, run_bits=8)
    for lane in range(4):
        rows = image.row_of_slot[lane]
        sub = np.where(rows[:, None] >= 0, layer.weight[np.maximum(rows, 0)], 0)
        csc = sp.csc_matrix(sub)
        csc.sort_indices()
        assert np.array_equal(image.pointers[lane], csc.indptr)
        start, end = image.lane_offsets[lane], image.lane_offsets[lane + 1]
        assert np.array_equal(image.values[start:end], csc.data)
        slots = np.cumsum(image.runs[start:end] + 1) - 1
        expected = np.concatenate([csc.indices[csc.indptr[c]:csc.indptr[c + 1]]
                                   for c in range(150)])
        column_start = np.repeat(image.pointers[lane][:-1], np.diff(image.pointers[lane]))
        before = np.concatenate([[0], np.cumsum(image.runs[start:end] + 1)])[column_start]
        assert np.array_equal(slots - before + 0, expected)


def test_later_layers_read_outputs_in_slot_order(rng):
    model = random_model(rng, [20, 13, 5], 0.5)
    image = pack_model(model, lanes=4)
    first, second = image.layers
    assert second.physical_columns == 4 * first.slots
    assert second.input_order.tolist() == first.row_of_slot.T.reshape(-1).tolist()


def test_pack_refuses_bad_parameters(rng):
    layer = random_layer(rng, 4, 4, 0.5)
    with pytest.raises(ValueError, match="Lane count must be 1 to 64, not 0"):
        pack_layer(layer, lanes=0)
    with pytest.raises(ValueError, match="Run field width must be 1 to 8 bits or 'auto', not 9"):
        pack_layer(layer, lanes=1, run_bits=9)
    with pytest.raises(ValueError, match="Largest run width"):
        pack_layer(layer, lanes=1, max_run_bits=0)


def test_validation_catches_inconsistent_images(rng):
    image = pack_layer(random_layer(rng, 6, 6, 0.5), lanes=2)
    fields = {f: getattr(image, f) for f in image.__dataclass_fields__}
    broken = {
        "pointers": image.pointers[:, ::-1].copy(),
        "runs": image.runs + (1 << image.run_bits),
        "row_of_slot": np.zeros_like(image.row_of_slot),
        "run_bits": 9,
        "values": image.values[:-1] if image.values.size else np.array([1]),
    }
    for field, value in broken.items():
        with pytest.raises(ImageFormatError, match=f"Layer 'layer'"):
            LayerImage(**{**fields, field: value})
