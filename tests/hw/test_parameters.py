# amaranth: UnusedElaboratable=no
"""Build parameters are checked at construction, with messages that say what was wrong."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sparsemac.hw import Engine, EngineParameters
from sparsemac.sw.golden import EngineTiming


@pytest.mark.parametrize("fields,message", [
    (dict(lanes=0), "Lane count must be 1 to 32, not 0"),
    (dict(lanes=33), "Lane count must be 1 to 32, not 33"),
    (dict(weight_bits=3), "Weight width must be 4 to 16 bits, not 3"),
    (dict(activation_bits=12), r"Activation width must be one of \(8, 16\) bits, not 12"),
    (dict(accumulator_bits=48), "Accumulator width must be 9 to 47 bits, not 48"),
    (dict(max_run_bits=9), "Largest run width must be 1 to 8 bits, not 9"),
    (dict(word_bits=24, weight_bits=16), "power of two of at least 20 bits, not 24"),
    (dict(word_bits=8), "power of two of at least 12 bits, not 8"),
    (dict(entry_words=0), "entry_words must be at least 1, not 0"),
    (dict(entry_words=7), "Entry words per lane must be even, not 7"),
    (dict(fifo_depth=0), "fifo_depth must be at least 1, not 0"),
    (dict(lanes=4, lanes_per_output_stage=3), "must divide the 4 lanes, not 3"),
    (dict(lanes=4, lanes_per_output_stage=8), "must divide the 4 lanes, not 8"),
    (dict(lanes=4, lanes_per_output_stage=0), "must divide the 4 lanes, not 0"),
])
def test_bad_parameters_are_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        EngineParameters(**fields)


def test_non_integers_are_refused():
    with pytest.raises(TypeError, match="lanes must be an integer, not 2.0"):
        EngineParameters(lanes=2.0)


def test_engine_construction():
    engine = Engine(lanes=3, fifo_depth=6)
    assert engine.params == EngineParameters(lanes=3, fifo_depth=6)
    assert engine.timing == EngineTiming(fifo_depth=13, broadcast_latency=8, mac_latency=11,
                                         output_latency=13, layer_overhead=5)
    assert engine.build_info.lanes == 3
    shared = Engine(lanes=6, lanes_per_output_stage=3)
    assert shared.params.output_stages == 2
    assert shared.timing.lanes_per_output_stage == 3
    assert shared.build_info.timing.lanes_per_output_stage == 3
    assert set(engine.signature.members) == {"i", "o"}
    with pytest.raises(TypeError, match="not both"):
        Engine(EngineParameters(), lanes=2)


def test_default_timing_is_the_default_build():
    # run_golden without a timing (the CLI's golden, the demo without an engine) predicts
    # the default build; a deeper FIFO changes D and only D.
    assert Engine(EngineParameters()).timing == EngineTiming()
    deeper = Engine(EngineParameters(fifo_depth=8)).timing
    assert deeper.fifo_depth == EngineTiming().fifo_depth + 4
    assert replace(deeper, fifo_depth=EngineTiming().fifo_depth) == EngineTiming()
