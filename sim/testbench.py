"""Run cocotb test modules against a cached Verilator build, through ``cocotb_tools.runner``.

:func:`run_cocotb` converts and builds the design once (see :mod:`.build`; concurrent callers
share one build), then calls ``Runner.test`` on that build from any process, with
``hdl_toplevel_lang="verilog"`` because the runner object did not build it. The parameters reach
the test module as JSON in ``$SPARSEMAC_PARAMS`` (read them with
:func:`sparsemac.sim.streams.design_params`). Each run has its own ``test_dir`` for the results
file, the log and waveforms, so the shared build folder is only read.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .build import Progress, build_cocotb, convert

__all__ = ["SimulationFailed", "run_cocotb"]

PARAMS_ENV = "SPARSEMAC_PARAMS"


class SimulationFailed(AssertionError):
    """A cocotb test failed or the simulator crashed; the message ends with the log's tail."""


def _tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def run_cocotb(
    factory: Callable[..., Any],
    params: Mapping[str, Any] | None,
    test_module: str | Sequence[str],
    *,
    name: str = "top",
    testcase: str | Sequence[str] | None = None,
    seed: int | None = None,
    waves: bool = False,
    test_dir: str | os.PathLike[str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    progress: Progress | None = None,
) -> Path:
    """Run the cocotb tests in ``test_module`` on ``factory(**params)``; return the results XML.

    Parameters
    ----------
    factory, params, name :
        As for :func:`sparsemac.sim.build.convert`.
    test_module :
        Importable module name(s) holding ``@cocotb.test()`` functions; the runner passes this
        process's ``sys.path`` on, so a module next to the calling test file is found.
    testcase :
        Run only these tests of the module.
    seed :
        cocotb's random seed (``COCOTB_RANDOM_SEED``); printed by cocotb at the start of a run.
    waves :
        Write ``dump.vcd`` into ``test_dir`` (uses a build with tracing compiled in).
    test_dir :
        Where the results file, ``sim.log`` and waveforms go; default a new temporary folder.
    extra_env :
        More environment variables for the simulator process.

    Raises
    ------
    SimulationFailed
        Naming the failed tests, with the log's tail and path.
    """
    from cocotb_tools.runner import get_results, get_runner

    design = convert(factory, params, name=name)
    build_dir = build_cocotb(design, waves=waves, progress=progress)
    test_dir = Path(test_dir) if test_dir is not None else Path(tempfile.mkdtemp(prefix="sparsemac-cocotb-"))
    test_dir = test_dir.resolve()
    test_dir.mkdir(parents=True, exist_ok=True)
    log_file = test_dir / "sim.log"
    # Warnings are errors in the simulator's Python too (the project's pytest policy): a
    # deprecated cocotb call fails the test that made it rather than scrolling by in the log.
    env = {"PYTHONWARNINGS": "error", PARAMS_ENV: json.dumps(dict(design.params), sort_keys=True),
           **(extra_env or {})}
    # The runner overlays os.environ on extra_env: a stale variable of ours would win.
    if PARAMS_ENV in os.environ:
        raise RuntimeError(f"Unset ${PARAMS_ENV} in this process; run_cocotb passes it itself")

    runner = get_runner("verilator")
    modules = test_module if isinstance(test_module, str) else ",".join(test_module)
    exit_code = 0
    results: Path | None = None
    try:
        results = runner.test(
            test_module=modules, hdl_toplevel=design.name, hdl_toplevel_lang="verilog",
            build_dir=build_dir, test_dir=test_dir, testcase=testcase, seed=seed, waves=waves,
            extra_env=env, log_file=log_file,
        )
    except SystemExit as exc:  # under pytest the runner exits on failure; report it our way
        exit_code = exc.code if isinstance(exc.code, int) else 1
    if results is None:
        candidates = sorted(test_dir.glob("*.xml"), key=lambda p: p.stat().st_mtime)
        results = candidates[-1] if candidates else None
    failed: list[str] = []
    total = 0
    if results is not None and results.is_file():
        import xml.etree.ElementTree as ET

        total, _ = get_results(results)
        for case in ET.parse(results).iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                failed.append(case.get("name", "?"))
    if failed or exit_code or total == 0:
        what = f"{len(failed)} of {total} cocotb tests failed ({', '.join(failed)})" if failed \
            else f"the simulator exited with code {exit_code} after {total} tests"
        raise SimulationFailed(
            f"{modules} on {design.factory}({design.params}): {what}; log {log_file}:\n{_tail(log_file)}"
        )
    return results
