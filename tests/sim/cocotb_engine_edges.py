"""The engine's edge cases, bit- and cycle-exact against the golden model.

Empty rows and columns, an all-zero matrix, one nonzero, the longest runs (gaps of exactly
``2**b - 1`` and ``2**b`` zero slots, and several fillers), extreme weights, activations and
biases at the accumulator limit, and the largest model the build holds (every memory full).
Run by ``test_engine_cocotb.py`` on every build.
"""

from __future__ import annotations

from dataclasses import replace

import cocotb
import numpy as np

from sparsemac.sim.transport import engine_build_info
from sparsemac.sw import pack_model
from sparsemac.sw.numerics import signed_range
from sparsemac.sw.protocol import ImageTooLargeError, Target, memory_writes
from sparsemac.sw.quantize import QuantLayer, QuantModel

from cocotb_engine import EngineBench, fit_model


def _layer(weight, *, bits, rng, relu=False, name="layer", bias=None, multiplier=None,
           shift=None) -> QuantLayer:
    rows = weight.shape[0]
    return QuantLayer(
        name, np.asarray(weight, dtype=np.int64),
        rng.integers(-300, 301, rows) if bias is None else np.asarray(bias, dtype=np.int64),
        rng.integers(1 << 15, 1 << 16, rows) if multiplier is None else np.asarray(multiplier),
        rng.integers(8, 14, rows) if shift is None else np.asarray(shift),
        relu, bits)


def _nonzero_weights(rng, shape, bits):
    lo, hi = signed_range(bits)
    w = rng.integers(lo, hi + 1, shape)
    w[w == 0] = hi
    return w


@cocotb.test()
async def empty_rows_columns_all_zero_one_nonzero(dut):
    bench = await EngineBench.start(dut, 11, in_pause=0.15, out_pause=0.3)
    p, rng = bench.params, bench.np_rng
    bits, act = p.weight_bits, p.activation_bits
    side = p.lanes * p.bank_depth
    rows, columns = min(side, 40), min(side, 37)

    # Empty rows and columns: a third of each, inputs nonzero everywhere (empty columns too).
    w = _nonzero_weights(rng, (rows, columns), bits) * (rng.random((rows, columns)) < 0.3)
    w[rng.permutation(rows)[: rows // 3]] = 0
    w[:, rng.permutation(columns)[: columns // 3]] = 0
    cases = [("empty rows and columns", w)]
    cases.append(("all-zero matrix", np.zeros((rows, columns), dtype=np.int64)))
    one = np.zeros((rows, columns), dtype=np.int64)
    one[rows - 1, columns - 1] = signed_range(bits)[0]
    cases.append(("one nonzero, last row and column, most negative", one))
    one = np.zeros((rows, columns), dtype=np.int64)
    one[rows // 2, 0] = 1
    cases.append(("one nonzero, first column", one))
    one_by_one = np.array([[signed_range(bits)[1]]])
    for what, weight in cases:
        image = fit_model(QuantModel((_layer(weight, bits=bits, rng=rng),), act), bench.info)
        xs = np.concatenate([bench.inputs(image, 2, 0.0), bench.inputs(image, 1, 0.7),
                             np.zeros((1, columns), dtype=np.int64)])
        await bench.load_and_check(image, xs, what)
    image = fit_model(QuantModel((_layer(one_by_one, bits=bits, rng=rng, relu=True),), act),
                      bench.info)
    await bench.load_and_check(image, np.array([[signed_range(act)[0]], [5], [0]]),
                               "a 1x1 layer")


@cocotb.test()
async def longest_runs(dut):
    """Gaps of exactly 2**b - 1 zero slots (no filler) and 2**b (one filler), as a column's
    first entry and between entries, 2 * 2**b (two fillers) and the longest gap, in every lane."""
    bench = await EngineBench.start(dut, 12, in_pause=0.2, out_pause=0.2)
    p, rng = bench.params, bench.np_rng
    bits, lanes = p.weight_bits, p.lanes
    slots = p.bank_depth
    tested = 0
    for b in sorted({1, 2, 3, p.max_run_bits}):
        if b > p.max_run_bits or (1 << b) + 2 > slots:
            continue
        g = 1 << b
        # Slot patterns per column (within every lane): first-entry gaps g-1 and g, inner
        # gaps g-1 and g, two fillers, and the longest gap (first and last slot).
        patterns = [[g - 1], [g], [0, g], [0, g + 1], [2 * g], [0, slots - 1], [slots - 1]]
        patterns = [s for s in patterns if max(s) < slots]
        weight = np.zeros((lanes * slots, len(patterns) + 1), dtype=np.int64)
        for column, pattern in enumerate(patterns):
            for lane in range(lanes):
                for slot in pattern:
                    # Interleaved packing: row i is lane i mod N, slot i div N.
                    weight[slot * lanes + lane, column] = rng.choice([-1, 1]) * rng.integers(1, 1 << (bits - 1))
        weight[:, -1] = _nonzero_weights(rng, lanes * slots, bits)    # a dense column
        layer = _layer(weight, bits=bits, rng=rng)
        image = pack_model(QuantModel((layer,), p.activation_bits), lanes=lanes, run_bits=b,
                           balance=False)
        assert image.layers[0].run_bits == b and image.layers[0].fillers > 0
        xs = np.concatenate([bench.inputs(image, 2, 0.0), bench.inputs(image, 1, 0.5)])
        await bench.load_and_check(image, xs, f"{b}-bit runs, gaps {g - 1}, {g}, {2 * g} and "
                                              f"{slots - 1}, {image.layers[0].fillers} fillers")
        tested += 1
    assert tested, "the build's slots are too few for any run width"


@cocotb.test()
async def extreme_values(dut):
    """Weights and activations at their most negative, biases at the accumulator limit the
    image still allows, multipliers and shifts at their ends."""
    bench = await EngineBench.start(dut, 13, in_pause=0.1, out_pause=0.6)
    p, rng = bench.params, bench.np_rng
    wlo, whi = signed_range(p.weight_bits)
    alo, ahi = signed_range(p.activation_bits)
    limit = (1 << (p.accumulator_bits - 1)) - 1         # the largest |acc| the image may need
    side = p.lanes * p.bank_depth
    for rows, columns in ((min(side, 64), min(side, 48)), (min(side, 32), min(side, 24)),
                          (min(side, 20), min(side, 16))):
        try:
            await _extremes(bench, rows, columns)
            break
        except ImageTooLargeError:
            continue
    else:
        raise AssertionError("no extreme-value layer fits the build")


async def _extremes(bench, rows, columns):
    p, rng = bench.params, bench.np_rng
    wlo, whi = signed_range(p.weight_bits)
    alo, ahi = signed_range(p.activation_bits)
    limit = (1 << (p.accumulator_bits - 1)) - 1         # the largest |acc| the image may need
    weight = np.where(rng.random((rows, columns)) < 0.5, wlo, whi)
    weight[rows // 2:] = wlo                             # rows all at the most negative weight
    weight[-1] = 0                                       # a row that is all bias
    bound = np.abs(weight).sum(axis=1) * (1 << (p.activation_bits - 1))
    assert bound.max() < limit, "the build's accumulators are too narrow for this test"
    sign = np.where(np.arange(rows) % 2 == 0, 1, -1)
    bias = sign * (limit - bound)                        # worst case exactly at the limit
    # Requantization: mid-range factors for the extreme accumulators, and the ends.
    mid = p.accumulator_bits - 1 + 16 - (p.activation_bits - 2)
    multiplier = rng.integers(1 << 15, 1 << 16, rows)
    shift = np.clip(mid + rng.integers(-2, 3, rows), 0, 63)
    multiplier[:4], shift[:4] = [65535, 0, 1, 65535], [63, 0, 0, 0]
    images = []
    for relu in (False, True):
        layer = _layer(weight, bits=p.weight_bits, rng=rng, relu=relu, bias=bias,
                       multiplier=multiplier, shift=shift)
        image = fit_model(QuantModel((layer,), p.activation_bits), bench.info)
        assert image.accumulator_bits() == p.accumulator_bits
        images.append(image)
    for relu, image in zip((False, True), images):
        xs = np.stack([np.full(columns, alo), np.full(columns, ahi), np.zeros(columns, int),
                       np.where(np.arange(columns) % 2 == 0, alo, ahi),
                       np.where(rng.random(columns) < 0.5, alo, 0)])
        await bench.load_and_check(image, xs, f"extreme values at {p.accumulator_bits}-bit "
                                              f"accumulators, {rows}x{columns}, relu {relu}")
    # One more unit of bias needs a wider accumulator: the host refuses the image.
    bias[0] += 1
    layer = _layer(weight, bits=p.weight_bits, rng=rng, bias=bias, multiplier=multiplier,
                   shift=shift)
    try:
        fit_model(QuantModel((layer,), p.activation_bits), bench.info)
    except ImageTooLargeError as error:
        assert "accumulators" in str(error)
    else:
        raise AssertionError("an image needing wider accumulators was accepted")


@cocotb.test()
async def largest_model(dut):
    """The largest model the build holds: ``layer_depth`` layers of ``N x bank_depth`` rows and
    columns fill the layer table, pointers, row parameters, slots and input groups exactly,
    and the last layer's nonzeros are chosen to fill the entry memory to its last word."""
    bench = await EngineBench.start(dut, 14, in_pause=0.0, out_pause=0.2)
    p, rng, info = bench.params, bench.np_rng, bench.info
    side = p.lanes * p.bank_depth
    bits = p.weight_bits
    sparse = [_layer(_nonzero_weights(rng, (side, side), bits)
                     * (rng.random((side, side)) < 0.04 / p.layer_depth),
                     bits=bits, rng=rng, relu=True, name=f"fc{k}")
              for k in range(p.layer_depth - 1)]
    # The last layer fills rows in order, each across every column: interleaved packing puts
    # row i in lane i mod N, slot i div N, so each lane's entries of a column sit in
    # consecutive slots (no fillers) and each added nonzero adds one entry to one lane.
    dense = _nonzero_weights(rng, (side, side), bits)
    order = np.arange(side * side)

    def model(count):
        w = np.zeros(side * side, dtype=np.int64)
        w[order[:count]] = dense.reshape(-1)[order[:count]]
        last = _layer(w.reshape(side, side), bits=bits, rng=rng, name="last")
        return QuantModel((*sparse, last), p.activation_bits)

    def entry_words(count):
        image = pack_model(model(count), lanes=p.lanes, max_run_bits=p.max_run_bits,
                           balance=False)
        roomy = engine_build_info(replace(p, entry_words=1 << 20))
        words = max(w.address + len(w.items) for w in memory_writes(image, roomy)
                    if w.target == Target.ENTRY)
        return words + words % 2, image

    lo, hi = 1, side * side
    if entry_words(hi)[0] < p.entry_words:
        raise AssertionError("the entry memory holds a dense model; nothing to fill")
    while lo < hi:                                        # the most nonzeros that fit
        mid = (lo + hi + 1) // 2
        if entry_words(mid)[0] <= p.entry_words:
            lo = mid
        else:
            hi = mid - 1
    words, image = entry_words(lo)
    assert words == p.entry_words, f"the entries fill {words} of {p.entry_words} words"
    writes = memory_writes(image, info)
    extent = {t: max(w.address + len(w.items) for w in writes if w.target == t) for t in Target}
    assert extent[Target.POINTER] == p.pointer_depth
    assert extent[Target.PARAM] == p.slot_depth
    assert extent[Target.LAYER] == p.layer_depth
    assert all(layer.slots == p.bank_depth for layer in image.layers)
    assert all(layer.physical_columns == side for layer in image.layers)
    # One more nonzero no longer fits.
    try:
        fit_model(model(lo + 1), info, balance=False)
    except ImageTooLargeError as error:
        assert "entries need" in str(error)
    else:
        raise AssertionError("a model past the entry memory was accepted")
    xs = np.concatenate([bench.inputs(image, 1, 0.0), bench.inputs(image, 1, 0.5)])
    await bench.load_and_check(image, xs, f"the largest model: {p.layer_depth} layers of "
                                          f"{side}x{side}, last with {lo} nonzeros, "
                                          f"{words} entry words per lane")
