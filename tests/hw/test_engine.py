"""The engine over its byte streams: load real packed models, run them, compare with golden."""

from __future__ import annotations

import random
import struct
from collections import deque

import numpy as np
import pytest
from amaranth.sim import Simulator

from sparsemac.hw.engine import Engine
from sparsemac.hw.parameters import EngineParameters
from sparsemac.sw.golden import run_golden
from sparsemac.sw import protocol as proto
from sparsemac.sw.protocol import Opcode, Status, Target

from hw_helpers import pack, random_input, random_layer


class Host:
    """A byte producer and a response consumer with random gaps, and a command helper."""

    def __init__(self, engine, seed, limit=200_000):
        self.engine = engine
        self.rng = random.Random(seed)
        self.tx = deque()
        self.rx = bytearray()
        self.limit = limit

    async def producer(self, ctx):
        i = self.engine.i
        while True:
            if self.tx and self.rng.random() < 0.7:
                ctx.set(i.payload, self.tx[0])
                ctx.set(i.valid, 1)
                while True:
                    *_, ready = await ctx.tick().sample(i.ready)
                    if ready:
                        break
                self.tx.popleft()
                ctx.set(i.valid, 0)
            else:
                await ctx.tick()

    async def consumer(self, ctx):
        o = self.engine.o
        while True:
            ready = self.rng.random() < 0.7
            ctx.set(o.ready, ready)
            *_, valid, payload = await ctx.tick().sample(o.valid, o.payload)
            if ready and valid:
                self.rx.append(payload)

    async def command(self, ctx, frame: bytes) -> proto.Response:
        self.tx.extend(frame)
        for _ in range(self.limit):
            responses, rest = proto.split_responses(self.rx)
            if responses:
                assert len(responses) == 1 and not rest, f"extra response bytes {bytes(self.rx)!r}"
                self.rx.clear()
                assert not self.tx, "the engine answered before taking the whole command"
                return responses[0]
            await ctx.tick()
        raise AssertionError(f"no response to {frame[:8]!r} (seed {self.rng})")

    async def expect(self, ctx, frame, status=Status.OK):
        response = await self.command(ctx, frame)
        assert response.status == status, \
            f"{frame[:12]!r}: status {response.status!r}, expected {status!r}"
        return response.payload


def simulate(engine, bench, seed):
    host = Host(engine, seed)
    sim = Simulator(engine)
    sim.add_clock(1e-6)
    sim.add_testbench(host.producer, background=True)
    sim.add_testbench(host.consumer, background=True)

    async def main(ctx):
        await bench(ctx, host)

    sim.add_testbench(main)
    sim.run()


def check_model(params, layers, inputs, seed, **pack_kwargs):
    engine = Engine(params)
    image = pack(layers, params, **pack_kwargs)
    golden = run_golden(image, np.array(inputs), timing=engine.timing)

    async def bench(ctx, host):
        info = proto.BuildInfo.from_bytes(await host.expect(ctx, proto.info_command()))
        assert info == engine.build_info
        for command in proto.load_commands(image, info, max_payload=64):
            written = await host.expect(ctx, command)
            assert struct.unpack("<I", written)[0] == (len(command) - 12) // \
                proto.item_bytes(Target(command[6]), params.word_bits)
        last = image.layers[-1]
        for index, x in enumerate(inputs):
            await host.expect(ctx, proto.write_input_command(np.asarray(x), params.activation_bits))
            cycles, = struct.unpack("<I", await host.expect(
                ctx, proto.run_command(0, len(image.layers))))
            payload = await host.expect(ctx, proto.read_output_command(last.lanes * last.slots))
            out = proto.outputs_in_row_order(
                proto.decode_outputs(payload, params.activation_bits), last)
            assert np.array_equal(out, golden.outputs[index]), \
                f"seed {seed}, input {index}: {out} != golden {golden.outputs[index]}"
            assert cycles == golden.cycles[index], \
                f"seed {seed}, input {index}: {cycles} cycles, golden {golden.cycles[index]}"
            status = proto.RunStatus.from_bytes(await host.expect(ctx, proto.status_command()))
            assert status.has_result and status.cycles == cycles
            assert status.result_count == last.lanes * last.slots

    simulate(engine, bench, seed)


@pytest.mark.parametrize("seed", range(2))
def test_two_layer_model(seed):
    rng = np.random.default_rng(200 + seed)
    params = EngineParameters(lanes=4, word_bits=16, max_run_bits=3, bank_depth=8)
    layers = [random_layer(rng, "fc1", rows=12, columns=10, density=0.3),
              random_layer(rng, "fc2", rows=5, columns=12, density=0.5, relu=False)]
    inputs = [random_input(rng, 10) for _ in range(2)]
    check_model(params, layers, inputs, seed)


def test_sixteen_bit_activations():
    rng = np.random.default_rng(7)
    params = EngineParameters(lanes=2, activation_bits=16, accumulator_bits=40, word_bits=32,
                              weight_bits=12, max_run_bits=5, bank_depth=8)
    layers = [random_layer(rng, "fc", rows=6, columns=7, density=0.5, weight_bits=12,
                           activation_bits=16)]
    inputs = [random_input(rng, 7, activation_bits=16) for _ in range(2)]
    check_model(params, layers, inputs, 7)


def test_errors_are_answered():
    params = EngineParameters(lanes=2, bank_depth=4, layer_depth=2, slot_depth=8,
                              pointer_depth=16, entry_words=16)
    engine = Engine(params)
    rng = np.random.default_rng(3)
    layer = random_layer(rng, "fc", rows=4, columns=5, density=0.5)
    image = pack([layer], params)

    async def bench(ctx, host):
        info = engine.build_info
        row = proto.LayerRow(columns=5, groups=3, slots=2, value_bits=8, run_bits=2,
                             relu=True, entry_base=0, pointer_base=0, param_base=0)
        await host.expect(ctx, b"\x00\x13" + proto.frame(0x7E, b"abc"), Status.BAD_OPCODE)
        await host.expect(ctx, proto.frame(Opcode.INFO, b"x"), Status.BAD_LENGTH)
        # Lengths past MAX_PAYLOAD are answered at once, whichever of the four bytes is set
        # (the engine keeps MAX_PAYLOAD's 21 bits and a flag for the rest).
        for length in (proto.MAX_PAYLOAD + 1, 1 << 21, 1 << 24, (1 << 32) - 1,
                       (1 << 24) + 2):
            await host.expect(ctx, struct.pack("<BBI", proto.COMMAND_SYNC, Opcode.WRITE,
                                               length), Status.BAD_LENGTH)
        await host.expect(ctx, struct.pack("<BBI", proto.COMMAND_SYNC, Opcode.RUN,
                                           (1 << 24) + 2), Status.BAD_LENGTH)
        await host.expect(ctx, proto.read_output_command(1), Status.NO_RESULT)
        await host.expect(ctx, proto.run_command(0, 1), Status.NOT_LOADED)
        await host.expect(ctx, proto.run_command(0, 0), Status.BAD_VALUE)
        await host.expect(ctx, proto.run_command(1, 2), Status.BAD_VALUE)
        await host.expect(ctx, proto.write_command(7, 0, 0, b"\0" * 4), Status.BAD_TARGET)
        await host.expect(ctx, proto.write_command(Target.POINTER, 2, 0, b"\0" * 4),
                          Status.BAD_ADDRESS)
        written = await host.expect(ctx, proto.write_command(Target.POINTER, 1, 14, b"\0" * 12),
                                    Status.BAD_ADDRESS)
        assert written == struct.pack("<I", 2)
        # Addresses whose low bits alone are within the memory (the engine keeps the bits the
        # deepest memory needs and a flag for the rest): nothing is written.
        for address in (32, 1 << 16, 1 << 31, (1 << 32) - 16):
            written = await host.expect(ctx, proto.write_command(Target.ENTRY, 0, address,
                                                                 b"\0" * 8),
                                        Status.BAD_ADDRESS)
            assert written == struct.pack("<I", 0)
        written = await host.expect(ctx, proto.write_command(Target.POINTER, 0, 0, b"\0" * 6),
                                    Status.BAD_LENGTH)
        assert written == struct.pack("<I", 1)
        # A WRITE of no items writes none, and the next command is read from its end.
        written = await host.expect(ctx, proto.write_command(Target.POINTER, 0, 0, b""))
        assert written == struct.pack("<I", 0)
        await host.expect(ctx, proto.run_command(0, 0), Status.BAD_VALUE)
        await host.expect(ctx, proto.write_command(Target.POINTER, 0, 0,
                                                   struct.pack("<I", 1 << 30)), Status.BAD_VALUE)
        too_wide = proto.encode_row_params(np.array([1 << 40]), np.array([1]), np.array([0]))
        await host.expect(ctx, proto.write_command(Target.PARAM, 0, 0, too_wide),
                          Status.BAD_VALUE)
        bad_shift = proto.encode_row_params(np.array([1]), np.array([1]), np.array([64]))
        await host.expect(ctx, proto.write_command(Target.PARAM, 0, 0, bad_shift),
                          Status.BAD_VALUE)
        for bad in (dict(value_bits=9), dict(run_bits=5), dict(groups=2), dict(slots=5),
                    dict(columns=9, groups=5), dict(pointer_base=11), dict(relu=2)):
            fields = {**row.__dict__, **bad}
            await host.expect(ctx, proto.write_command(Target.LAYER, 0, 0,
                                                       proto.LayerRow(**fields).to_bytes()),
                              Status.BAD_VALUE)
        await host.expect(ctx, proto.write_command(Target.LAYER, 1, 0, row.to_bytes()),
                          Status.BAD_ADDRESS)
        await host.expect(ctx, proto.frame(Opcode.WRITE_INPUT, b"\0" * 9), Status.BAD_LENGTH)
        # A real model loads and runs after all of that.
        for command in proto.load_commands(image, info):
            await host.expect(ctx, command)
        await host.expect(ctx, proto.run_command(0, 1), Status.NO_INPUT)
        x = random_input(rng, 5)
        await host.expect(ctx, proto.write_input_command(x, 8))
        await host.expect(ctx, proto.run_command(0, 1))
        await host.expect(ctx, proto.read_output_command(5), Status.BAD_ADDRESS)
        # A count whose low bits alone are within the result (the check's two halves).
        await host.expect(ctx, proto.read_output_command(1 << 20), Status.BAD_ADDRESS)
        first = await host.expect(ctx, proto.read_output_command(4))
        # A soft reset keeps the model but forgets the input and the result.
        await host.expect(ctx, proto.reset_command())
        await host.expect(ctx, proto.read_output_command(1), Status.NO_RESULT)
        await host.expect(ctx, proto.run_command(0, 1), Status.NO_INPUT)
        await host.expect(ctx, proto.write_input_command(x, 8))
        await host.expect(ctx, proto.run_command(0, 1))
        assert await host.expect(ctx, proto.read_output_command(4)) == first
        golden = run_golden(image, x, timing=engine.timing).outputs[0]
        out = proto.outputs_in_row_order(proto.decode_outputs(first, 8), image.layers[0])
        assert np.array_equal(out, golden)

    simulate(engine, bench, 3)


def test_pruned_float_model_and_a_later_layer_alone():
    """A magnitude-pruned float model, quantized by sw/, then its second layer run alone."""
    from sparsemac.sw.format import pack_model
    from sparsemac.sw.golden import layer_cycles, layer_matrix
    from sparsemac.sw.model_io import DenseLayer, DenseModel
    from sparsemac.sw.numerics import requantize
    from sparsemac.sw.prune import magnitude_mask
    from sparsemac.sw.quantize import quantize_activations, quantize_model

    rng = np.random.default_rng(31)
    dense = []
    for name, (rows, columns), relu in (("fc1", (20, 12), True), ("fc2", (6, 20), False)):
        weight = rng.standard_normal((rows, columns))
        weight = np.where(magnitude_mask(weight, 0.8), weight, 0.0)
        dense.append(DenseLayer(name, weight, rng.standard_normal(rows) * 0.1, relu))
    model = quantize_model(DenseModel(tuple(dense)), rng.standard_normal((64, 12)))
    params = EngineParameters(lanes=4, max_run_bits=4, bank_depth=8)
    image = pack_model(model, lanes=4, max_run_bits=4)
    engine = Engine(params)
    x = quantize_activations(rng.standard_normal((2, 12)), model.input_scale, 8)
    x[:, ::3] = 0
    golden = run_golden(image, x, timing=engine.timing)
    second = image.layers[1]
    x2 = random_input(rng, second.physical_columns)
    acc2 = layer_matrix(second) @ x2 + second.bias.reshape(-1)
    out2 = requantize(acc2, second.multiplier.reshape(-1), second.shift.reshape(-1),
                      relu=second.relu, activation_bits=8)
    cycles2 = layer_cycles(second, x2[None, :], engine.timing)[0][0]

    async def bench(ctx, host):
        for command in proto.load_commands(image, engine.build_info):
            await host.expect(ctx, command)
        count = second.lanes * second.slots
        for index in range(2):
            await host.expect(ctx, proto.write_input_command(x[index], 8))
            cycles, = struct.unpack("<I", await host.expect(ctx, proto.run_command(0, 2)))
            payload = await host.expect(ctx, proto.read_output_command(count))
            out = proto.outputs_in_row_order(proto.decode_outputs(payload, 8), second)
            assert np.array_equal(out, golden.outputs[index]), f"input {index}"
            assert cycles == golden.cycles[index], f"input {index}"
        # Layer-table row 1 alone, on an input given in its physical order.
        await host.expect(ctx, proto.write_input_command(x2, 8))
        cycles, = struct.unpack("<I", await host.expect(ctx, proto.run_command(1, 1)))
        payload = await host.expect(ctx, proto.read_output_command(count))
        # Physical output position s * N + l holds lane l, slot s: row lane * slots + slot.
        physical = proto.decode_outputs(payload, 8)
        expect = out2.reshape(second.lanes, second.slots).T.reshape(-1)
        assert np.array_equal(physical, expect)
        assert cycles == cycles2

    simulate(engine, bench, 31)


def test_edge_cases_over_bytes():
    """An all-zero layer (its outputs are its biases), then one with a single nonzero in its
    last row and column; shift 0 and extreme multipliers; extreme and all-zero inputs."""
    from sparsemac.sw.quantize import QuantLayer

    params = EngineParameters(lanes=2, max_run_bits=1, bank_depth=16)
    zero = QuantLayer("zero", np.zeros((9, 5), dtype=np.int64), np.arange(9) * 40 - 150,
                      np.full(9, 40000), np.full(9, 14), True, 8)
    weight = np.zeros((4, 9), dtype=np.int64)
    weight[3, 8] = -128
    one = QuantLayer("one", weight, np.array([0, 5, -5, 1]), np.array([65535, 1, 32768, 65535]),
                     np.array([0, 0, 1, 16]), False, 8)
    inputs = [np.full(5, -128), np.full(5, 127), np.zeros(5, dtype=np.int64)]
    check_model(params, [zero, one], inputs, 41, run_bits=1, balance=False)
