"""The pipe harness and its Python transport, HarnessProcess, on the stand-in AddEcho."""

import os
import random
import signal
import time
from pathlib import Path

import pytest

from sparsemac.sim.process import HarnessProcess, SimulatorDied, SimulatorTimeout

from conftest import ADD_ECHO

SEED = 20261122


def expected(data: bytes) -> bytes:
    return bytes((b + ADD_ECHO["add"]) % 256 for b in data)


def test_echo_interleaved(add_echo_harness):
    rng = random.Random(SEED)
    with HarnessProcess(add_echo_harness) as harness:
        for _ in range(50):
            data = rng.randbytes(rng.randint(1, 5000))
            harness.write(data)
            assert harness.read(len(data)) == expected(data), f"seed {SEED}"
        assert harness.close() == b""
        assert harness.returncode == 0


@pytest.mark.parametrize("in_stall, out_stall", [(50, 0), (0, 80), (30, 60)])
def test_echo_random_stalls(add_echo_harness, in_stall, out_stall):
    rng = random.Random(SEED + in_stall + out_stall)
    data = rng.randbytes(200_000)
    with HarnessProcess(add_echo_harness, in_stall=in_stall, out_stall=out_stall, seed=SEED) as harness:
        harness.write(data)
        assert harness.close() == expected(data), f"seed {SEED}"


def test_large_write_without_reading_does_not_deadlock(add_echo_harness):
    # Far more than the pipe buffers hold: the reader thread must keep draining stdout.
    data = random.Random(SEED).randbytes(8 << 20)
    with HarnessProcess(add_echo_harness) as harness:
        started = time.monotonic()
        harness.write(data, timeout=30)
        assert harness.read(len(data), timeout=30) == expected(data)
        print(f"8 MiB echoed in {time.monotonic() - started:.2f} s")


def test_read_timeout_keeps_bytes(add_echo_harness):
    with HarnessProcess(add_echo_harness) as harness:
        harness.write(b"abc")
        started = time.monotonic()
        with pytest.raises(SimulatorTimeout, match="produced 3 of 4 bytes"):
            harness.read(4, timeout=0.5)
        assert time.monotonic() - started < 2
        assert harness.read(3) == expected(b"abc")


def test_killed_mid_run_is_reported(add_echo_harness):
    with HarnessProcess(add_echo_harness) as harness:
        harness.write(b"x" * 1000)
        harness.read(10)
        os.kill(harness.pid, signal.SIGKILL)
        started = time.monotonic()
        with pytest.raises(SimulatorDied, match="killed by signal SIGKILL"):
            harness.read(1 << 20, timeout=30)
        with pytest.raises(SimulatorDied, match="killed by signal SIGKILL"):
            harness.write(b"y" * (1 << 20), timeout=30)
        assert time.monotonic() - started < 5


def test_trace_writes_vcd(add_echo_harness, tmp_path):
    vcd = tmp_path / "echo.vcd"
    with HarnessProcess(add_echo_harness, trace=vcd, idle_cycles=16) as harness:
        harness.write(b"hello")
        assert harness.read(5) == expected(b"hello")
        harness.close()
    text = vcd.read_text()
    assert "$enddefinitions" in text and "i__payload" in text


def test_bad_option_is_reported(add_echo_harness):
    with pytest.raises(ValueError, match="in_stall"):
        HarnessProcess(add_echo_harness, in_stall=100)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs Linux /proc")
def test_idle_harness_blocks_instead_of_spinning(add_echo_harness):
    with HarnessProcess(add_echo_harness, idle_cycles=1000) as harness:
        harness.write(b"ping")
        assert harness.read(4) == expected(b"ping")
        time.sleep(0.2)
        before = _cpu_seconds(harness.pid)
        time.sleep(1.0)
        assert _cpu_seconds(harness.pid) - before < 0.1
        harness.write(b"pong")  # and it wakes up again
        assert harness.read(4) == expected(b"pong")
