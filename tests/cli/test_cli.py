"""The CLI end to end: each command, and every user error as one line with no traceback."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from sparsemac.cli import main
from sparsemac.sw import load_image, load_model, model_from_arrays, run_golden, save_model, unpack_model


@pytest.fixture
def weights(tmp_path, rng):
    w = [rng.standard_normal((40, 30)), rng.standard_normal((10, 40))]
    path = tmp_path / "model.npz"
    save_model(model_from_arrays(w, [rng.standard_normal(40), rng.standard_normal(10)]), path)
    return path


def run(*argv: str) -> int:
    return main([str(a) for a in argv])


def test_user_path(weights, tmp_path, rng, capsys):
    pruned, image, back = tmp_path / "pruned.npz", tmp_path / "m.smac", tmp_path / "back.npz"
    assert run("prune", weights, "-o", pruned, "--sparsity", 0.9, "--scope", "global") == 0
    model = load_model(pruned)
    total = sum(layer.weight.size for layer in model.layers)
    assert sum(np.count_nonzero(layer.weight) for layer in model.layers) == total - round(0.9 * total)

    assert run("pack", pruned, "-o", image, "--lanes", 4, "--run-bits", "auto") == 0
    assert "Footprint" in capsys.readouterr().out

    assert run("inspect", image, "--json") == 0
    report = __import__("json").loads(capsys.readouterr().out)
    assert report["lanes"] == 4 and report["total"]["nonzeros"] <= total - round(0.9 * total)

    assert run("unpack", image, "-o", back) == 0
    unpacked = load_model(back)
    expected = unpack_model(load_image(image))
    for got, want in zip(unpacked.layers, expected.layers):
        assert np.array_equal(got.weight, want.weight) and np.array_equal(got.bias, want.bias)

    x = rng.integers(-128, 128, (7, 30))
    np.save(tmp_path / "x.npy", x)
    assert run("golden", image, "--input", tmp_path / "x.npy", "-o", tmp_path / "y.npy") == 0
    assert "cycles per run" in capsys.readouterr().out
    assert np.array_equal(np.load(tmp_path / "y.npy"), run_golden(load_image(image), x).outputs)
    assert run("golden", image, "--input", tmp_path / "x.npy", "-o", tmp_path / "a.npy", "--accumulators") == 0
    assert np.load(tmp_path / "a.npy").shape == (7, 40)

    np.save(tmp_path / "xf.npy", rng.standard_normal((3, 30)))     # floats are quantized
    assert run("golden", image, "--input", tmp_path / "xf.npy", "-o", tmp_path / "yf.npy") == 0
    assert np.load(tmp_path / "yf.npy").shape == (3, 10)


def test_example_command(tmp_path, capsys):
    assert run("example", "-o", tmp_path / "ex") == 0
    out = capsys.readouterr().out
    assert "Footprint" in out and "cycles per run" in out
    assert (tmp_path / "ex" / "example.smac").exists()


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_errors(weights, tmp_path, rng, capsys):
    image = tmp_path / "m.smac"
    assert run("pack", weights, "-o", image) == 0
    capsys.readouterr()

    assert run("pack", tmp_path / "absent.npz", "-o", image) == 1
    assert "absent.npz" in error_line(capsys)

    (tmp_path / "corrupt.smac").write_bytes(image.read_bytes()[:-9])
    assert run("inspect", tmp_path / "corrupt.smac") == 1
    assert "truncated" in error_line(capsys)

    data = bytearray(image.read_bytes())
    data[100] ^= 1
    (tmp_path / "flipped.smac").write_bytes(bytes(data))
    assert run("unpack", tmp_path / "flipped.smac", "-o", tmp_path / "o.npz") == 1
    assert "checksum" in error_line(capsys)

    assert run("prune", weights, "-o", tmp_path / "p.npz", "--sparsity", 1.0) == 1
    assert "sparsity" in error_line(capsys).lower()
    assert run("prune", weights, "-o", tmp_path / "p.npz", "--sparsity", -0.1) == 1
    assert "sparsity" in error_line(capsys).lower()

    bad = tmp_path / "nan.npz"
    np.savez(bad, **{"fc.weight": np.array([[1.0, np.nan]])})
    assert run("pack", bad, "-o", image) == 1
    assert "nan" in error_line(capsys).lower()

    np.save(tmp_path / "wrong.npy", np.zeros((2, 29), dtype=np.int64))
    assert run("golden", image, "--input", tmp_path / "wrong.npy", "-o", tmp_path / "y.npy") == 1
    assert "(batch, 30)" in error_line(capsys)

    np.save(tmp_path / "big.npy", np.full((1, 30), 300))
    assert run("golden", image, "--input", tmp_path / "big.npy", "-o", tmp_path / "y.npy") == 1
    assert "activation range" in error_line(capsys)

    assert run("pack", weights, "-o", image, "--lanes", 65) == 1
    assert "Lane count" in error_line(capsys)
    assert run("pack", weights, "-o", image, "--weight-bits", 17) == 1
    assert "Weight width" in error_line(capsys)
    assert run("pack", weights, "-o", image, "--accumulator-bits", 12) == 1
    assert "accumulators" in error_line(capsys)
    np.save(tmp_path / "cal.npy", np.zeros((5, 31)))
    assert run("pack", weights, "-o", image, "--calibration", tmp_path / "cal.npy") == 1
    assert "Calibration" in error_line(capsys)


def test_console_script_exit_status(tmp_path):
    done = subprocess.run([sys.executable, "-m", "sparsemac", "inspect", str(tmp_path / "none.smac")],
                          capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.startswith("sparsemac inspect: error: No such model image")
    assert "Traceback" not in done.stderr


def test_verilog(tmp_path, capsys):
    assert run("verilog", "--lanes", 2, "--bank-depth", 8, "-o", tmp_path / "e.v") == 0
    text = (tmp_path / "e.v").read_text()
    assert "module sparsemac_engine(" in text and "i__payload" in text and "o__valid" in text
    capsys.readouterr()
    assert run("verilog", "--lanes", 33, "-o", tmp_path / "e.v") == 1
    assert "Lane count must be 1 to 32, not 33" in error_line(capsys)


def test_run_on_the_simulated_engine(weights, tmp_path, rng, capsys):
    image = tmp_path / "m.smac"
    assert run("pack", weights, "-o", image, "--lanes", 2) == 0
    x = rng.integers(-128, 128, (6, 30)) * (rng.random((6, 30)) < 0.5)
    np.save(tmp_path / "x.npy", x)
    capsys.readouterr()
    assert run("run", image, "--input", tmp_path / "x.npy", "-o", tmp_path / "y.npy", "--json",
               "--vcd", tmp_path / "waves.vcd") == 0
    report = __import__("json").loads(capsys.readouterr().out)
    assert report["outputs_equal_golden"] and report["cycles_equal_golden"]
    assert 0 < report["lane_utilisation"] <= 1
    golden = run_golden(load_image(image), x)
    assert np.array_equal(np.load(tmp_path / "y.npy"), golden.outputs)
    assert (tmp_path / "waves.vcd").stat().st_size > 0

    # A build that cannot hold the image at all is refused before anything runs.
    assert run("run", image, "--input", tmp_path / "x.npy", "-o", tmp_path / "y.npy",
               "--accumulator-bits", 9) == 1
    assert "accumulators" in error_line(capsys)


def test_demo_runs_every_model_on_the_engine(tmp_path, capsys):
    # The reduced demo: every packed model runs on the Verilator engine through the driver,
    # whose outputs must equal the golden model's (the command fails otherwise).
    assert run("demo", "--quick", "-o", tmp_path / "demo") == 0
    results = __import__("json").loads((tmp_path / "demo" / "results.json").read_text())
    assert results["models"]
    for model in results["models"]:
        assert model["engine_accuracy"] == model["golden_accuracy"], model["name"]
    assert (tmp_path / "demo" / "schedule.png").stat().st_size > 0
    assert (tmp_path / "demo" / "accuracy_vs_footprint.png").stat().st_size > 0


def test_run_on_a_port_takes_the_boards_uart_rate(monkeypatch):
    from dataclasses import replace

    from sparsemac.cli import _serial_baud, build_parser
    from sparsemac.hw.boards import BOARDS
    # Both boards' default builds run at 3 Mbaud: one made slower shows whose rate is taken.
    monkeypatch.setitem(BOARDS, "icebreaker", replace(BOARDS["icebreaker"], baudrate=1_500_000))
    parser = build_parser()
    rate = lambda *argv: _serial_baud(parser.parse_args(["run", "m.smac", "--input", "x.npy",
                                                         "-o", "y.npy", "--port", "P", *argv]))
    assert rate("--board", "icebreaker") == 1_500_000
    assert rate("--board", "ulx3s-85f") == 3_000_000
    assert rate() == 3_000_000
    assert rate("--board", "icebreaker", "--baud", "2000000") == 2_000_000


def test_the_cli_names_every_board():
    from sparsemac.cli import BOARD_NAMES
    from sparsemac.hw.boards import BOARDS
    assert BOARD_NAMES == tuple(BOARDS)


TERMINATED_WHILE_A_TOOL_RUNS = """
import argparse, os, signal, subprocess, sys, threading
from sparsemac import cli

def run_a_tool(args):
    threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM)).start()
    subprocess.run([sys.executable, "-c",
                    "import os, time; print(os.getpid(), flush=True); time.sleep(60)"])

parser = argparse.ArgumentParser()
parser.set_defaults(run=run_a_tool, command="tool")
cli.build_parser = lambda: parser
cli.main([])
"""


def test_sigterm_stops_the_tool_a_command_runs():
    """``kill`` of a build must not leave its nextpnr running: the child goes with it."""
    done = subprocess.run([sys.executable, "-c", TERMINATED_WHILE_A_TOOL_RUNS],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 128 + signal.SIGTERM
    child = int(done.stdout.split()[0])
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)
