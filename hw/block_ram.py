"""A memory read through an output register: on the ECP5, block RAMs with their own."""

from __future__ import annotations

from amaranth.hdl import ClockSignal, Const, Instance, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["BlockRAM", "LoadSignature", "ReadSignature"]

#: The ECP5 DP16KD's data widths and the depth each gives its 16,384 bits (18 with the two
#: parity bits), widest first. A word address sits on the block's address pins from
#: ``log2(16384 / depth)`` up; below it x18 has two byte write enables, the others nothing.
_DP16KD_MODES = ((18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384))
_DP16KD_ADDRESS_PINS = 14


def LoadSignature(addr_bits: int, data_bits: int) -> wiring.Signature:
    """A write strobe into one of a block's memories, from the host's loader."""
    return wiring.Signature({
        "en": Out(1),
        "addr": Out(addr_bits),
        "data": Out(data_bits),
    })


def ReadSignature(addr_bits: int, data_bits: int) -> wiring.Signature:
    """A read port: address and enable in, the word two cycles later out."""
    return wiring.Signature({
        "en": Out(1),
        "addr": Out(addr_bits),
        "data": In(data_bits),
    })


def require_positive(component: wiring.Component, what: str, **values) -> None:
    """Refuse ``values`` (a memory's shape) unless each is a positive integer."""
    for name, value in values.items():
        if not isinstance(value, int) or value < 1:
            component._MustUse__silence = True   # refused: no "never used" warning later
            raise ValueError(f"{what} {name.replace('_', ' ')} must be a positive integer, "
                             f"not {value!r}")


def _dp16kd_mode(depth: int) -> tuple[int, int] | None:
    """The widest DP16KD data width whose depth holds ``depth`` words, and that depth."""
    fitting = [(width, words) for width, words in _DP16KD_MODES if words >= depth]
    return fitting[0] if fitting else None


class BlockRAM(wiring.Component):
    """``width`` x ``depth`` words, one write port, and read ports whose data comes out of a
    register: a read enabled in cycle ``t`` shows its word in ``t + 2`` (in ``t + 1``, out
    of the block itself, with ``output_register=False``).

    A block RAM's read data leaves the block late in its cycle (the ECP5's DP16KD 5.6-5.8 ns
    after the clock without its output register), and a lane's block RAM reads, each into a
    register across the device's routing, were the 16-lane ULX3S build's worst paths
    (docs/fpga.md). On an ECP5 platform (``platform.family == "ecp5"``) the memory is
    therefore DP16KDs with the output register of their read port on (a copy per read
    port, the write port on each copy's port A); elsewhere, in simulation, and on the ECP5
    for a memory deeper than one block (16,384 words), it is an Amaranth ``Memory`` whose
    synchronous read ports each feed a register. Both give the same words in the same
    cycles.

    A read of the address written in the same cycle returns anything (the DP16KD's port
    collision; boards tell Yosys the same of the ``Memory``, hw/boards
    ``NO_READ_MEETS_WRITE``): the callers never do it. With ``en`` low a read port keeps
    the word it last read. The contents start as zeros.

    Parameters
    ----------
    width, depth : int
        Word width in bits and words.
    read_ports : int
        How many read ports (each its own copy of the blocks on the ECP5).
    name : str
        The ``Memory``'s name in the netlist, by which the boards' Yosys scripts select it.
    output_register : bool
        Whether the read data is registered after the block (:attr:`latency` 2) or not (1:
        for a slow clock, where the register would only cost flip-flops).

    Members
    -------
    write : In(LoadSignature(addr_bits, width))
        Writes ``data`` at ``addr`` when ``en``.
    read : In(ReadSignature(addr_bits, width)).array(read_ports)
        Each reads ``addr`` when ``en``; ``data`` is the word read :attr:`latency` cycles
        before.
    """

    #: Cycles from a read's address to its word on ``data``, with the output register.
    LATENCY = 2

    def __init__(self, width: int, depth: int, *, read_ports: int = 1, name: str,
                 output_register: bool = True):
        require_positive(self, "Block RAM", width=width, depth=depth,
                         read_port_count=read_ports)
        self._width = width
        self._depth = depth
        self._name = name
        self._output_register = bool(output_register)
        addr_bits = max(1, (depth - 1).bit_length())
        super().__init__({
            "write": In(LoadSignature(addr_bits, width)),
            "read": In(ReadSignature(addr_bits, width)).array(read_ports),
        })

    @property
    def width(self) -> int:
        return self._width

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def latency(self) -> int:
        """Cycles from a read's address to its word on ``data``."""
        return self.LATENCY if self._output_register else 1

    def elaborate(self, platform):
        m = Module()
        mode = _dp16kd_mode(self._depth)
        if getattr(platform, "family", None) == "ecp5" and mode is not None:
            self._elaborate_ecp5(m, *mode)
        else:
            self._elaborate_memory(m)
        return m

    def _elaborate_memory(self, m: Module) -> None:
        memory = Memory(shape=self._width, depth=self._depth, init=[])
        m.submodules[self._name] = memory
        write = memory.write_port()
        m.d.comb += [write.en.eq(self.write.en), write.addr.eq(self.write.addr),
                     write.data.eq(self.write.data)]
        for index, port in enumerate(self.read):
            read = memory.read_port()
            m.d.comb += [read.en.eq(port.en), read.addr.eq(port.addr)]
            if self._output_register:
                word = Signal(self._width, name=f"word{index}", reset_less=True)
                m.d.sync += word.eq(read.data)
                m.d.comb += port.data.eq(word)
            else:
                m.d.comb += port.data.eq(read.data)

    def _elaborate_ecp5(self, m: Module, block_width: int, block_depth: int) -> None:
        lsb = (16384 // block_depth).bit_length() - 1

        def address_pins(prefix, addr):
            def pin(i):
                if lsb <= i < lsb + len(addr):
                    return addr[i - lsb]
                # x18's two low pins are its byte write enables, on for a whole word.
                return Const(1 if block_width == 18 and i < 2 else 0)
            return {f"i_{prefix}{i}": pin(i) for i in range(_DP16KD_ADDRESS_PINS)}

        write_pins = address_pins("ADA", self.write.addr)
        for index, port in enumerate(self.read):
            read_pins = address_pins("ADB", port.addr)
            for low in range(0, self._width, block_width):
                bits = min(block_width, self._width - low)
                m.submodules[f"{self._name}_read{index}_bits{low}"] = Instance(
                    "DP16KD",
                    p_DATA_WIDTH_A=block_width, p_DATA_WIDTH_B=block_width,
                    # Port A only writes; port B only reads (through its output register).
                    p_REGMODE_A="NOREG",
                    p_REGMODE_B="OUTREG" if self._output_register else "NOREG",
                    p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL",
                    p_CSDECODE_A="0b000", p_CSDECODE_B="0b000",
                    p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC", p_GSR="DISABLED",
                    i_CLKA=ClockSignal(), i_CEA=Const(1), i_OCEA=Const(1),
                    i_WEA=self.write.en, i_RSTA=Const(0),
                    **{f"i_CSA{i}": Const(0) for i in range(3)},
                    **write_pins,
                    **{f"i_DIA{i}": self.write.data[low + i] if i < bits else Const(0)
                       for i in range(18)},
                    i_CLKB=ClockSignal(), i_CEB=port.en, i_OCEB=Const(1),
                    i_WEB=Const(0), i_RSTB=Const(0),
                    **{f"i_CSB{i}": Const(0) for i in range(3)},
                    **read_pins,
                    **{f"i_DIB{i}": Const(0) for i in range(18)},
                    **{f"o_DOB{i}": port.data[low + i] for i in range(bits)},
                )
