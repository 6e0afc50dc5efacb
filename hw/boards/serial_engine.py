"""The engine behind a UART: what every board top holds, and what the pty test simulates."""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..block_ram_fifo import BlockRAMFIFO
from ..engine import Engine
from ..parameters import EngineParameters
from ..skid_buffer import RegisterStage, SkidBuffer
from ..uart import UART

__all__ = ["SerialEngine"]


class SerialEngine(wiring.Component):
    """The engine's two byte streams on a UART's two pins, through a FIFO each way.

    Parameters
    ----------
    params : EngineParameters
    divisor : clock cycles per UART bit (:func:`sparsemac.hw.uart.uart_divisor`)
    rx_fifo_depth, tx_fifo_depth : bytes each FIFO's block RAM buffers from and to the line
        (the FIFO holds :attr:`BlockRAMFIFO.OUTPUT_WORDS` more in its output registers)

    Members
    -------
    rx : In(1)
        Serial data from the host (the USB bridge's TXD), high when idle.
    tx : Out(1)
        Serial data to the host.
    framing_errors, overruns : Out(16)
        Bytes lost on the line (bad stop bit) or for want of room in the receive FIFO.

    Each FIFO is a :class:`BlockRAMFIFO`, whose output comes from registers (a
    ``SyncFIFOBuffered``'s block RAM read, late out of the block, was the 16-lane ULX3S
    build's worst path at one seed, docs/fpga.md), and meets the engine through registers,
    so neither a FIFO's logic (its level and enables) nor the engine's command processor
    sees the other's in the same cycle: the transmit FIFO through a :class:`SkidBuffer`, the
    receive FIFO through a :class:`RegisterStage`, which passes a byte every other cycle,
    far above the line's rate.

    Latency and back-pressure: the line has no flow control, so the receive FIFO must hold
    whatever the host sends while the engine does not take bytes: during a RUN (one byte per
    ``10 * divisor`` cycles arrives) and while a response waits for room in the transmit
    FIFO (a response longer than ``tx_fifo_depth`` bytes drains at the line rate). Bytes that
    find the receive FIFO full are dropped and counted in ``overruns``; the host then
    resynchronises (docs/protocol.md section 1).
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)
    framing_errors: Out(16)
    overruns: Out(16)

    def __init__(self, params: EngineParameters, divisor: int, *, rx_fifo_depth: int = 512,
                 tx_fifo_depth: int = 512):
        try:
            if not isinstance(params, EngineParameters):
                raise TypeError(f"Parameters must be an EngineParameters, not {params!r}")
            for name, depth in (("Receive", rx_fifo_depth), ("Transmit", tx_fifo_depth)):
                if not isinstance(depth, int) or depth < 2:
                    raise ValueError(f"{name} FIFO depth must be an integer of at least 2, "
                                     f"not {depth!r}")
            self._uart = UART(divisor)                   # checks the divisor
        except (TypeError, ValueError):
            self._MustUse__silence = True                # refused: no "never used" warning
            raise
        self._params = params
        self._divisor = divisor
        self._rx_depth = rx_fifo_depth
        self._tx_depth = tx_fifo_depth
        self._engine = Engine(params)
        super().__init__()

    @property
    def params(self) -> EngineParameters:
        return self._params

    @property
    def divisor(self) -> int:
        return self._divisor

    @property
    def engine(self) -> Engine:
        return self._engine

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = engine = self._engine
        m.submodules.uart = uart = self._uart
        m.submodules.rx_fifo = rx_fifo = BlockRAMFIFO(8, self._rx_depth, name="rx_bytes")
        m.submodules.tx_fifo = tx_fifo = BlockRAMFIFO(8, self._tx_depth, name="tx_bytes")

        # Received bytes: the UART's stream into the FIFO; a full FIFO loses the byte.
        lost = uart.rx.valid & ~rx_fifo.w_stream.ready
        m.d.comb += [
            rx_fifo.w_stream.payload.eq(uart.rx.payload),
            rx_fifo.w_stream.valid.eq(uart.rx.valid),
            uart.rx.ready.eq(1),
        ]
        m.submodules.rx_stage = rx_stage = RegisterStage(8)
        m.submodules.tx_skid = tx_skid = SkidBuffer(8)
        wiring.connect(m, rx_fifo.r_stream, rx_stage.i)
        wiring.connect(m, rx_stage.o, engine.i)
        wiring.connect(m, engine.o, tx_skid.i)
        wiring.connect(m, tx_skid.o, tx_fifo.w_stream)
        wiring.connect(m, tx_fifo.r_stream, uart.tx)
        m.d.comb += [
            uart.rx_pin.eq(self.rx),
            self.tx.eq(uart.tx_pin),
            self.framing_errors.eq(uart.framing_errors),
        ]
        with m.If(lost):
            m.d.sync += self.overruns.eq(self.overruns + 1)
        return m
