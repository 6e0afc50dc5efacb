import numpy as np
import pytest
from hypothesis import given, strategies as st

from sparsemac.sw.numerics import (accumulator_bits_needed, check_activation_bits,
                                   check_weight_bits, quantize_multiplier, requantize)


def reference_requantize(acc: int, multiplier: int, shift: int, relu: bool, bits: int) -> int:
    """docs/numerics.md section 5 in Python's unbounded integers."""
    t = (acc * multiplier + (1 << (shift - 1))) >> shift if shift > 0 else acc * multiplier
    lo = 0 if relu else -(1 << (bits - 1))
    return max(lo, min(t, (1 << (bits - 1)) - 1))


@pytest.mark.parametrize("acc, multiplier, shift, relu, expected", [
    (5, 32768, 16, False, 3),          # 2.5 rounds half up
    (-5, 32768, 16, False, -2),        # -2.5 rounds half up, toward +infinity
    (-7, 32768, 16, False, -3),        # -3.5
    (1000, 65535, 16, False, 127),     # clamped to the 8-bit maximum
    (-1000, 65535, 16, False, -128),   # clamped to the 8-bit minimum
    (-1000, 65535, 16, True, 0),       # ReLU
    (3, 1, 0, False, 3),               # shift 0: no rounding term
    (0, 65535, 63, False, 0),
])
def test_requantize_worked_cases(acc, multiplier, shift, relu, expected):
    # The table of docs/numerics.md section 5, worked by hand.
    assert requantize(np.array([acc]), np.array([multiplier]), np.array([shift]),
                      relu=relu, activation_bits=8)[0] == expected


@given(acc=st.integers(-(1 << 46) + 1, (1 << 46) - 1), multiplier=st.integers(0, (1 << 16) - 1),
       shift=st.integers(0, 63), relu=st.booleans(), bits=st.sampled_from([8, 16]))
def test_requantize_matches_unbounded_integers(acc, multiplier, shift, relu, bits):
    got = requantize(np.array([acc]), np.array([multiplier]), np.array([shift]),
                     relu=relu, activation_bits=bits)[0]
    assert got == reference_requantize(acc, multiplier, shift, relu, bits)


@given(st.floats(1e-12, 65535.0, allow_nan=False))
def test_quantize_multiplier_is_normalised_and_close(real):
    m, s = quantize_multiplier(np.array([real]))
    m, s = int(m[0]), int(s[0])
    assert 0 <= s <= 63
    if s < 63:
        assert (1 << 15) <= m < (1 << 16)
        assert abs(m * 2.0 ** -s - real) <= real * 2.0 ** -16
    else:   # denormalised: the absolute error is at most half a unit of 2**-63
        assert abs(m * 2.0 ** -63 - real) <= 2.0 ** -64 * 1.0000001


def test_quantize_multiplier_edges():
    m, s = quantize_multiplier(np.array([0.0, 1.0, 0.5, 1.0 - 2 ** -20]))
    assert m.tolist() == [0, 32768, 32768, 32768] and s.tolist() == [0, 15, 16, 15]
    with pytest.raises(ValueError, match="2\\*\\*16 or more"):
        quantize_multiplier(np.array([65536.0]))
    with pytest.raises(ValueError, match="finite and non-negative"):
        quantize_multiplier(np.array([-1.0]))
    with pytest.raises(ValueError, match="finite"):
        quantize_multiplier(np.array([np.nan]))


def test_accumulator_bits_worked_case():
    # Row 0: |3| + |-4| = 7, times 128 = 896, plus |bias| 100 = 996 -> 10 bits + sign = 11.
    weight = np.array([[3, -4], [1, 0]])
    assert accumulator_bits_needed(weight, np.array([-100, 5]), 8) == 11
    assert accumulator_bits_needed(np.zeros((2, 2), int), None, 8) == 1


def test_width_checks():
    assert check_weight_bits(4) == 4 and check_weight_bits(16) == 16
    for bad in (3, 17, 8.0, "8"):
        with pytest.raises(ValueError, match="Weight width must be"):
            check_weight_bits(bad)
    with pytest.raises(ValueError, match="Activation width must be one of"):
        check_activation_bits(12)
