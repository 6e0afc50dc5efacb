"""Smoke test of the real engine (sparsemac.hw.engine.Engine) through the pipe harness.

Only the transport is under test here: INFO, STATUS and a refused opcode go through
HarnessProcess and come back as protocol frames that sw/protocol.py parses. The engine's
numerics are tested by tests/hw and by the host driver's tests.
"""

import struct

import pytest

from sparsemac.sim.build import build_harness, convert
from sparsemac.sim.process import HarnessProcess

engine = pytest.importorskip("sparsemac.hw.engine")
protocol = pytest.importorskip("sparsemac.sw.protocol")

PARAMS = {"lanes": 2}


@pytest.fixture(scope="module")
def engine_harness():
    return build_harness(convert(engine.Engine, PARAMS))


def read_frame(harness: HarnessProcess):
    header = harness.read(6, timeout=30)
    _, _, length = struct.unpack("<BBI", header)
    return protocol.parse_response(header + harness.read(length, timeout=30))


def test_engine_answers_info_and_status(engine_harness):
    with HarnessProcess(engine_harness) as harness:
        harness.write(protocol.info_command())
        info = protocol.BuildInfo.from_bytes(read_frame(harness).check("INFO"))
        assert info.lanes == PARAMS["lanes"]
        harness.write(protocol.status_command())
        status = protocol.RunStatus.from_bytes(read_frame(harness).check("STATUS"))
        assert not status.has_result
        harness.write(protocol.frame(0x7F))
        assert read_frame(harness).status == protocol.Status.BAD_OPCODE
        assert harness.close() == b""


def test_engine_under_random_stalls(engine_harness):
    commands = (protocol.info_command() + protocol.status_command()) * 20
    with HarnessProcess(engine_harness, in_stall=40, out_stall=60, seed=7) as harness:
        harness.write(commands)
        responses, rest = protocol.split_responses(harness.close())
    assert rest == b"" and len(responses) == 40
    assert all(r.status == protocol.Status.OK for r in responses)
