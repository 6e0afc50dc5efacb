"""The engine on magnitude-pruned layers and multi-layer models, bit- and cycle-exact.

Run by ``test_engine_cocotb.py`` on every build; each test loads toolchain-packed images over
the byte protocol with random gaps on ``i`` and random back-pressure on ``o``.
"""

from __future__ import annotations

import cocotb
import numpy as np

from sparsemac.sw import run_golden
from sparsemac.sw.format import ModelImage
from sparsemac.sw.protocol import ImageTooLargeError, Status, read_output_command, run_command
from sparsemac.sw.quantize import QuantModel

from cocotb_engine import EngineBench, fit_model, pruned_model, seed_note
from factories import random_layer


def _largest_fitting(bench: EngineBench, make) -> ModelImage:
    """The first of shrinking sizes whose model fits the build."""
    side = bench.params.lanes * bench.params.bank_depth
    for fraction in (1.0, 0.75, 0.5, 0.375, 0.25, 0.125):
        rows = max(1, int(side * fraction))
        columns = max(1, int(side * fraction) - 3)       # not a multiple of the lanes
        try:
            return fit_model(make(rows, columns), bench.info)
        except ImageTooLargeError:
            continue
    raise AssertionError("no size fits the build")


@cocotb.test()
async def info_and_idle_status(dut):
    """INFO reports the build; after reset there is no input and no result."""
    bench = await EngineBench.start(dut, 1, in_pause=0.3, out_pause=0.5)
    await bench.check_info()
    status = await bench.status()
    assert not status.has_input and not status.has_result and status.result_count == 0
    await bench.quiet()


@cocotb.test()
async def pruned_layers(dut):
    """Real-shaped layers magnitude-pruned at 50 to 99% sparsity, inputs with zeros."""
    bench = await EngineBench.start(dut, 2, in_pause=0.15, out_pause=0.4)
    p = bench.params
    for sparsity in (0.5, 0.85, 0.99):
        def make(rows, columns):
            return pruned_model(bench.np_rng, [columns, rows], [sparsity],
                                weight_bits=p.weight_bits, activation_bits=p.activation_bits)
        image = _largest_fitting(bench, make)
        layer = image.layers[0]
        xs = np.concatenate([bench.inputs(image, 1, z) for z in (0.0, 0.5, 0.9)])
        await bench.load_and_check(
            image, xs, f"{layer.rows}x{layer.columns} at {sparsity:.0%} sparsity, "
                       f"{layer.value_bits}-bit weights, {layer.run_bits}-bit runs")


@cocotb.test()
async def multi_layer_model(dut):
    """A pruned MLP filling the layer table, then one of mixed weight widths and run widths."""
    bench = await EngineBench.start(dut, 3, in_pause=0.1, out_pause=0.3)
    p = bench.params
    layers = p.layer_depth
    side = p.lanes * p.bank_depth

    def make(rows, columns):
        sizes = [columns] + [max(1, rows - 5 * k) for k in range(layers)]
        sparsities = [0.9, 0.75, 0.6][:layers]
        return pruned_model(bench.np_rng, sizes, sparsities, weight_bits=p.weight_bits,
                            activation_bits=p.activation_bits)
    image = _largest_fitting(bench, make)
    xs = bench.inputs(image, 3, 0.4)
    await bench.load_and_check(image, xs, f"pruned {len(image.layers)}-layer MLP "
                                          f"{[image.input_size] + [l.rows for l in image.layers]}")

    # Per-layer weight widths from 4 bits to the build's, and forced run widths.
    rng = bench.np_rng
    widths = np.linspace(4, p.weight_bits, layers).round().astype(int)[::-1]
    # Many lanes make long pointer lists to load: half the side keeps wide builds quick.
    sizes = [min(side - 1, 67)] + [max(2, side // (k + 2) + 1) for k in range(layers)]
    model = QuantModel(tuple(
        random_layer(rng, out, inp, 0.15, name=f"fc{k}", weight_bits=int(widths[k]),
                     relu=k % 2 == 0, bias_range=200)
        for k, (inp, out) in enumerate(zip(sizes, sizes[1:]))), p.activation_bits)
    for run_bits in sorted({1, p.max_run_bits}):
        try:
            image = fit_model(model, bench.info, run_bits=run_bits)
        except ImageTooLargeError:
            continue
        xs = bench.inputs(image, 2, 0.3)
        await bench.load_and_check(image, xs, f"{layers}-layer model, weights "
                                              f"{widths.tolist()} bits, {run_bits}-bit runs")

    # A run of the first layer only keeps the input (docs/protocol.md 3.4): RUN again on it.
    if layers >= 2:
        first = ModelImage(image.layers[:1], image.activation_bits, image.input_scale)
        x = xs[0]
        outputs, cycles = await bench.run(first, x, count=1)
        golden = run_golden(first, x, bench.info.timing)
        assert np.array_equal(outputs, golden.outputs[0]) and cycles == golden.cycles[0], seed_note()
        assert (await bench.status()).has_input
        bench.send(run_command(0, layers))
        ran = await bench.response("RUN on the kept input")
        assert ran.status == Status.OK, seed_note()
        full = run_golden(image, x, bench.info.timing)
        assert int.from_bytes(ran.payload, "little") == full.cycles[0], seed_note()
        status = await bench.status()
        assert not status.has_input and status.has_result, seed_note()
        assert status.cycles == full.cycles[0]
        assert status.result_count == p.lanes * image.layers[-1].slots
        await bench.expect(run_command(0, layers), Status.NO_INPUT, "RUN after a multi-layer run")
        await bench.expect(read_output_command(1), Status.OK, "READ_OUTPUT still has the result")
