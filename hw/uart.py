"""An 8N1 UART: bytes as streams on one side, the two serial pins on the other.

The bit period is a whole number of clock cycles (the *divisor*), fixed at elaboration by
:func:`uart_divisor` from the clock and the baud rate; a rate that the clock cannot make
within 2% is refused. The receiver samples in the middle of each bit after a 2-FF
synchroniser and drops a byte whose stop bit is low (a framing error), counting it.
"""


from amaranth.hdl import Module, Signal
from amaranth.lib import cdc, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["uart_divisor", "UARTReceiver", "UARTTransmitter", "UART", "MAX_RATE_ERROR"]

#: The largest relative difference between the baud rate asked for and the one made.
MAX_RATE_ERROR = 0.02


def uart_divisor(clk_frequency: float, baudrate: float) -> int:
    """Clock cycles per bit for ``baudrate`` at ``clk_frequency``.

    Raises :class:`ValueError` when the nearest whole divisor is below 4 (too few samples per
    bit for mid-bit sampling) or makes a rate more than 2% off.
    """
    if not clk_frequency > 0 or not baudrate > 0:
        raise ValueError(f"Clock and baud rate must be positive, not {clk_frequency!r} and "
                         f"{baudrate!r}")
    divisor = max(1, round(clk_frequency / baudrate))
    if divisor < 4:
        raise ValueError(f"A {clk_frequency / 1e6:g} MHz clock is too slow for {baudrate:g} "
                         f"baud: {clk_frequency / baudrate:.2f} cycles per bit, at least 4 needed")
    error = abs(clk_frequency / divisor - baudrate) / baudrate
    if error > MAX_RATE_ERROR:
        raise ValueError(f"{baudrate:g} baud is {error:.1%} off at {clk_frequency / 1e6:g} MHz "
                         f"(divisor {divisor}); at most {MAX_RATE_ERROR:.0%} is allowed")
    return divisor


class _BitTimed(wiring.Component):
    """A component whose bit period is ``divisor`` clock cycles, fixed at elaboration (the
    subclasses' members are their annotations)."""

    def __init__(self, divisor: int):
        if not isinstance(divisor, int) or isinstance(divisor, bool) or divisor < 4:
            self._MustUse__silence = True           # refused: no "never used" warning later
            raise ValueError(f"Divisor must be an integer of at least 4, not {divisor!r}")
        self._divisor = divisor
        super().__init__()

    @property
    def divisor(self) -> int:
        """Clock cycles per bit."""
        return self._divisor


class UARTTransmitter(_BitTimed):
    """Sends each byte of its stream as one 8N1 frame: a start bit, 8 data bits LSB first,
    a stop bit, each ``divisor`` cycles long.

    Parameters
    ----------
    divisor : clock cycles per bit, at least 4

    Members
    -------
    i : In(stream.Signature(8))
        Bytes to send.
    tx : Out(1)
        The serial line, high when idle.

    Latency and back-pressure: ``i.ready`` is high exactly when no frame is being sent; a byte
    taken in cycle ``t`` puts its start bit on ``tx`` from ``t + 1``, and the next byte can be
    taken in the last cycle of the stop bit, so back-to-back bytes leave no gap.
    """

    i: In(stream.Signature(8))
    tx: Out(1, init=1)

    def elaborate(self, platform):
        m = Module()
        shift = Signal(10, init=0x3FF)         # stop, data[7:0], start; bit 0 is on the line
        bits = Signal(range(11))               # bits still to send, current one included
        timer = Signal(range(self._divisor))
        # Whether this is the frame's last cycle (or there is no frame): bits == 0, or
        # bits == 1 and timer == 0, kept as a register decided a cycle ahead, so the FIFO
        # this ready gates starts its read logic at a flip-flop.
        last_cycle = Signal(init=1)
        m.d.comb += [self.tx.eq(shift[0]), self.i.ready.eq(last_cycle)]
        with m.If(self.i.valid & last_cycle):
            m.d.sync += [
                shift.eq(1 << 9 | self.i.payload << 1),
                bits.eq(10),
                timer.eq(self._divisor - 1),
                last_cycle.eq(0),
            ]
        with m.Elif(bits != 0):
            with m.If(timer == 0):
                m.d.sync += [
                    shift.eq(1 << 9 | shift >> 1),
                    bits.eq(bits - 1),
                    timer.eq(self._divisor - 1),
                    last_cycle.eq(bits == 1),       # the divisor is at least 4
                ]
            with m.Else():
                m.d.sync += [timer.eq(timer - 1), last_cycle.eq((bits == 1) & (timer == 1))]
        return m


class UARTReceiver(_BitTimed):
    """Receives 8N1 frames into a stream of bytes.

    The line goes through a 2-FF synchroniser; a falling edge starts a frame, the start bit is
    checked half a bit later (a glitch shorter than that is ignored), and each data bit and
    the stop bit are sampled one bit period after the previous sample, in the middle of the
    bit. A frame whose stop bit is low is dropped and counted in ``framing_errors``; the
    receiver then waits for the line to go high before it looks for the next start bit.

    Parameters
    ----------
    divisor : clock cycles per bit, at least 4

    Members
    -------
    rx : In(1)
        The serial line (asynchronous), high when idle.
    o : Out(stream.Signature(8))
        Received bytes.
    framing_errors : Out(16)
        Frames dropped for a low stop bit (wraps around).
    overruns : Out(16)
        Bytes dropped because the previous byte was still not taken when the next one's stop
        bit was sampled (wraps around).

    Latency and back-pressure: a byte is offered on ``o`` from the cycle after its stop bit is
    sampled, about 9.5 bit periods plus 3 cycles after its start edge, and is held until
    taken. The consumer has one whole frame's time to take it before a following byte is lost;
    put a FIFO behind the receiver if it may stall longer.
    """

    rx: In(1, init=1)
    o: Out(stream.Signature(8))
    framing_errors: Out(16)
    overruns: Out(16)

    def elaborate(self, platform):
        m = Module()
        line = Signal(init=1)
        m.submodules.sync = cdc.FFSynchronizer(self.rx, line, init=1, stages=2)

        timer = Signal(range(self._divisor))
        bit = Signal(range(8))
        data = Signal(8)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        with m.FSM():
            with m.State("Idle"):
                with m.If(~line):
                    m.d.sync += timer.eq(self._divisor // 2 - 1)
                    m.next = "Start"
            with m.State("Start"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):
                    m.next = "Idle"                     # a glitch, not a start bit
                with m.Else():
                    m.d.sync += [timer.eq(self._divisor - 1), bit.eq(0)]
                    m.next = "Data"
            with m.State("Data"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [data.eq(line << 7 | data >> 1), bit.eq(bit + 1),
                                 timer.eq(self._divisor - 1)]
                    with m.If(bit == 7):
                        m.next = "Stop"
            with m.State("Stop"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(~line):
                    m.d.sync += self.framing_errors.eq(self.framing_errors + 1)
                    m.next = "Break"
                with m.Else():
                    with m.If(self.o.valid & ~self.o.ready):
                        m.d.sync += self.overruns.eq(self.overruns + 1)
                    with m.Else():
                        m.d.sync += [self.o.payload.eq(data), self.o.valid.eq(1)]
                    m.next = "Idle"
            with m.State("Break"):
                with m.If(line):
                    m.next = "Idle"
        return m


class UART(_BitTimed):
    """A receiver and a transmitter at one baud rate.

    Parameters
    ----------
    divisor : clock cycles per bit, at least 4 (see :func:`uart_divisor`)

    Members
    -------
    rx : Out(stream.Signature(8))
        Bytes received on ``rx_pin``.
    tx : In(stream.Signature(8))
        Bytes to send on ``tx_pin``.
    rx_pin : In(1)
        The serial input line (asynchronous), high when idle.
    tx_pin : Out(1)
        The serial output line, high when idle.
    framing_errors, overruns : Out(16)
        The receiver's counts of dropped bytes (:class:`UARTReceiver`).

    Latency and back-pressure are those of :class:`UARTReceiver` and :class:`UARTTransmitter`.
    """

    rx: Out(stream.Signature(8))
    tx: In(stream.Signature(8))
    rx_pin: In(1, init=1)
    tx_pin: Out(1, init=1)
    framing_errors: Out(16)
    overruns: Out(16)

    def elaborate(self, platform):
        m = Module()
        m.submodules.receiver = receiver = UARTReceiver(self._divisor)
        m.submodules.transmitter = transmitter = UARTTransmitter(self._divisor)
        wiring.connect(m, receiver.o, wiring.flipped(self.rx))
        wiring.connect(m, wiring.flipped(self.tx), transmitter.i)
        m.d.comb += [
            receiver.rx.eq(self.rx_pin),
            self.tx_pin.eq(transmitter.tx),
            self.framing_errors.eq(receiver.framing_errors),
            self.overruns.eq(receiver.overruns),
        ]
        return m
