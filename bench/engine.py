"""Engine throughput in Verilator against the cycle model's ideal (issue 3, docs/benchmarks.md).

For each lane count, one engine build that holds the densest layer; on it, 1024 x 1024 layers
magnitude-pruned to 50/75/90/95%, each run with inputs with 0% and 50% zero activations:

- measured cycles per vector (the engine's own counter), checked equal to the golden model;
- ideal cycles: (nonzeros + fillers in the active columns) / lanes, the lower bound;
- lane utilisation: useful multiply-accumulates / (lanes x cycles);
- load-balance efficiency: mean lane work / busiest lane's work;
- lane cycles with 50% zero inputs over those with none (zero activations should cost none);
- simulated cycles per second, with whole vectors driven from Python.

    python bench/engine.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

from sparsemac.sim.transport import SimulatorTransport, parameters_for
from sparsemac.sw import model_from_arrays, pack_model, quantize_model, run_golden
from sparsemac.sw.driver import Device
from sparsemac.sw.prune import magnitude_mask

SIZE = 1024
SPARSITIES = (0.5, 0.75, 0.9, 0.95)
LANES = (4, 8, 16)
SEED = 7


def pruned_layer_image(sparsity: float, lanes: int, rng: np.random.Generator):
    """A 1024 x 1024 Gaussian layer with log-normal row scales, magnitude-pruned, quantized
    to 8 bits with calibration from standard-normal inputs, packed for ``lanes``."""
    weight = rng.standard_normal((SIZE, SIZE)) * rng.lognormal(0, 0.5, (SIZE, 1)) / np.sqrt(SIZE)
    weight = np.where(magnitude_mask(weight, sparsity), weight, 0.0)
    model = model_from_arrays([weight], [0.01 * rng.standard_normal(SIZE)], relu=[True])
    calibration = rng.standard_normal((256, SIZE))
    return pack_model(quantize_model(model, calibration), lanes=lanes)


def inputs(rng: np.random.Generator, batch: int, zero_fraction: float) -> np.ndarray:
    x = rng.integers(-127, 128, (batch, SIZE))
    x[x == 0] = 1
    x[rng.random((batch, SIZE)) < zero_fraction] = 0
    return x


def measure(device: Device, image, x: np.ndarray) -> dict:
    device.load(image)
    started = time.perf_counter()
    result = device.run(x)
    wall = time.perf_counter() - started
    golden = run_golden(image, x, device.info().timing)
    assert len(device.load(image)) == 1, "the build must hold the image whole"
    layer = image.layers[0]
    entries = layer.column_entries.sum(axis=0)               # every lane's entries per column
    ideal = ((x != 0) @ entries) / layer.lanes
    work = golden.lane_cycles[:, 0, :]
    return {
        "exact": bool(np.array_equal(result.outputs, golden.outputs)
                      and np.array_equal(result.cycles, golden.cycles)),
        "cycles": float(result.cycles.mean()),
        "ideal": float(ideal.mean()),
        "utilisation": float((golden.useful_macs / (layer.lanes * result.cycles)).mean()),
        "balance": float((work.mean(axis=1) / work.max(axis=1)).mean()),
        "lane_cycles": float(work.sum(axis=1).mean()),
        "cycles_per_second": float(result.cycles.sum() / wall),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 lanes only, 4 vectors")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    lanes_list = (8,) if args.quick else LANES
    batch = 4 if args.quick else 16

    rows = []
    for lanes in lanes_list:
        rng = np.random.default_rng(SEED + lanes)
        images = {s: pruned_layer_image(s, lanes, rng) for s in SPARSITIES}
        # Entries of the densest, run fields of the widest: every image runs as packed.
        run_bits = max(image.max_run_bits for image in images.values())
        params = parameters_for(images[min(SPARSITIES)], max_run_bits=run_bits,
                                word_bits=1 << (8 + run_bits - 1).bit_length())
        print(f"building the {lanes}-lane engine ...", file=sys.stderr, flush=True)
        with Device(SimulatorTransport.start(params), timeout=120, run_timeout=600) as device:
            for sparsity, image in images.items():
                for zeros in (0.0, 0.5):
                    x = inputs(np.random.default_rng(SEED), batch, zeros)
                    rows.append({"lanes": lanes, "sparsity": sparsity, "zero_inputs": zeros,
                                 **measure(device, image, x)})
                    print(f"  {lanes} lanes, {sparsity:.0%} sparse, {zeros:.0%} zero inputs: "
                          f"{rows[-1]['cycles']:,.0f} cycles", file=sys.stderr, flush=True)

    def find(lanes, sparsity, zeros):
        return next(r for r in rows if (r["lanes"], r["sparsity"], r["zero_inputs"]) == (lanes, sparsity, zeros))

    util_8_90 = find(8, 0.9, 0.0)["utilisation"]
    zero_ratios = [find(r["lanes"], r["sparsity"], 0.5)["lane_cycles"] / r["lane_cycles"]
                   for r in rows if r["zero_inputs"] == 0.0]
    targets = {
        "utilisation, 8 lanes, 90% sparse, >= 0.90": (util_8_90, util_8_90 >= 0.90),
        "lane cycles with 50% zero inputs / with none, ~0.5": (
            max(zero_ratios), max(zero_ratios) <= 0.55),
        "every run bit- and cycle-exact": (all(r["exact"] for r in rows), all(r["exact"] for r in rows)),
    }
    if args.json:
        print(json.dumps({"rows": rows, "targets": {k: v[0] for k, v in targets.items()}}, indent=2))
        return 0

    print(f"machine: {os.cpu_count()} cpus, {platform.processor() or platform.machine()}; "
          f"python {platform.python_version()}, numpy {np.__version__}; {batch} vectors per row")
    print(f"{'lanes':>5} {'sparse':>6} {'zeros':>5} {'cycles':>9} {'ideal':>9} {'cyc/ideal':>9} "
          f"{'util':>6} {'balance':>7} {'lane cyc':>9} {'sim cyc/s':>10} exact")
    for r in rows:
        print(f"{r['lanes']:>5} {r['sparsity']:>6.0%} {r['zero_inputs']:>5.0%} {r['cycles']:>9,.0f} "
              f"{r['ideal']:>9,.0f} {r['cycles'] / r['ideal']:>9.3f} {r['utilisation']:>6.3f} "
              f"{r['balance']:>7.3f} {r['lane_cycles']:>9,.0f} {r['cycles_per_second']:>10,.0f} "
              f"{'yes' if r['exact'] else 'NO'}")
    for name, (value, ok) in targets.items():
        print(f"{name}: {value if isinstance(value, bool) else round(value, 3)}: {'PASS' if ok else 'MISS'}")
    return 0 if all(ok for _, ok in targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
