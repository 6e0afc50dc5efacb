"""The engine top: a command processor and a core behind two byte streams."""


from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from sparsemac.sw.golden import EngineTiming
from sparsemac.sw.protocol import BuildInfo

from .command import CommandProcessor, build_info
from .core import Core, core_timing
from .parameters import EngineParameters

__all__ = ["Engine"]


class Engine(wiring.Component):
    """The sparsemac engine: load a pruned model, run it, read its outputs, over bytes.

    The protocol is docs/protocol.md; the cycle model of a run is docs/engine.md section 4
    with the constants of :attr:`timing`.

    Parameters
    ----------
    params : EngineParameters, optional
        The build's sizes; keyword arguments are passed to :class:`EngineParameters`
        instead when ``params`` is omitted, e.g. ``Engine(lanes=8, bank_depth=64)``.

    Members
    -------
    i : In(stream.Signature(8))
        Command bytes from the host (``i__payload``, ``i__valid``, ``i__ready`` in Verilog).
    o : Out(stream.Signature(8))
        Response bytes to the host (``o__payload``, ``o__valid``, ``o__ready``).

    Latency and back-pressure: at most one command byte per cycle; ``i.ready`` is low while
    a command executes or its response is sent, and response bytes wait for ``o.ready``.
    A RUN's response follows the run's last cycle.
    """

    i: In(stream.Signature(8))
    o: Out(stream.Signature(8))

    def __init__(self, params: EngineParameters | None = None, **kwargs):
        if params is None:
            params = EngineParameters(**kwargs)
        elif kwargs:
            raise TypeError("Give either an EngineParameters or keyword arguments, not both")
        elif not isinstance(params, EngineParameters):
            raise TypeError(f"Parameters must be an EngineParameters, not {params!r}")
        self._params = params
        super().__init__()

    @property
    def params(self) -> EngineParameters:
        return self._params

    @property
    def timing(self) -> EngineTiming:
        """The constants of this build's cycle model (docs/engine.md section 4)."""
        return core_timing(self._params)

    @property
    def build_info(self) -> BuildInfo:
        """What this build answers to INFO."""
        return build_info(self._params, self.timing)

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = Core(self._params)
        m.submodules.command = command = CommandProcessor(self._params, self.timing)
        wiring.connect(m, wiring.flipped(self.i), command.i)
        wiring.connect(m, command.o, wiring.flipped(self.o))
        wiring.connect(m, command.core_load, core.load)
        m.d.comb += [
            core.start.eq(command.core_start),
            core.first_layer.eq(command.core_first_layer),
            core.layer_count.eq(command.core_layer_count),
            core.clear.eq(command.core_clear),
            command.core_busy.eq(core.busy),
            command.core_cycles.eq(core.cycles),
            command.core_result_buffer.eq(core.result_buffer),
            command.core_result_slots.eq(core.result_slots),
            core.act_en.eq(command.core_act_en),
            core.act_lane.eq(command.core_act_lane),
            core.act_buffer.eq(command.core_act_buffer),
            core.act_addr.eq(command.core_act_addr),
            command.core_act_data.eq(core.act_data),
        ]
        return m
