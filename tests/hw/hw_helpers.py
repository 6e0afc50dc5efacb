"""Shared pieces of the gateware tests: small random integer models and their loading, the
primitives a component becomes on the ECP5, and a clocked simulation run."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from amaranth.hdl import Const, Fragment, Instance
from amaranth.sim import Simulator

from sparsemac.hw.core import LoadTarget
from sparsemac.hw.parameters import EngineParameters, layer_layout, row_param_layout
from sparsemac.sw.format import pack_model
from sparsemac.sw.numerics import signed_range
from sparsemac.hw.command import build_info
from sparsemac.sw.protocol import Target, memory_writes
from sparsemac.sw.quantize import QuantLayer, QuantModel


def random_layer(rng, name, rows, columns, *, density, weight_bits=8, relu=True,
                 activation_bits=8, extreme=False) -> QuantLayer:
    lo, hi = signed_range(weight_bits)
    weight = rng.integers(lo if extreme else lo + 1, hi + 1, size=(rows, columns))
    if extreme:
        weight = np.where(rng.random((rows, columns)) < 0.5, lo, hi)
    weight = np.where(rng.random((rows, columns)) < density, weight, 0).astype(np.int64)
    bias = rng.integers(-2000, 2001, size=rows)
    multiplier = rng.integers(1 << 15, 1 << 16, size=rows)
    scale = max(1, int(np.abs(weight).sum(axis=1).max()) * (1 << (activation_bits - 1)))
    base = max(1, scale.bit_length() + 16 - activation_bits)
    shift = np.clip(base + rng.integers(-3, 4, size=rows), 0, 63)
    if extreme:
        shift[rng.random(rows) < 0.3] = 0
        shift[rng.random(rows) < 0.2] = 63
    return QuantLayer(name, weight, bias, multiplier.astype(np.int64),
                      shift.astype(np.int64), relu, weight_bits)


def random_input(rng, size, activation_bits=8, zero_fraction=0.4) -> np.ndarray:
    lo, hi = signed_range(activation_bits)
    x = rng.integers(lo, hi + 1, size=size)
    return np.where(rng.random(size) < zero_fraction, 0, x).astype(np.int64)


def pack(layers, params: EngineParameters, **kwargs):
    model = QuantModel(tuple(layers), params.activation_bits)
    return pack_model(model, lanes=params.lanes, max_run_bits=params.max_run_bits, **kwargs)


_TARGETS = {Target.POINTER: LoadTarget.POINTER, Target.ENTRY: LoadTarget.ENTRY,
            Target.PARAM: LoadTarget.PARAM, Target.LAYER: LoadTarget.LAYER}


def core_writes(image, params: EngineParameters, timing):
    """(target, lane, address, data) for every memory word the image loads into a Core."""
    words = []
    for write in memory_writes(image, build_info(params, timing)):
        for offset, item in enumerate(write.items):
            if write.target == Target.PARAM:
                bias, multiplier, shift = item
                data = Const.cast(row_param_layout(params).const(
                    {"bias": bias, "multiplier": multiplier, "shift": shift})).value
            elif write.target == Target.LAYER:
                data = Const.cast(layer_layout(params).const({
                    "columns": item.columns, "groups": item.groups, "slots": item.slots,
                    "value_bits": item.value_bits, "run_bits": item.run_bits,
                    "relu": int(item.relu), "entry_base": item.entry_base,
                    "pointer_base": item.pointer_base, "param_base": item.param_base})).value
            else:
                data = int(item)
            words.append((_TARGETS[write.target], write.lane, write.address + offset, data))
    return words


def ecp5_instances(component) -> list[tuple[str, Instance]]:
    """(name, instance) of each primitive ``component`` elaborates into on an ECP5 platform."""
    fragment = Fragment.get(component, SimpleNamespace(family="ecp5"))
    return [(name, sub) for sub, name, _ in fragment.subfragments if isinstance(sub, Instance)]


def run_clocked(dut, *testbenches) -> None:
    """Simulate ``dut`` on a 1 MHz clock until every testbench has returned."""
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for testbench in testbenches:
        sim.add_testbench(testbench)
    sim.run()
