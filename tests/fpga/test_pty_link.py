"""The host link without a board: the board top's engine, FIFOs and UART in Verilator, its
UART pins bit-banged by tests/fpga/uart_harness.cpp onto a pseudo-terminal, and the host
driver's SerialTransport loading a model and running inferences over that pty, bit-exact and
cycle-exact against the golden model."""

import numpy as np
import pytest

from sparsemac.sim.transport import engine_build_info, longest_run_bound, parameters_for
from sparsemac.sw import pack_model, run_golden
from sparsemac.sw.driver import Device, SerialTransport

from factories import random_inputs, random_model
from pty_link import PtyLink

MODEL_SIZES = [40, 32, 10]
#: Cycles per UART bit: small, so the simulated line is fast (the board's is 14 to 33).
DIVISOR = 6

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def image():
    return pack_model(random_model(np.random.default_rng(55), MODEL_SIZES, 0.3), lanes=2)


@pytest.fixture(scope="module")
def link(image):
    params = parameters_for(image)
    idle = longest_run_bound(params, engine_build_info(params)) + 20 * DIVISOR
    link = PtyLink.start(params, DIVISOR, idle_cycles=idle)
    yield link
    stderr = link.close()
    assert "framing errors" not in stderr, stderr


def test_model_over_the_pty_is_bit_exact(link, image, rng):
    with Device(SerialTransport(link.port, baudrate=3_000_000), timeout=30,
                run_timeout=30) as device:
        info = device.info()
        assert info.lanes == image.lanes
        assert len(device.load(image)) == 1
        x = random_inputs(rng, 20, MODEL_SIZES[0], zero_fraction=0.4)
        x[0] = 0                                          # all-zero input
        x[1] = -128                                       # extreme values
        x[2] = 127
        result = device.run(x)
        golden = run_golden(image, x, info.timing)
        assert np.array_equal(result.outputs, golden.outputs)
        assert np.array_equal(result.cycles, golden.cycles)
        status = device.status()
        assert status.has_result
    assert link.returncode is None, "the harness exited"
