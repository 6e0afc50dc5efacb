"""The host driver: speaks docs/protocol.md to an engine over any byte transport.

A :class:`Transport` only moves bytes (a Verilator simulation, ``sparsemac.sim.transport``;
a board's serial port, :class:`SerialTransport`); all encoding is :mod:`.protocol`'s.
:class:`Device` loads a model image, runs input vectors and returns outputs and cycle counts,
with timeouts and clear errors for a dead link, a confused link, an engine that reports an
error, or an image that does not fit the engine (it asks the engine for its build first).

An image larger than the engine's memories runs in pieces, transparently and bit-exactly
(docs/driver.md): layer by layer through the host, and a layer too large on its own in
row tiles.
"""

from __future__ import annotations

import struct
import time
from collections import deque
from dataclasses import dataclass
from typing import Iterable, Iterator, Protocol

import numpy as np

from . import protocol
from .format import LayerImage, ModelImage, pack_layer, pack_model, unpack_layer, unpack_model
from .golden import check_inputs, run_golden
from .protocol import BuildInfo, ImageTooLargeError, Response, RunStatus, Status
from .quantize import QuantLayer

__all__ = ["Transport", "SerialTransport", "BOARD_RECEIVE_FIFO", "Device", "RunResult", "Piece",
           "LinkError", "EngineError", "ImageTooLargeError", "plan_pieces", "run_pieces"]


class LinkError(ConnectionError):
    """The link to the engine is dead (no answer in time, the peer went away) or confused
    (bytes that are not a response frame)."""


class EngineError(RuntimeError):
    """The engine answered a command with an error status."""

    def __init__(self, what: str, status: int):
        try:
            name = Status(status).name
        except ValueError:
            name = f"unknown status {status:#04x}"
        super().__init__(f"The engine refused {what}: {name}")
        self.status = status


class Transport(Protocol):
    """Moves bytes to and from an engine. Both calls raise :class:`LinkError` on failure.

    ``window`` (optional attribute): the most command bytes the link holds for the engine
    before it takes them, or None when the link pushes back by itself (a pipe). The device
    keeps the command bytes it has sent and not yet seen answered within it.
    """

    def write(self, data: bytes, timeout: float | None) -> None: ...

    def read(self, n: int, timeout: float | None) -> bytes:
        """Exactly ``n`` bytes, or :class:`LinkError` when they do not come in time."""

    def close(self) -> None: ...


#: Bytes the board tops buffer between their UART and the engine (hw/boards/serial_engine.py).
BOARD_RECEIVE_FIFO = 512


class SerialTransport:
    """A board's USB serial port, through pyserial.

    The line has no flow control (docs/fpga.md): bytes that arrive while the board's receive
    FIFO is full are lost. ``window`` tells the device how many command bytes it may have in
    flight so that cannot happen.

    Parameters
    ----------
    port : the device (``/dev/ttyUSB1``) or any pyserial URL
    baudrate : the board's UART rate
    window : the board's receive FIFO depth in bytes
    """

    def __init__(self, port: str, baudrate: int = 3_000_000, *,
                 window: int = BOARD_RECEIVE_FIFO):
        import serial

        if not isinstance(window, int) or window < 16:
            raise ValueError(f"A serial link's window must be an integer of at least 16 bytes, "
                             f"not {window!r}")
        self.window = window

        try:
            self._serial = serial.serial_for_url(port, baudrate=baudrate, timeout=0.05,
                                                 write_timeout=None)
        except (serial.SerialException, ValueError) as error:
            raise LinkError(f"Cannot open serial port {port}: {error}") from None
        self._port = port

    def write(self, data: bytes, timeout: float | None = 10.0) -> None:
        import serial

        self._serial.write_timeout = timeout
        try:
            self._serial.write(data)
            self._serial.flush()
        except serial.SerialTimeoutException:
            raise LinkError(f"{self._port} took no data for {timeout} s") from None
        except (serial.SerialException, OSError) as error:
            raise LinkError(f"Writing to {self._port} failed: {error}") from None

    def read(self, n: int, timeout: float | None = 10.0) -> bytes:
        import serial

        deadline = None if timeout is None else time.monotonic() + timeout
        data = bytearray()
        try:
            while len(data) < n:
                data += self._serial.read(n - len(data))
                if deadline is not None and time.monotonic() > deadline and len(data) < n:
                    raise LinkError(f"{self._port} sent {len(data)} of {n} bytes in {timeout} s")
        except (serial.SerialException, OSError) as error:
            raise LinkError(f"Reading from {self._port} failed: {error}") from None
        return bytes(data)

    def close(self) -> None:
        self._serial.close()


# -- Pieces: what is loaded into the engine at once ----------------------------------------------

@dataclass(frozen=True, eq=False)
class Piece:
    """A part of a model that fits the engine: consecutive layers of the image, or rows of
    one layer. ``rows`` names the original output rows it computes (None: all of the last
    layer's)."""
    image: ModelImage
    layers: range
    rows: np.ndarray | None = None


def _fits(image: ModelImage, build: BuildInfo) -> bool:
    try:
        protocol.memory_writes(image, build)
    except ImageTooLargeError:
        return False
    return True


def _check_compatible(image: ModelImage, build: BuildInfo) -> None:
    """Refuse what no tiling can fix: widths, lane count, accumulators."""
    problems = []
    if image.lanes != build.lanes:
        problems.append(f"it was packed for {image.lanes} lanes, the engine has {build.lanes}")
    if image.activation_bits != build.activation_bits:
        problems.append(f"its activations are {image.activation_bits}-bit, the engine's "
                        f"{build.activation_bits}-bit")
    if image.max_value_bits > build.weight_bits:
        problems.append(f"its weights are {image.max_value_bits}-bit, the engine decodes "
                        f"{build.weight_bits}")
    needed = image.accumulator_bits()
    if needed > build.accumulator_bits:
        problems.append(f"it needs {needed}-bit accumulators, the engine has "
                        f"{build.accumulator_bits}")
    if problems:
        raise ImageTooLargeError("The image does not fit this engine: " + "; ".join(problems))


def _single_layer(layer: LayerImage, rows: np.ndarray | None, build: BuildInfo,
                  activation_bits: int, input_scale) -> ModelImage:
    """One layer (or some of its rows) repacked on its own, inputs in original order."""
    quant = unpack_layer(layer)
    if rows is not None:
        quant = QuantLayer(quant.name, quant.weight[rows], quant.bias[rows],
                           quant.multiplier[rows], quant.shift[rows], quant.relu,
                           quant.weight_bits)
    packed = pack_layer(quant, lanes=build.lanes, max_run_bits=build.max_run_bits)
    return ModelImage((packed,), activation_bits, input_scale)


def plan_pieces(image: ModelImage, build: BuildInfo) -> list[Piece]:
    """Split ``image`` into pieces that each fit ``build``; one piece if it fits whole.

    Otherwise every layer runs on its own (its outputs come back to the host and are written
    as the next layer's inputs), and a layer too large even alone is cut into the fewest
    row tiles of equal size that fit. Raises :class:`ImageTooLargeError` when even a single
    row does not fit (a layer with more inputs than the engine's activation banks or
    pointer memory hold), or when the image's widths or lane count differ from the build's.
    """
    _check_compatible(image, build)
    if _fits(image, build):
        return [Piece(image, range(len(image.layers)))]
    if image.max_run_bits > build.max_run_bits:
        # Run fields wider than the engine decodes: the same weights with narrower fields
        # (more fillers) may still fit whole.
        narrower = pack_model(unpack_model(image), lanes=build.lanes,
                              max_run_bits=build.max_run_bits)
        if _fits(narrower, build):
            return [Piece(narrower, range(len(image.layers)))]
    pieces = []
    for index, layer in enumerate(image.layers):
        alone = _single_layer(layer, None, build, image.activation_bits, image.input_scale)
        if _fits(alone, build):
            pieces.append(Piece(alone, range(index, index + 1)))
            continue
        for tiles in range(2, layer.rows + 1):
            bounds = np.linspace(0, layer.rows, tiles + 1).round().astype(int)
            parts = [np.arange(a, b) for a, b in zip(bounds, bounds[1:])]
            images = [_single_layer(layer, rows, build, image.activation_bits, None) for rows in parts]
            if all(_fits(part, build) for part in images):
                pieces.extend(Piece(part, range(index, index + 1), rows)
                              for part, rows in zip(images, parts))
                break
        else:
            try:
                protocol.memory_writes(_single_layer(layer, np.arange(1), build,
                                                     image.activation_bits, None), build)
            except ImageTooLargeError as error:
                raise ImageTooLargeError(f"Layer {layer.name!r} cannot be tiled into this "
                                         f"engine: even one row does not fit ({error})") from None
    return pieces


# -- The device ----------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class RunResult:
    """Outputs and cycle counts of a batch run on the engine.

    Attributes
    ----------
    outputs : (batch, output_size) int64, in original row order
    cycles : (batch,) int64, engine cycles per vector, summed over pieces
    piece_cycles : (batch, pieces) int64
    """
    outputs: np.ndarray
    cycles: np.ndarray
    piece_cycles: np.ndarray


class Device:
    """An engine on the other end of a transport.

    Parameters
    ----------
    transport : moves the bytes
    timeout : seconds to wait for any response but RUN's
    run_timeout : seconds to wait for a RUN's response
    """

    #: Most commands sent before their responses are read (and never more command bytes than
    #: the transport's ``window``).
    PIPELINE = 96

    def __init__(self, transport: Transport, *, timeout: float = 10.0, run_timeout: float = 60.0):
        self._transport = transport
        self._timeout = timeout
        self._run_timeout = run_timeout
        self._build: BuildInfo | None = None
        self._image: ModelImage | None = None
        self._pieces: list[Piece] = []
        self._resident: Piece | None = None

    def __enter__(self) -> "Device":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()

    # -- Frames

    def _receive(self, what: str, timeout: float) -> Response:
        header = self._transport.read(6, timeout)
        sync, status, length = struct.unpack("<BBI", header)
        if sync != protocol.RESPONSE_SYNC or length > protocol.MAX_PAYLOAD:
            raise LinkError(f"Confused link while waiting for the answer to {what}: got "
                            f"{header.hex(' ')} where a response frame should start; call "
                            f"resync()")
        return Response(status, self._transport.read(length, self._timeout) if length else b"")

    def exchange(self, commands: Iterable[tuple[bytes, str, float]]) -> Iterator[Response]:
        """Send (frame, what, timeout) commands and yield their OK responses in order.

        Frames go out in bursts, and before a frame is sent the answers already due are read
        until the command bytes in flight (sent, answer not yet read) fit the transport's
        window with it: a command waiting in the link's buffer has always been counted, so a
        link without flow control never overflows. A frame larger than the window goes out
        alone. An error status raises :class:`EngineError` after the answers still in flight
        are read, so the link stays in step.
        """
        window = getattr(self._transport, "window", None)
        in_flight: deque[tuple[int, str, float]] = deque()
        pending = bytearray()
        pending_bytes = 0                              # of the commands in flight

        def answer() -> Response:
            nonlocal pending_bytes
            if pending:
                self._transport.write(bytes(pending), self._timeout)
                pending.clear()
            size, what, timeout = in_flight.popleft()
            pending_bytes -= size
            response = self._receive(what, timeout)
            if response.status != Status.OK:
                while in_flight:                       # keep the link in step, then report
                    _, later, later_timeout = in_flight.popleft()
                    self._receive(later, later_timeout)
                raise EngineError(what, response.status)
            return response

        for frame, what, timeout in commands:
            while in_flight and (len(in_flight) >= self.PIPELINE or (
                    window is not None and pending_bytes + len(frame) > window)):
                yield answer()
            pending += frame
            pending_bytes += len(frame)
            in_flight.append((len(frame), what, timeout))
        while in_flight:
            yield answer()

    def command(self, frame: bytes, what: str, *, timeout: float | None = None) -> bytes:
        """Send one command frame; its response payload, or :class:`EngineError`."""
        self._transport.write(frame, self._timeout)
        response = self._receive(what, timeout or self._timeout)
        if response.status != Status.OK:
            raise EngineError(what, response.status)
        return response.payload

    def resync(self) -> None:
        """Bring a confused link back to frame boundaries (docs/protocol.md section 1)."""
        self._transport.write(bytes(protocol.MAX_PAYLOAD + 6), self._timeout)
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            try:
                self._transport.read(1, 0.1)
            except LinkError:
                pass

    # -- Commands

    def info(self) -> BuildInfo:
        """The engine's build parameters (asked once, then remembered)."""
        if self._build is None:
            self._build = BuildInfo.from_bytes(self.command(protocol.info_command(), "INFO"))
        return self._build

    def status(self) -> RunStatus:
        return RunStatus.from_bytes(self.command(protocol.status_command(), "STATUS"))

    def reset(self) -> None:
        """Soft reset: accumulators, input and result cleared; the loaded model stays."""
        self.command(protocol.reset_command(), "RESET")

    def load(self, image: ModelImage) -> list[Piece]:
        """Check ``image`` against the engine and load it (or plan its pieces).

        Returns the pieces; a single piece is loaded now and stays loaded across runs.
        """
        self._pieces = plan_pieces(image, self.info())
        self._image = image
        self._resident = None
        # A known state first: after a hardware reset the accumulators may hold an
        # interrupted run's partial sums (docs/protocol.md section 3.7).
        self.reset()
        if len(self._pieces) == 1:
            self._load_piece(self._pieces[0])
        return self._pieces

    def _load_piece(self, piece: Piece) -> None:
        if self._resident is piece:
            return
        window = getattr(self._transport, "window", None)
        # Two frames fit a window, so one is on the line while the other is answered.
        max_payload = 4096 if window is None else max(64, window // 2)
        commands = protocol.load_commands(piece.image, self.info(), max_payload=max_payload)
        for _ in self.exchange((frame, f"WRITE {index + 1} of {len(commands)} loading the "
                                        f"image", self._timeout)
                                for index, frame in enumerate(commands)):
            pass
        self._resident = piece

    def run(self, x: np.ndarray | Iterable[np.ndarray]) -> RunResult:
        """Run integer input vectors (one per row) through the loaded model."""
        if self._image is None:
            raise RuntimeError("No model loaded: call load(image) first")
        image = self._image
        x = check_inputs(image, x)
        return run_pieces(self._pieces, image, x, self._run_piece)

    def _run_piece(self, piece: Piece, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._load_piece(piece)
        image = piece.image
        last = image.layers[-1]
        count = last.lanes * last.slots
        width = image.activation_bits
        outputs = np.zeros((x.shape[0], last.rows), dtype=np.int64)
        cycles = np.zeros(x.shape[0], dtype=np.int64)
        run = protocol.run_command(0, len(image.layers))
        read = protocol.read_output_command(count)

        def commands():
            for i in range(x.shape[0]):
                yield protocol.write_input_command(x[i], width), f"WRITE_INPUT of vector {i}", self._timeout
                yield run, f"RUN of vector {i}", self._run_timeout
                yield read, f"READ_OUTPUT of vector {i}", self._timeout

        responses = self.exchange(commands())
        for i in range(x.shape[0]):
            next(responses)                                    # WRITE_INPUT: empty
            (cycles[i],) = struct.unpack("<I", next(responses).payload)
            physical = protocol.decode_outputs(next(responses).payload, width)
            outputs[i] = protocol.outputs_in_row_order(physical, last)
        return outputs, cycles

    def golden(self, x: np.ndarray) -> RunResult:
        """What :meth:`run` must return for the same inputs: the golden model, piece by piece,
        with the engine's own timing constants."""
        timing = self.info().timing

        def golden_piece(piece: Piece, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            result = run_golden(piece.image, x, timing)
            return result.outputs, result.cycles

        return run_pieces(self._pieces, self._image, check_inputs(self._image, x), golden_piece)


def run_pieces(pieces: list[Piece], image: ModelImage, x: np.ndarray, run_piece) -> RunResult:
    """Run ``pieces`` in order, routing each piece's outputs to the inputs of the next.

    ``run_piece(piece, x)`` returns the piece's (outputs by row, cycles) for inputs ``x`` in
    the original order of its first layer's inputs.
    """
    batch = x.shape[0]
    activations = {0: x.astype(np.int64)}                 # inputs of each layer, original order
    piece_cycles = np.zeros((batch, len(pieces)), dtype=np.int64)
    for number, piece in enumerate(pieces):
        stop = piece.layers.stop
        if stop not in activations:
            activations[stop] = np.zeros((batch, image.layers[stop - 1].rows), dtype=np.int64)
        outputs, cycles = run_piece(piece, activations[piece.layers.start])
        piece_cycles[:, number] = cycles
        if piece.rows is None:
            activations[stop][:] = outputs
        else:
            activations[stop][:, piece.rows] = outputs
    return RunResult(activations[len(image.layers)], piece_cycles.sum(axis=1), piece_cycles)
