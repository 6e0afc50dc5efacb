import numpy as np
import pytest

from sparsemac.sw.footprint import (expected_fillers_per_nonzero, footprint, paper_bitmask_bytes,
                                    paper_csrc_bytes, position_entropy_bits)
from sparsemac.sw.format import pack_model
from sparsemac.sw.quantize import QuantModel

from factories import random_layer

MB = 1e6   # the paper's megabytes are decimal


@pytest.mark.parametrize("nonzeros, csrc_mb", [(2.13e6, 1.06), (1.09e6, 0.54), (0.46e6, 0.23), (0.25e6, 0.13)])
def test_paper_table5(nonzeros, csrc_mb):
    # Zhu & Gupta Table 5, sparse MobileNet, 4.21M parameters. The paper prints nonzeros to
    # two digits (+-0.005M, so +-0.0025 MB of CSR(C)) and rounds MB to two digits.
    assert abs(paper_csrc_bytes(int(nonzeros), run_bits=4) / MB - csrc_mb) <= 0.0025 + 0.005
    assert abs(paper_bitmask_bytes(4.21e6) / MB - 0.52) <= 0.0075    # 0.526, printed 0.52


def test_paper_table6_large_sparse_size():
    # 50% sparse MobileNet: 2.13M nonzeros x 4 bytes + the smaller overhead (bit-mask) = 9.04 MB.
    size = 2.13e6 * 4 + min(paper_bitmask_bytes(4.21e6), paper_csrc_bytes(int(2.13e6)))
    assert abs(size / MB - 9.04) < 0.01


@pytest.mark.parametrize("density, b, bits", [(0.10, 4, 14.7), (0.10, 5, 13.5), (0.10, 6, 14.0),
                                              (0.05, 4, 21.4), (0.05, 5, 16.1), (0.05, 6, 14.5)])
def test_filler_expectation_matches_anchors(density, b, bits):
    assert round((8 + b) * (1 + expected_fillers_per_nonzero(density, b)), 1) == bits


def test_entropy_floor():
    assert round(position_entropy_bits(0.10), 1) == 4.7
    assert round(position_entropy_bits(0.05), 1) == 5.7


def test_measured_filler_rate_matches_expectation(rng):
    # Independent positions at 5% density, 6-bit runs, one lane (so gaps run over all rows).
    layer = random_layer(rng, 4000, 60, 0.05)
    image = pack_model(QuantModel((layer,), 8), lanes=1, run_bits=4)
    report = footprint(image).layers[0]
    expected = expected_fillers_per_nonzero(0.05, 4)
    assert abs(report.fillers / report.nonzeros - expected) < 0.1 * expected
    assert report.bits_per_nonzero == pytest.approx(12 * (1 + report.fillers / report.nonzeros))


def test_layer_report_fields(rng):
    layer = random_layer(rng, 100, 80, 0.1)
    image = pack_model(QuantModel((layer,), 8), lanes=4)
    report = footprint(image)
    row = report.layers[0]
    assert row.nonzeros == np.count_nonzero(layer.weight)
    assert row.dense_bytes == 100 * 80
    assert row.bitmask_bytes == 100 * 80 / 8
    assert row.entry_bytes == (row.nonzeros + row.fillers) * (8 + row.run_bits) / 8
    assert row.image_bytes == row.entry_bytes + row.pointer_bytes + row.row_parameter_bytes
    assert 0 < row.lane_balance <= 1
    assert report.as_dict()["total"]["nonzeros"] == row.nonzeros
