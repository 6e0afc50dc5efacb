"""FPGA build benchmarks of GitHub issue 5: Fmax and utilisation per lane count and board,
over several nextpnr seeds, and the effective throughput they give.

Run from the repository root (needs ``pip install -e '.[fpga]'``)::

    python bench/fpga.py                                  # the full sweep (hours on 2 cores)
    python bench/fpga.py --board icebreaker --lanes 1 2 --seeds 3
    python bench/fpga.py --stage synth                    # Yosys' counts only, no timing
    python bench/fpga.py --json                           # the same figures as JSON

For each (board, lanes): the board's default engine with that lane count is synthesised
once (Yosys), then placed and routed with each seed (nextpnr, ``--timing-allow-fail`` so a
design that misses the board's clock target still gives its Fmax). Reported: LUT, FF, DSP,
BRAM, SPRAM use ("logic" is nextpnr's logic cells on the iCE40, LUT4s on the ECP5; without
place and route, Yosys' LUT4 count), Fmax min / median / max over the seeds, and the
effective throughput ``useful MACs per second = utilisation x lanes x Fmax`` with the median
Fmax, where *utilisation* is the golden model's lane utilisation (useful multiply-accumulates
per lane-cycle, docs/engine.md section 4) of a 1024x1024 layer at 90% sparsity
(magnitude-pruned Gaussian, seeded; 8-bit weights and activations; 16 random inputs with no
forced zeros) packed for that lane count.

Every build folder is kept under ``--output`` (default ``build-bench``), with the tools'
logs; results are also written to ``<output>/results.json`` as they come.
"""

from __future__ import annotations

import argparse
import json
import platform as host
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from sparsemac.hw import EngineParameters
from sparsemac.hw.boards import get_board
from sparsemac.hw.core import core_timing
from sparsemac.hw.boards.build import FPGABuildError, build
from sparsemac.sw import pack_model, run_golden
from sparsemac.sw.prune import magnitude_mask
from sparsemac.sw.quantize import QuantLayer, QuantModel

SWEEP = {"icebreaker": [1, 2, 4, 8], "ulx3s-85f": [4, 8, 16, 32]}


def golden_utilisation(params: EngineParameters, *, size: int = 1024, sparsity: float = 0.9,
                       batch: int = 16, seed: int = 5) -> float:
    """Mean lane utilisation of the golden model of build ``params`` on one size x size
    layer."""
    rng = np.random.default_rng(seed)
    dense = rng.standard_normal((size, size))
    weight = np.where(magnitude_mask(dense, sparsity), dense, 0.0)
    weight = np.clip(np.round(weight / np.abs(weight).max() * 127), -127, 127).astype(np.int64)
    layer = QuantLayer("fc", weight, np.zeros(size, np.int64), np.full(size, 1 << 15, np.int64),
                       np.full(size, 20, np.int64), True, 8)
    image = pack_model(QuantModel((layer,), 8), lanes=params.lanes)
    x = rng.integers(-128, 128, (batch, size))
    return float(run_golden(image, x, core_timing(params)).utilisation.mean())


def measure(board_name: str, params: EngineParameters, seeds: list[int], stage: str,
            output: Path, say) -> dict:
    board = get_board(board_name)
    lanes = params.lanes
    directory = output / f"{board_name}-{lanes}"
    entry: dict = {"board": board_name, "lanes": lanes, "params": params.__dict__,
                   "target_mhz": board.frequency / 1e6, "seeds": {}}
    started = time.monotonic()
    try:
        synth = build(board, params, directory=directory, stage="synth")
    except FPGABuildError as error:
        entry["error"] = str(error).splitlines()[0]
        return entry
    entry["synth_seconds"] = synth.seconds.get("yosys")
    entry["synth_resources"] = {r.name: r.used for r in synth.report.resources}
    say(f"{board_name} {lanes} lanes: synthesised in {time.monotonic() - started:.0f} s: "
        f"{entry['synth_resources']}")
    if stage == "synth":
        return entry
    for seed in seeds:
        try:
            result = build(board, params, directory=directory, stage="pnr", seed=seed,
                           allow_timing_fail=True)
        except FPGABuildError as error:
            lines = str(error).splitlines()
            entry["seeds"][seed] = {"error": next((line for line in lines if "ERROR" in line),
                                                  lines[0])}
            say(f"  seed {seed}: {entry['seeds'][seed]['error']}")
            if any(text in str(error) for text in ("Failed to expand region", "Unable to place")):
                break                                   # does not fit: other seeds will not
            continue
        clock = result.report.clocks[0] if result.report.clocks else None
        (directory / f"nextpnr-report-seed{seed}.json").write_bytes(
            (directory / "nextpnr-report.json").read_bytes())
        entry["seeds"][seed] = {
            "fmax_mhz": None if clock is None else clock.achieved_mhz,
            "seconds": result.seconds.get("nextpnr"),
            "resources": {r.name: [r.used, r.available] for r in result.report.resources},
            "critical_path": [*result.report.critical_path[:2], "...",
                              *result.report.critical_path[-3:]],
        }
        say(f"  seed {seed}: Fmax {clock.achieved_mhz if clock else float('nan'):.2f} MHz "
            f"in {result.seconds.get('nextpnr', 0):.0f} s")
    fmax = [s["fmax_mhz"] for s in entry["seeds"].values() if s.get("fmax_mhz")]
    if fmax:
        entry["fmax_mhz"] = {"min": min(fmax), "median": statistics.median(fmax),
                             "max": max(fmax), "seeds": len(fmax)}
    return entry


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--board", choices=tuple(SWEEP), action="append",
                        help="board(s) to sweep (default both)")
    parser.add_argument("--lanes", type=int, nargs="+", help="lane counts (default per board)")
    parser.add_argument("--seeds", type=int, default=3, help="nextpnr seeds per build")
    parser.add_argument("--stage", choices=("synth", "pnr"), default="pnr")
    parser.add_argument("--output", default="build-bench", help="folder for the builds")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    results = {"machine": f"{host.machine()} {host.system()}, {host.python_version()}",
               "command": " ".join(["python bench/fpga.py", *(argv or sys.argv[1:])]),
               "seeds": list(range(1, args.seeds + 1)), "stage": args.stage, "builds": []}
    for board in args.board or list(SWEEP):
        for lanes in args.lanes or SWEEP[board]:
            params = get_board(board).engine_parameters(lanes=lanes)
            entry = measure(board, params, results["seeds"], args.stage, output, say)
            # The build's own cycle model: a shared output stage walks lanes x slots.
            utilisation = golden_utilisation(params)
            entry["utilisation"] = utilisation
            if "fmax_mhz" in entry:
                entry["useful_macs_per_second"] = (utilisation * lanes
                                                   * entry["fmax_mhz"]["median"] * 1e6)
            results["builds"].append(entry)
            (output / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(table(results))
    return 0


def table(results: dict) -> str:
    lines = [f"FPGA builds: {results['command']} ({results['machine']})",
             f"{'board':11} {'lanes':>5} {'logic':>11} {'FF':>6} {'DSP':>4} {'BRAM':>5} {'SPRAM':>5} "
             f"{'Fmax min/med/max MHz':>22} {'target':>6} {'util':>6} {'useful GMAC/s':>13}"]
    for b in results["builds"]:
        if "error" in b:
            lines.append(f"{b['board']:11} {b['lanes']:5}  {b['error']}")
            continue
        seeds = [s for s in b["seeds"].values() if "resources" in s]
        res = seeds[0]["resources"] if seeds else {k: [v, None] for k, v in b["synth_resources"].items()}

        def cell(name, width):
            used, available = res.get(name, [0, None])
            text = f"{used}" if available is None else f"{used}/{available}"
            return f"{text:>{width}}"
        f = b.get("fmax_mhz")
        fmax = "-" if f is None else f"{f['min']:.1f}/{f['median']:.1f}/{f['max']:.1f}"
        errors = [s["error"] for s in b["seeds"].values() if "error" in s]
        if f is None and errors:
            fmax = "does not fit" if any("expand region" in e or "nable to place" in e
                                         for e in errors) else "failed"
        gmacs = b.get("useful_macs_per_second")
        logic = "LC" if "LC" in res else "LUT"          # iCE40 logic cells, ECP5 LUT4s
        lines.append(f"{b['board']:11} {b['lanes']:5} {cell(logic, 11)} {cell('FF', 6)} "
                     f"{cell('DSP', 4)} {cell('BRAM', 5)} {cell('SPRAM', 5)} {fmax:>22} "
                     f"{b['target_mhz']:6.1f} {b['utilisation']:6.3f} "
                     f"{'-' if gmacs is None else f'{gmacs / 1e9:.3f}':>13}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
