"""cocotb testbenches through cocotb_tools.runner on a shared Verilator build."""

import pytest

from sparsemac.sim.testbench import SimulationFailed, run_cocotb

from conftest import ADD_ECHO
from standin import AddEcho


def test_addecho_cocotb(tmp_path):
    run_cocotb(AddEcho, ADD_ECHO, "cocotb_addecho", test_dir=tmp_path, seed=1234)


def test_failure_names_the_test(tmp_path):
    # The testbench expects `add`, so a design built with a different addend fails its checks.
    with pytest.raises(SimulationFailed, match=r"echo_full_speed"):
        run_cocotb(AddEcho, ADD_ECHO, "cocotb_addecho", testcase="echo_full_speed",
                   test_dir=tmp_path, extra_env={"SPARSEMAC_PARAMS": '{"add": 8}'})
