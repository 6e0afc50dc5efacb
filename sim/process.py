"""The pipe harness as a Python object: the host driver's Verilator transport.

:class:`HarnessProcess` builds a design with ``sim/harness.cpp`` (through :mod:`.build`), starts
it as a subprocess and moves bytes through its stdin and stdout. A reader thread drains stdout
(and another stderr) all the time, so the harness never blocks on a full pipe; :meth:`write`
and :meth:`read` take timeouts, and both say so clearly when the process has died.
"""

from __future__ import annotations

import os
import select
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Mapping

from .build import Progress, build_harness, convert

__all__ = ["HarnessProcess", "SimulatorDied", "SimulatorTimeout"]


class SimulatorDied(RuntimeError):
    """The harness process exited while bytes were still expected from or sent to it."""


class SimulatorTimeout(TimeoutError):
    """The harness did not produce (or accept) the bytes asked for in time."""


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "is still running"
    if code < 0:
        try:
            import signal

            return f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class HarnessProcess:
    """A running pipe harness.

    Parameters
    ----------
    executable :
        A harness built by :func:`sparsemac.sim.build.build_harness`.
    trace :
        Write a VCD of every signal to this file.
    idle_cycles :
        Cycles without a transfer (and nothing pending) before the harness blocks on stdin, and
        after end of input before it exits. Raise it for designs that compute longer than this
        between their last input byte and their first output byte.
    in_stall, out_stall :
        Percent of cycles in which the harness withholds ``i.valid`` / ``o.ready`` at random
        (stress testing; 0 runs at full speed).
    seed :
        Seed for those stalls.

    Use :meth:`start` to build and start in one call. The object is a context manager; leaving
    it kills the process if it is still running.
    """

    def __init__(
        self,
        executable: str | os.PathLike[str],
        *,
        trace: str | os.PathLike[str] | None = None,
        idle_cycles: int = 1_000_000,
        in_stall: int = 0,
        out_stall: int = 0,
        seed: int = 1,
    ) -> None:
        for label, value in (("in_stall", in_stall), ("out_stall", out_stall)):
            if not 0 <= value <= 99:
                raise ValueError(f"{label} must be a percentage in [0, 99], not {value!r}")
        if idle_cycles < 1:
            raise ValueError(f"idle_cycles must be positive, not {idle_cycles!r}")
        self.executable = Path(executable)
        args = [str(self.executable), "--idle-cycles", str(idle_cycles),
                "--in-stall", str(in_stall), "--out-stall", str(out_stall), "--seed", str(seed)]
        if trace is not None:
            args += ["--trace", str(trace)]
        self._process = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0
        )
        assert self._process.stdin and self._process.stdout and self._process.stderr
        self._stdin = self._process.stdin
        os.set_blocking(self._stdin.fileno(), False)
        self._buffer = bytearray()
        self._eof = False
        self._closed = False
        self._changed = threading.Condition()
        self._stderr: deque[bytes] = deque(maxlen=200)
        self._readers = [
            threading.Thread(target=self._drain_stdout, name="harness-stdout", daemon=True),
            threading.Thread(target=self._drain_stderr, name="harness-stderr", daemon=True),
        ]
        for thread in self._readers:
            thread.start()

    @classmethod
    def start(
        cls,
        factory: Callable[..., Any],
        params: Mapping[str, Any] | None = None,
        *,
        name: str = "top",
        progress: Progress | None = None,
        **options: Any,
    ) -> "HarnessProcess":
        """Convert ``factory(**params)``, build its harness (or reuse the cached one), start it.

        ``options`` are those of the constructor (``trace``, ``idle_cycles``, ...).
        """
        executable = build_harness(convert(factory, params, name=name), progress=progress)
        return cls(executable, **options)

    # -- reader threads

    def _drain_stdout(self) -> None:
        fd = self._process.stdout.fileno()  # type: ignore[union-attr]
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except OSError:
                chunk = b""
            with self._changed:
                if chunk:
                    self._buffer += chunk
                else:
                    self._eof = True
                self._changed.notify_all()
            if not chunk:
                return

    def _drain_stderr(self) -> None:
        fd = self._process.stderr.fileno()  # type: ignore[union-attr]
        while chunk := os.read(fd, 1 << 12):
            self._stderr.append(chunk)

    # -- public API

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        """The exit code once the process has ended (negative: killed by that signal)."""
        return self._process.poll()

    def stderr_text(self) -> str:
        """What the harness has written to stderr so far (the last few KiB)."""
        return b"".join(self._stderr).decode(errors="replace")

    def _died(self, what: str) -> SimulatorDied:
        try:
            code = self._process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            code = None
        if code is not None:
            self._finish()
        message = f"{what}: the harness {self.executable} {_describe_exit(code)}"
        if stderr := self.stderr_text().strip():
            message += f"; its stderr:\n{stderr}"
        return SimulatorDied(message)

    def write(self, data: bytes, timeout: float | None = 10.0) -> None:
        """Send ``data`` to the design's input stream.

        Raises :class:`SimulatorTimeout` if the harness has not taken all of it within
        ``timeout`` seconds (``None``: wait for ever), :class:`SimulatorDied` if it has exited.
        """
        view = memoryview(bytes(data))
        deadline = None if timeout is None else time.monotonic() + timeout
        sent = 0
        if self._closed:
            raise ValueError("write() after close()")
        while sent < len(view):
            if self._stdin.closed or self._process.poll() is not None:
                raise self._died(f"wrote {sent} of {len(view)} bytes")
            try:
                n = os.write(self._stdin.fileno(), view[sent:])
            except BlockingIOError:
                n = 0
            except BrokenPipeError:
                raise self._died(f"wrote {sent} of {len(view)} bytes") from None
            sent += n
            if sent == len(view):
                break
            if self._process.poll() is not None:
                raise self._died(f"wrote {sent} of {len(view)} bytes")
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise SimulatorTimeout(
                    f"the harness took {sent} of {len(view)} bytes in {timeout} s "
                    "(is the design holding i.ready low?)"
                )
            wait = 0.1 if remaining is None else min(0.1, remaining)
            select.select([], [self._stdin.fileno()], [], wait)

    def read(self, n: int, timeout: float | None = 10.0) -> bytes:
        """Return exactly ``n`` bytes from the design's output stream.

        Raises :class:`SimulatorTimeout` if fewer arrived within ``timeout`` seconds (the bytes
        stay buffered for a later read), :class:`SimulatorDied` if the harness exited first.
        """
        if n < 0:
            raise ValueError(f"Byte count must be non-negative, not {n!r}")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while len(self._buffer) < n and not self._eof:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise SimulatorTimeout(
                        f"the harness produced {len(self._buffer)} of {n} bytes in {timeout} s"
                    )
                self._changed.wait(remaining)
            if len(self._buffer) >= n:
                data = bytes(self._buffer[:n])
                del self._buffer[:n]
                return data
            got = len(self._buffer)
        raise self._died(f"read {got} of {n} bytes")

    def read_available(self) -> bytes:
        """Return whatever output has arrived, without waiting."""
        with self._changed:
            data = bytes(self._buffer)
            self._buffer.clear()
            return data

    def close(self, timeout: float | None = 30.0) -> bytes:
        """Signal end of input, wait for the harness to drain and exit; return unread output.

        Raises :class:`SimulatorDied` if it exits with an error (for example, input bytes the
        design never accepted) and :class:`SimulatorTimeout` if it has not exited in time (the
        process is then killed).
        """
        self._closed = True
        if not self._stdin.closed:
            try:
                self._stdin.close()
            except BrokenPipeError:
                pass
        try:
            code = self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise SimulatorTimeout(f"the harness did not exit within {timeout} s of end of input") from None
        self._finish()
        if code != 0:
            raise self._died("after end of input")
        return self.read_available()

    def kill(self) -> None:
        """Stop the harness at once and release its pipes (idempotent)."""
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._finish()

    def _finish(self) -> None:
        # Once the process has exited the readers hit end of file; then the pipes can close.
        if not self._stdin.closed:
            try:
                self._stdin.close()
            except OSError:
                pass
        for thread in self._readers:
            thread.join(timeout=5.0)
        if not any(thread.is_alive() for thread in self._readers):
            for stream in (self._process.stdout, self._process.stderr):
                if stream is not None and not stream.closed:
                    stream.close()

    def __enter__(self) -> "HarnessProcess":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()

    def __del__(self) -> None:
        process = getattr(self, "_process", None)
        if process is not None and process.poll() is None:
            process.kill()
