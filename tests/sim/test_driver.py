"""The host driver against the engine in Verilator: bit-exact and cycle-exact to the golden
model, tiling for models larger than the build, and every way a link can fail."""

import os
import pty
import threading
import time
import tty
from dataclasses import replace

import numpy as np
import pytest

from sparsemac.sim.transport import SimulatorTransport, engine_build_info, parameters_for
from sparsemac.sw import pack_model, run_golden
from sparsemac.sw import protocol
from sparsemac.sw.driver import Device, EngineError, ImageTooLargeError, LinkError, SerialTransport
from sparsemac.sw.protocol import Status

from factories import random_inputs, random_model

#: A model and the engine built for exactly it.
MODEL_SIZES = [48, 40, 24, 10]


@pytest.fixture(scope="module")
def model_image():
    rng = np.random.default_rng(2024)
    return pack_model(random_model(rng, MODEL_SIZES, 0.25), lanes=4)


@pytest.fixture(scope="module")
def engine_params(model_image):
    return parameters_for(model_image)


@pytest.fixture
def device(engine_params):
    with Device(SimulatorTransport.start(engine_params), timeout=20) as device:
        yield device


def test_whole_model_is_bit_and_cycle_exact(device, model_image, rng):
    assert len(device.load(model_image)) == 1
    x = random_inputs(rng, 40, MODEL_SIZES[0], zero_fraction=0.4)
    result = device.run(x)
    golden = run_golden(model_image, x, device.info().timing)
    assert np.array_equal(result.outputs, golden.outputs)
    assert np.array_equal(result.cycles, golden.cycles)
    # The model stays loaded: a second batch, an all-zero and an extreme vector.
    edge = np.stack([np.zeros(MODEL_SIZES[0], int), np.full(MODEL_SIZES[0], -128),
                     np.full(MODEL_SIZES[0], 127)])
    again = device.run(edge)
    golden = run_golden(model_image, edge, device.info().timing)
    assert np.array_equal(again.outputs, golden.outputs)
    assert np.array_equal(again.cycles, golden.cycles)


def test_reset_keeps_the_model(device, model_image, rng):
    device.load(model_image)
    x = random_inputs(rng, 3, MODEL_SIZES[0])
    first = device.run(x)
    device.reset()
    assert not device.status().has_result
    assert np.array_equal(device.run(x).outputs, first.outputs)


def test_layers_larger_than_the_build_run_in_tiles(model_image, engine_params, rng):
    # A build with a quarter of the entry memory and one layer-table row: the model must run
    # layer by layer, and its largest layer in row tiles.
    small = replace(engine_params, entry_words=max(2, engine_params.entry_words // 8 * 2),
                    layer_depth=1)
    with Device(SimulatorTransport.start(small), timeout=20) as device:
        pieces = device.load(model_image)
        assert len(pieces) > len(model_image.layers)             # some layer was row-tiled
        assert any(piece.rows is not None for piece in pieces)
        x = random_inputs(rng, 12, MODEL_SIZES[0])
        result = device.run(x)
        assert np.array_equal(result.outputs, run_golden(model_image, x).outputs)
        assert np.array_equal(result.cycles, device.golden(x).cycles)


def test_images_that_cannot_fit_are_refused(device, rng):
    other_lanes = pack_model(random_model(rng, [16, 8], 0.5), lanes=2)
    with pytest.raises(ImageTooLargeError, match="packed for 2 lanes, the engine has 4"):
        device.load(other_lanes)
    wide = pack_model(random_model(rng, [16, 8], 0.5, activation_bits=16), lanes=4)
    with pytest.raises(ImageTooLargeError, match="16-bit, the engine's 8-bit"):
        device.load(wide)


def test_engine_error_statuses(device, model_image):
    cases = [
        (protocol.frame(0x7F), Status.BAD_OPCODE),
        (protocol.frame(protocol.Opcode.RUN, b"\0"), Status.BAD_LENGTH),
        (protocol.write_command(9, 0, 0, b""), Status.BAD_TARGET),
        (protocol.write_command(protocol.Target.POINTER, 99, 0, b"\0" * 4), Status.BAD_ADDRESS),
        (protocol.run_command(0, 0), Status.BAD_VALUE),
        (protocol.run_command(0, 1), Status.NOT_LOADED),
        (protocol.read_output_command(1), Status.NO_RESULT),
    ]
    for frame, status in cases:
        with pytest.raises(EngineError) as caught:
            device.command(frame, "a bad command")
        assert caught.value.status == status
    device.load(model_image)
    device.reset()
    with pytest.raises(EngineError, match="NO_INPUT"):
        device.command(protocol.run_command(0, 1), "RUN with no input")
    # After all of that the engine still answers correctly.
    assert device.info().lanes == 4


def test_an_error_in_a_pipelined_batch_leaves_the_link_in_step(device):
    commands = [(protocol.status_command(), "STATUS", 5), (protocol.frame(0x7F), "opcode 7F", 5),
                (protocol.reset_command(), "RESET", 5), (protocol.reset_command(), "RESET", 5)]
    answers = device.exchange(commands)
    assert len(next(answers).payload) > 0                 # the STATUS before the bad command
    with pytest.raises(EngineError, match="opcode 7F: BAD_OPCODE"):
        next(answers)
    # The two (empty) RESET answers after the error were read off the link: INFO gets its own.
    assert device.info().lanes == 4
    assert not device.status().has_result


def test_killed_simulator_is_a_clear_error_not_a_hang(engine_params, model_image, rng):
    transport = SimulatorTransport.start(engine_params)
    device = Device(transport, timeout=5, run_timeout=5)
    device.load(model_image)
    transport.process.kill()
    started = time.monotonic()
    with pytest.raises(LinkError, match="Simulated engine"):
        device.run(random_inputs(rng, 4, MODEL_SIZES[0]))
    assert time.monotonic() - started < 10


class _Junk:
    """A transport whose peer answers with bytes that are not response frames."""
    def write(self, data, timeout=None): pass
    def read(self, n, timeout=None): return b"\x00" * n
    def close(self): pass


def test_confused_link_is_reported():
    with pytest.raises(LinkError, match="Confused link"):
        Device(_Junk()).info()


class _Silent(_Junk):
    def read(self, n, timeout=None):
        raise LinkError(f"no answer within {timeout} s")


def test_dead_link_is_reported():
    with pytest.raises(LinkError, match="no answer"):
        Device(_Silent(), timeout=0.1).info()


def _bridge(master_fd: int, transport: SimulatorTransport, stop: threading.Event) -> None:
    """Play the board: bytes from the pseudo-terminal go to the simulated engine and back."""
    os.set_blocking(master_fd, False)
    while not stop.is_set():
        try:
            data = os.read(master_fd, 65536)
        except BlockingIOError:
            data = b""
        except OSError:
            return
        if data:
            transport.write(data)
        reply = transport.process.read_available()
        if reply:
            os.write(master_fd, reply)
        if not data and not reply:
            time.sleep(0.001)


def test_serial_transport_over_a_pseudo_terminal(engine_params, model_image, rng):
    master, slave = pty.openpty()
    tty.setraw(slave)
    engine = SimulatorTransport.start(engine_params)
    stop = threading.Event()
    peer = threading.Thread(target=_bridge, args=(master, engine, stop), daemon=True)
    peer.start()
    try:
        with Device(SerialTransport(os.ttyname(slave)), timeout=20) as device:
            device.load(model_image)
            x = random_inputs(rng, 10, MODEL_SIZES[0])
            result = device.run(x)
            golden = run_golden(model_image, x, device.info().timing)
            assert np.array_equal(result.outputs, golden.outputs)
            assert np.array_equal(result.cycles, golden.cycles)
    finally:
        stop.set()
        peer.join(5)
        engine.close()
        os.close(master)
        os.close(slave)


def test_serial_transport_reports_a_missing_port(tmp_path):
    with pytest.raises(LinkError, match="Cannot open serial port"):
        SerialTransport(str(tmp_path / "ttyNOPE"))


def test_parameters_for_fit_exactly(model_image, engine_params):
    info = engine_build_info(engine_params)
    protocol.memory_writes(model_image, info)                 # fits
    tighter = replace(engine_params, pointer_depth=engine_params.pointer_depth - 1)
    with pytest.raises(ImageTooLargeError, match="column pointers"):
        protocol.memory_writes(model_image, engine_build_info(tighter))


def test_wider_run_fields_are_repacked_whole(model_image, engine_params, rng):
    # 1-bit runs need many more fillers: give the build the entry memory for them.
    narrow = replace(engine_params, max_run_bits=1, word_bits=16,
                     entry_words=4 * engine_params.entry_words)
    with Device(SimulatorTransport.start(narrow), timeout=20) as device:
        pieces = device.load(model_image)
        assert len(pieces) == 1 and pieces[0].image.max_run_bits == 1
        x = random_inputs(rng, 5, MODEL_SIZES[0])
        result = device.run(x)
        assert np.array_equal(result.outputs, run_golden(model_image, x).outputs)
        assert np.array_equal(result.cycles, device.golden(x).cycles)
