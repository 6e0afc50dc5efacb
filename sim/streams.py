"""Byte-stream models for cocotb testbenches of Amaranth stream ports (run inside the simulator).

An Amaranth ``stream.Signature(8)`` port named ``i`` is ``i__payload``, ``i__valid`` and
``i__ready`` in Verilog. :class:`ByteSource` drives such a port and :class:`ByteSink` takes bytes
from one, each with an optional pause generator (``True`` = pause this cycle) for random gaps on
valid and random back-pressure on ready. They follow the stream rules: the source never drops
valid or changes the payload before the transfer, and a transfer is a clock edge with valid and
ready both high.

Why not cocotbext-axi: its AxiStreamSource/Sink can be mapped onto these names (a bus with
``{"tdata": "payload", "tvalid": "valid", "tready": "ready"}`` and separator ``__``), but version
0.1.28 under cocotb 2.1 emits DeprecationWarnings (``setimmediatevalue``, ``Task.kill``, ``Edge``)
and, with no ``tlast``, makes and logs a frame per byte. These models use the cocotb 2.x API
only, so the testbenches run with warnings as errors.

Usage in a cocotb test module::

    from sparsemac.sim.streams import design_params, random_pauses, start

    @cocotb.test()
    async def echo(dut):
        params = design_params()                  # the dict given to run_cocotb()
        source, sink = await start(dut)           # clock, reset, models on dut.i and dut.o
        source.pauses = random_pauses(rng, 0.3)
        sink.pauses = random_pauses(rng, 0.3)
        source.send(b"...")
        assert await sink.read(n) == ...
"""

from __future__ import annotations

import json
import os
import random
from collections import deque
from typing import Any, Iterator

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, Event, RisingEdge

__all__ = ["ByteSource", "ByteSink", "random_pauses", "design_params", "start", "PARAMS_ENV"]

#: Environment variable through which :func:`sparsemac.sim.testbench.run_cocotb` passes the
#: design parameters (JSON) to the test module.
PARAMS_ENV = "SPARSEMAC_PARAMS"


def _port(dut: Any, prefix: str, member: str) -> Any:
    name = f"{prefix}__{member}"
    try:
        return getattr(dut, name)
    except AttributeError:
        raise AttributeError(f"The design has no port {name!r} (expected an Amaranth stream "
                             f"port {prefix!r})") from None


class ByteSource:
    """Drives bytes into the design's stream port ``prefix`` (default ``dut.i``).

    Attributes
    ----------
    pauses : iterator of bool or None
        Drawn once per cycle when the source could offer a new byte; ``True`` withholds valid.
    sent : int
        Bytes the design has accepted.
    """

    def __init__(self, dut: Any, prefix: str = "i", *, clock: Any = None, reset: Any = None) -> None:
        self._payload = _port(dut, prefix, "payload")
        self._valid = _port(dut, prefix, "valid")
        self._ready = _port(dut, prefix, "ready")
        self._clock = dut.clk if clock is None else clock
        self._reset = getattr(dut, "rst", None) if reset is None else reset
        self._queue: deque[int] = deque()
        self._offering = False
        self._idle = Event()
        self._idle.set()
        self.pauses: Iterator[bool] | None = None
        self.sent = 0
        self._valid.value = 0
        self._task = cocotb.start_soon(self._run())

    def send(self, data: bytes) -> None:
        """Queue ``data``; it goes out as the design accepts it."""
        if data:
            self._queue.extend(data)
            self._idle.clear()

    @property
    def pending(self) -> int:
        """Bytes queued or on the port but not yet accepted."""
        return len(self._queue) + int(self._offering)

    async def wait(self) -> None:
        """Wait until every queued byte has been accepted."""
        await self._idle.wait()

    async def _run(self) -> None:
        edge = RisingEdge(self._clock)
        while True:
            await edge
            if self._reset is not None and self._reset.value:
                self._valid.value = 0
                self._offering = False  # a byte offered during reset is offered again
                continue
            if self._offering and self._ready.value:
                self._offering = False
                self._queue.popleft()
                self.sent += 1
            if not self._offering and self._queue:
                if self.pauses is None or not next(self.pauses):
                    self._offering = True
                    self._payload.value = self._queue[0]
            self._valid.value = int(self._offering)
            if not self._queue:
                self._idle.set()


class ByteSink:
    """Takes bytes from the design's stream port ``prefix`` (default ``dut.o``).

    Attributes
    ----------
    pauses : iterator of bool or None
        Drawn once per cycle; ``True`` holds ready low.
    pause : bool
        While set, ready stays low (whatever ``pauses`` says).
    """

    def __init__(self, dut: Any, prefix: str = "o", *, clock: Any = None, reset: Any = None) -> None:
        self._payload = _port(dut, prefix, "payload")
        self._valid = _port(dut, prefix, "valid")
        self._ready = _port(dut, prefix, "ready")
        self._clock = dut.clk if clock is None else clock
        self._reset = getattr(dut, "rst", None) if reset is None else reset
        self._data = bytearray()
        self._arrived = Event()
        self._accepting = False
        self.pauses: Iterator[bool] | None = None
        self.pause = False
        self._ready.value = 0
        self._task = cocotb.start_soon(self._run())

    def __len__(self) -> int:
        return len(self._data)

    def read_nowait(self) -> bytes:
        """Return and remove every byte received so far."""
        data = bytes(self._data)
        self._data.clear()
        return data

    async def read(self, n: int) -> bytes:
        """Wait for exactly ``n`` bytes; return and remove them."""
        while len(self._data) < n:
            self._arrived.clear()
            await self._arrived.wait()
        data = bytes(self._data[:n])
        del self._data[:n]
        return data

    async def _run(self) -> None:
        edge = RisingEdge(self._clock)
        while True:
            await edge
            in_reset = self._reset is not None and self._reset.value
            if self._accepting and not in_reset and self._valid.value:
                self._data.append(int(self._payload.value))
                self._arrived.set()
            stall = self.pause or (self.pauses is not None and next(self.pauses))
            self._accepting = not stall and not in_reset
            self._ready.value = int(self._accepting)


def random_pauses(rng: random.Random, probability: float) -> Iterator[bool]:
    """Endless pause pattern: ``True`` (pause this cycle) with ``probability``."""
    if not 0 <= probability < 1:
        raise ValueError(f"Pause probability must be in [0, 1), not {probability!r}")
    while True:
        yield rng.random() < probability


def design_params() -> dict[str, Any]:
    """The design parameters given to ``run_cocotb`` (``$SPARSEMAC_PARAMS``), or ``{}``."""
    text = os.environ.get(PARAMS_ENV)
    return json.loads(text) if text else {}


async def start(dut: Any, *, period_ns: int = 10, reset_cycles: int = 4) -> tuple[ByteSource, ByteSink]:
    """Start the clock, hold reset for ``reset_cycles``, and return a source on ``dut.i`` and a
    sink on ``dut.o``."""
    Clock(dut.clk, period_ns, unit="ns").start()
    dut.rst.value = 1
    source, sink = ByteSource(dut), ByteSink(dut)
    await ClockCycles(dut.clk, reset_cycles)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 1)
    return source, sink
