"""A simulated board on a pseudo-terminal: the host driver's SerialTransport without a board.

The board top's link (:class:`sparsemac.hw.boards.serial_engine.SerialEngine`: the engine, its
FIFOs and the UART; the PLL is the only part of the top left out) is converted and built with
``uart_harness.cpp``, which bit-bangs its UART pins at the divisor, in simulated time, and
relays the bytes to the master side of a pty. A :class:`~sparsemac.sw.driver.SerialTransport`
opened on the pty's slave side (:attr:`PtyLink.port`) then talks to it exactly as to a board's
``/dev/ttyUSB1``.

    with PtyLink.start(params, divisor=8) as link:
        with Device(SerialTransport(link.port)) as device:
            ...
"""

from __future__ import annotations

import os
import subprocess
import tty
from dataclasses import asdict
from pathlib import Path

from sparsemac.hw import EngineParameters
from sparsemac.hw.boards.serial_engine import SerialEngine
from sparsemac.sim.build import Progress, build_harness, convert

__all__ = ["HARNESS_SOURCE", "serial_engine", "build_uart_harness", "PtyLink"]

HARNESS_SOURCE = Path(__file__).with_name("uart_harness.cpp")


def serial_engine(divisor: int, **params) -> SerialEngine:
    """The factory :func:`sparsemac.sim.build.convert` calls (JSON parameters only)."""
    return SerialEngine(EngineParameters(**params), divisor)


def build_uart_harness(params: EngineParameters, divisor: int, *,
                       progress: Progress | None = None) -> Path:
    """Convert the link for ``params`` and ``divisor`` and build it with the UART harness
    (cached and locked like every Verilator build); the executable's path."""
    design = convert(serial_engine, {"divisor": divisor, **asdict(params)}, name="sparsemac_link")
    return build_harness(design, main=HARNESS_SOURCE, progress=progress)


class PtyLink:
    """A running UART harness behind a pseudo-terminal; :attr:`port` is the slave's path."""

    def __init__(self, executable: Path, divisor: int, *, idle_cycles: int,
                 trace: Path | None = None):
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        args = [str(executable), "--bit-cycles", str(divisor), "--fd", str(self._master),
                "--idle-cycles", str(idle_cycles)]
        if trace is not None:
            args += ["--trace", str(trace)]
        self._process = subprocess.Popen(args, pass_fds=(self._master,),
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE)

    @classmethod
    def start(cls, params: EngineParameters, divisor: int, *, idle_cycles: int = 200_000,
              trace: Path | None = None, progress: Progress | None = None) -> "PtyLink":
        return cls(build_uart_harness(params, divisor, progress=progress), divisor,
                   idle_cycles=idle_cycles, trace=trace)

    @property
    def returncode(self) -> int | None:
        return self._process.poll()

    def close(self) -> str:
        """Stop the harness; return what it wrote to stderr."""
        if self._process.poll() is None:
            self._process.kill()
        _, stderr = self._process.communicate(timeout=10)
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass
        return stderr.decode(errors="replace")

    def __enter__(self) -> "PtyLink":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
