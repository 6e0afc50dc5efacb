"""The host link without a board: the board top's engine, FIFOs and UART in Verilator, its
UART pins bit-banged by tests/fpga/uart_harness.cpp onto a pseudo-terminal, and the host
driver's SerialTransport loading a model and running inferences over that pty, bit-exact and
cycle-exact against the golden model."""

from dataclasses import asdict, replace

import numpy as np
import pytest

from sparsemac.hw import EngineParameters
from sparsemac.sim.transport import engine_build_info, longest_run_bound, parameters_for
from sparsemac.sw import pack_model
from sparsemac.sw.driver import Device, SerialTransport

from factories import edge_inputs, random_inputs, random_model, run_against_golden
from pty_link import PtyLink

MODEL_SIZES = [40, 32, 10]
#: A layer whose answers (6 + 10 + 6 + 128 bytes a vector) far outrun its commands (40 bytes):
#: sending a batch's commands without flow control overflows the link's receive FIFO.
WIDE_SIZES = [16, 128]
#: Cycles per UART bit: small, so the simulated line is fast (the boards use 14 and 33).
DIVISOR = 6

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def image():
    return pack_model(random_model(np.random.default_rng(55), MODEL_SIZES, 0.3), lanes=2)


@pytest.fixture(scope="module")
def wide_image():
    return pack_model(random_model(np.random.default_rng(56), WIDE_SIZES, 0.5), lanes=2)


@pytest.fixture(scope="module")
def link(image, wide_image):
    # One build that holds either image, with compact lanes as on the iCEBreaker.
    first, second = asdict(parameters_for(image)), asdict(parameters_for(wide_image))
    params = replace(EngineParameters(**{name: max(first[name], second[name]) for name in first}),
                     compact=True)
    idle = longest_run_bound(params, engine_build_info(params)) + 20 * DIVISOR
    link = PtyLink.start(params, DIVISOR, idle_cycles=idle)
    yield link
    stderr = link.close()
    assert "framing errors" not in stderr, stderr


def test_model_over_the_pty_is_bit_exact(link, image, rng):
    with Device(SerialTransport(link.port, baudrate=3_000_000), timeout=30,
                run_timeout=30) as device:
        assert device.info().lanes == image.lanes
        assert len(device.load(image)) == 1
        run_against_golden(device, image, edge_inputs(rng, 20, MODEL_SIZES[0], zero_fraction=0.4))
        status = device.status()
        assert status.has_result
    assert link.returncode is None, "the harness exited"


def test_answers_longer_than_commands_do_not_overflow_the_link(link, wide_image, rng):
    """64 vectors through a layer whose answers outrun its commands: the device keeps the
    command bytes in flight within the board's receive FIFO, so no byte is lost."""
    transport = SerialTransport(link.port, baudrate=3_000_000)
    assert transport.window == 512                         # SerialEngine's receive FIFO
    with Device(transport, timeout=30, run_timeout=30) as device:
        device.load(wide_image)
        run_against_golden(device, wide_image,
                           random_inputs(rng, 64, WIDE_SIZES[0], zero_fraction=0.2))
    assert link.returncode is None, "the harness exited"
