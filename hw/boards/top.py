"""The board top shared by every board: clock, power-on reset, the engine behind the UART."""

from amaranth.hdl import ClockDomain, DomainRenamer, Elaboratable, Module, Signal
from amaranth.lib import cdc, io

from ..parameters import EngineParameters
from ..power_on_reset import PowerOnReset
from ..uart import uart_divisor
from . import Board
from .serial_engine import SerialEngine

__all__ = ["BoardTop"]

#: Time the design is held in reset after the clock locks (iCE40 block RAMs read as zero
#: for about 3 us after configuration; five times that).
RESET_DELAY = 15e-6


class BoardTop(Elaboratable):
    """The engine on ``board``: a PLL to ``frequency``, reset until it locks (plus
    :data:`RESET_DELAY`), and a :class:`SerialEngine` on the board's ``uart`` resource.

    Parameters
    ----------
    board : Board
    params : EngineParameters, optional
        Default: the board's.
    frequency : float, optional
        Engine clock in Hz. Default: the board's; the PLL makes the nearest it can (within 1%).
    baudrate : int, optional
        Default: the board's. Refused (ValueError) if the engine clock cannot make it within 2%.
    uart : int
        Which ``uart`` resource carries the link (0: the board's USB bridge).

    The first LED (where the board has one) is lit while the engine is out of reset; the
    second lights once a byte has been lost on the link (framing error or full FIFO).
    """

    def __init__(self, board: Board, params: EngineParameters | None = None, *,
                 frequency: float | None = None, baudrate: int | None = None, uart: int = 0):
        try:
            self._configure(board, params, frequency, baudrate, uart)
        except (ValueError, TypeError):
            self._MustUse__silence = True                # never elaborated: no warning
            raise

    def _configure(self, board, params, frequency, baudrate, uart):
        self.board = board
        self.params = board.params if params is None else params
        self.requested_frequency = board.frequency if frequency is None else frequency
        self.baudrate = board.baudrate if baudrate is None else baudrate
        self.uart = uart
        self.frequency = self._made_frequency()
        self.divisor = uart_divisor(self.frequency, self.baudrate)

    def _made_frequency(self) -> float:
        from ..pll import ecp5_pll, ice40_pll

        if self.requested_frequency == self.board.oscillator:
            return self.board.oscillator
        pll = ice40_pll if self.board.family == "ice40" else ecp5_pll
        return pll(self.board.oscillator, self.requested_frequency).frequency

    def elaborate(self, platform):
        m = Module()
        clk, locked = self.board.make_clock()(m, platform, self.requested_frequency)

        m.domains.sync = sync = ClockDomain()
        m.domains.por = por = ClockDomain(reset_less=True, local=True)
        m.d.comb += [sync.clk.eq(clk), por.clk.eq(clk)]
        # No constraint of our own on the engine clock: nextpnr derives it from the PLL's
        # settings and the oscillator's constraint (its log says "Derived frequency
        # constraint"); Amaranth's name for the net would not survive synthesis anyway.
        locked_sync = Signal()
        m.submodules.lock_sync = cdc.FFSynchronizer(locked, locked_sync, o_domain="por")
        delay = max(1, int(RESET_DELAY * self.frequency))
        m.submodules.power_on_reset = power_on = DomainRenamer("por")(PowerOnReset(delay))
        in_reset = power_on.reset
        m.d.comb += [power_on.locked.eq(locked_sync),
                     sync.rst.eq(self.board.distribute_reset()(m, in_reset))]

        m.submodules.link = link = SerialEngine(self.params, self.divisor)
        pins = platform.request("uart", self.uart, dir="-")
        m.submodules.rx_buffer = rx_buffer = io.Buffer("i", pins.rx)
        m.submodules.tx_buffer = tx_buffer = io.Buffer("o", pins.tx)
        m.d.comb += [link.rx.eq(rx_buffer.i), tx_buffer.o.eq(link.tx)]

        lost = Signal()
        with m.If((link.framing_errors != 0) | (link.overruns != 0)):
            m.d.sync += lost.eq(1)
        for k, value in enumerate((~in_reset, lost)):
            led = io.Buffer("o", platform.request("led", k, dir="-"))
            m.submodules[f"led{k}"] = led
            m.d.comb += led.o.eq(value)
        return m
