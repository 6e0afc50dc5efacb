"""Large-sparse against small-dense at equal memory footprint, on handwritten digits.

The experiment of Zhu & Gupta, "To prune, or not to prune" (2017), section 4, at the scale of
scikit-learn's bundled digits (8x8 images, 64 inputs, 10 classes, 1797 samples), carried
through sparsemac's whole host toolchain:

1. a fixed, seeded, stratified train/test split; inputs scaled to [0, 1];
2. a dense baseline MLP and a wide MLP trained dense (the unpruned reference);
3. the wide MLP trained while AGP prunes it (:class:`~sparsemac.sw.prune.Pruner`, layer scope,
   the paper's cubic schedule) to each final sparsity: masks recomputed once per epoch and
   applied after every optimizer step, so pruned weights stay exactly zero;
4. for each sparse model, a small dense MLP of the same shape family whose footprint matches it
   (see :func:`dense_storage_bytes` for the footprint matched);
5. every model quantized (8-bit weights and activations, calibrated on the training inputs),
   packed for the engine, and the whole test split run through the golden model for integer
   accuracy, cycles per inference and lane utilisation.

Training uses scikit-learn's :class:`~sklearn.neural_network.MLPClassifier` (Adam), driven one
minibatch per :meth:`partial_fit` call so that the pruner sees every step. Everything is
seeded and BLAS runs on one thread, so a run repeats exactly.

The engine column stays "n/a" until an engine is passed in: ``run_demo(engine=...)`` and
:func:`run_on_engine` are the hook, and the demo never puts golden figures in that column.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import ExitStack, nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .container import save_image
from .footprint import REQUANT_BITS, footprint
from .format import MAX_LANES, ModelImage, pack_model
from .golden import EngineTiming, run_golden
from .model_io import DenseModel, model_from_arrays, save_model
from .numerics import signed_range
from .prune import AGPSchedule, Pruner, agp_sparsity
from .quantize import quantize_activations, quantize_model

__all__ = ["DemoConfig", "FULL", "QUICK", "ModelResult", "Comparison", "DemoResult", "run_demo",
           "EngineRunner", "run_on_engine", "dense_storage_bytes", "small_dense_sizes", "results_table",
           "comparison_table", "EngineMismatchError"]

WEIGHT_BITS = 8
ACTIVATION_BITS = 8


@dataclass(frozen=True)
class DemoConfig:
    """What the demo trains, and how.

    Attributes
    ----------
    baseline_hidden : hidden widths of the dense baseline
    wide_hidden : hidden widths of the wide model that is pruned
    sparsities : final sparsities of the large-sparse models
    epochs : training epochs of every model
    batch_size : minibatch size (the last partial minibatch of an epoch is dropped)
    prune_begin_epoch, prune_end_epoch : the AGP window, in epochs; one mask update per epoch
    learning_rate : Adam's step size (constant)
    l2 : scikit-learn's ``alpha``, the L2 penalty. 0 by default: with Adam, the penalty alone
        drives the weights of a dead ReLU unit to ~1e-30 (Adam normalises its tiny gradient to
        full-size steps), and such a row's per-row weight scale makes its bias unrepresentable
        in accumulator units
    test_size : fraction of the 1797 samples held out
    split_seed : seeds the train/test split, the same for every model
    seeds : each model is trained once per seed (initialisation and minibatch order); the
        figures reported are means over the seeds
    """
    baseline_hidden: tuple[int, ...] = (64,)
    wide_hidden: tuple[int, ...] = (256, 128)
    sparsities: tuple[float, ...] = (0.5, 0.75, 0.9, 0.95, 0.98)
    epochs: int = 40
    batch_size: int = 32
    prune_begin_epoch: int = 4
    prune_end_epoch: int = 24
    learning_rate: float = 1e-3
    l2: float = 0.0
    test_size: float = 0.25
    split_seed: int = 0
    seeds: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self) -> None:
        if not 0 <= self.prune_begin_epoch < self.prune_end_epoch <= self.epochs:
            raise ValueError(f"The pruning window must satisfy 0 <= begin < end <= epochs, not "
                             f"begin {self.prune_begin_epoch}, end {self.prune_end_epoch}, "
                             f"epochs {self.epochs}")
        if not self.sparsities or not all(0 < s < 1 for s in self.sparsities):
            raise ValueError(f"Sparsities must be in (0, 1), not {self.sparsities!r}")
        if not self.seeds:
            raise ValueError("At least one training seed is needed")


#: The configuration ``sparsemac demo`` runs.
FULL = DemoConfig()
#: A reduced configuration for tests (``sparsemac demo --quick``).
QUICK = DemoConfig(baseline_hidden=(32,), wide_hidden=(128, 64), sparsities=(0.75, 0.9),
                   epochs=8, prune_begin_epoch=1, prune_end_epoch=5, seeds=(0,))


@dataclass(frozen=True)
class ModelResult:
    """One model, trained once per seed, quantized, packed and evaluated (one table row).

    Every figure is the mean over the seeds; the ``*_per_seed`` tuples hold each seed's.
    Byte counts come from :func:`~sparsemac.sw.footprint.footprint` of the packed image.
    ``bitmask_bytes`` and ``csrc_bytes`` are whole-model figures in the style of the paper's
    Table 6: the stored nonzeros at 8 bits plus the paper's position overhead (1 bit per
    element; ``run_bits`` per nonzero, fillers ignored). ``image_bytes`` is
    ``entry_bytes + pointer_bytes + row_parameter_bytes``. ``footprint_bytes`` is the figure
    the comparison uses: ``image_bytes`` for a pruned model, ``dense_storage_bytes``
    (:func:`dense_storage_bytes`) for a dense one. ``model`` is the first seed's float model.
    """
    name: str
    kind: str                       # "dense baseline", "wide dense", "large-sparse", "small-dense"
    sizes: tuple[int, ...]
    target_sparsity: float
    matched_to: str | None
    weights: int
    nonzero_weights: float          # float model, after training and pruning
    stored_nonzeros: float          # image, after 8-bit quantization
    dense_bytes: float
    bitmask_bytes: float
    csrc_bytes: float
    entry_bytes: float
    pointer_bytes: float
    row_parameter_bytes: float
    image_bytes: float
    dense_storage_bytes: float
    footprint_bytes: float
    float_accuracy: float
    golden_accuracy: float
    engine_accuracy: float | None
    cycles_per_inference: float
    lane_utilisation: float
    train_seconds: float
    seeds: tuple[int, ...]
    footprint_per_seed: tuple[float, ...]
    float_accuracy_per_seed: tuple[float, ...]
    golden_accuracy_per_seed: tuple[float, ...]
    model: DenseModel = field(repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        del d["model"]
        return d


@dataclass(frozen=True)
class Comparison:
    """A large-sparse model against the small-dense model matched to its footprint."""
    sparsity: float
    sparse: str
    dense: str
    sparse_footprint: float
    dense_footprint: float
    sparse_accuracy: float          # golden (integer) test accuracy, mean over seeds
    dense_accuracy: float
    gain_per_seed: tuple[float, ...]

    @property
    def footprint_ratio(self) -> float:
        return self.dense_footprint / self.sparse_footprint

    @property
    def accuracy_gain(self) -> float:
        """Large-sparse minus small-dense golden accuracy (positive: large-sparse wins)."""
        return self.sparse_accuracy - self.dense_accuracy

    @property
    def sparse_wins(self) -> int:
        """Seeds on which large-sparse was strictly more accurate."""
        return sum(g > 0 for g in self.gain_per_seed)


@dataclass(frozen=True)
class DemoResult:
    """Everything :func:`run_demo` measured, and where it wrote its files."""
    config: DemoConfig
    lanes: int
    train_samples: int
    test_samples: int
    models: tuple[ModelResult, ...]
    comparisons: tuple[Comparison, ...]
    schedule: dict[str, Any]
    seconds: float
    workers: int
    files: dict[str, Path]
    timing: EngineTiming = EngineTiming()

    def model(self, name: str) -> ModelResult:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(f"No model named {name!r}; there are {[m.name for m in self.models]}")


class EngineMismatchError(RuntimeError):
    """The engine's outputs differ from the golden model's."""


# -- the engine hook ---------------------------------------------------------------------------

#: Runs integer inputs through an engine: ``engine(image, x) -> outputs``, (batch, outputs)
#: integers in original row order. With the host driver (:mod:`sparsemac.sw.driver`), for
#: example: ``device.load(image); return device.run(x).outputs``, the device built by the
#: caller over a board's serial port or the Verilator transport of ``sparsemac.sim`` (which
#: ``sw/`` may not import, hence a callable passed in).
EngineRunner = Callable[[ModelImage, np.ndarray], np.ndarray]


def run_on_engine(engine: EngineRunner | None, image: ModelImage, x: np.ndarray,
                  expected: np.ndarray, what: str = "model") -> np.ndarray | None:
    """ENGINE HOOK: run ``x`` through ``engine`` and require its outputs to equal ``expected``
    (the golden model's) bit for bit.

    Returns the engine's outputs, or None when there is no engine (``engine is None``, as
    until the demo is wired to the host driver); the table then reports the engine as not
    available.

    Raises
    ------
    EngineMismatchError
        If any output differs from the golden model's.
    """
    if engine is None:
        return None
    outputs = np.asarray(engine(image, x))
    if outputs.shape != expected.shape or not np.array_equal(outputs, expected):
        if outputs.shape != expected.shape:
            raise EngineMismatchError(f"{what}: the engine returned outputs of shape "
                                      f"{outputs.shape}, the golden model {expected.shape}")
        bad = np.flatnonzero((outputs != expected).any(axis=1))
        raise EngineMismatchError(f"{what}: the engine's outputs differ from the golden model's "
                                  f"for {bad.size} of {len(x)} inputs (first: input {bad[0]})")
    return outputs


# -- footprint matching ------------------------------------------------------------------------

def dense_storage_bytes(image: ModelImage) -> float:
    """What a dense engine stores for a packed model: every weight at its value width (zeros
    included, no position information) plus the same per-row parameters the sparse image holds
    (bias at the accumulator width, 16-bit multiplier, 6-bit shift)."""
    report = footprint(image)
    return report.total("dense_bytes") + report.total("row_parameter_bytes")


def _estimated_dense_storage(sizes: tuple[int, ...]) -> float:
    """:func:`dense_storage_bytes` before training, with each layer's bias at the worst-case
    accumulator width (every weight at full scale); a trained layer needs a bit or two less."""
    total = 0.0
    weight_max = signed_range(WEIGHT_BITS)[1]
    for columns, rows in zip(sizes, sizes[1:]):
        bias_bits = (columns * weight_max << (ACTIVATION_BITS - 1)).bit_length() + 1
        total += rows * columns * WEIGHT_BITS / 8 + rows * (bias_bits + REQUANT_BITS) / 8
    return total


def small_dense_sizes(target_bytes: float, wide_sizes: tuple[int, ...]) -> tuple[int, ...]:
    """Layer sizes of the dense model, shaped like ``wide_sizes`` (the hidden widths scaled
    together, as the paper's width multiplier does), whose estimated dense storage is closest to
    ``target_bytes``. The first hidden width is searched; each later one takes the two nearest
    integers to its share of it."""
    inputs, hidden, outputs = wide_sizes[0], wide_sizes[1:-1], wide_sizes[-1]
    ratios = [h / hidden[0] for h in hidden]
    best: tuple[float, tuple[int, ...]] | None = None
    for first in range(1, hidden[0] + 1):
        candidates = [[first]]
        for r in ratios[1:]:
            candidates = [c + [w] for c in candidates
                          for w in {max(1, int(np.floor(first * r))), max(1, int(np.ceil(first * r)))}]
        for widths in candidates:
            sizes = (inputs, *widths, outputs)
            error = abs(_estimated_dense_storage(sizes) - target_bytes)
            if best is None or error < best[0]:
                best = (error, sizes)
    assert best is not None
    return best[1]


# -- training ----------------------------------------------------------------------------------

def _load_digits(config: DemoConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = x / 16.0                                   # pixel counts 0..16 to [0, 1]
    return train_test_split(x, y, test_size=config.test_size, random_state=config.split_seed,
                            stratify=y)


def _schedule(config: DemoConfig, steps_per_epoch: int, sparsity: float) -> AGPSchedule:
    return AGPSchedule(final_sparsity=sparsity, begin_step=config.prune_begin_epoch * steps_per_epoch,
                       end_step=config.prune_end_epoch * steps_per_epoch, frequency=steps_per_epoch)


def _layer_names(count: int) -> list[str]:
    return [f"fc{i + 1}" for i in range(count)]


def _train(sizes: tuple[int, ...], x: np.ndarray, y: np.ndarray, config: DemoConfig, seed: int, *,
           pruner: Pruner | None, advance: Callable[[int], None]) -> DenseModel:
    """Train an MLP of ``sizes`` with Adam, one minibatch per ``partial_fit``, pruning after
    every step when a pruner is given; return it as a :class:`DenseModel`."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    classifier = MLPClassifier(hidden_layer_sizes=sizes[1:-1], activation="relu", solver="adam",
                               alpha=config.l2, batch_size=config.batch_size,
                               learning_rate_init=config.learning_rate, max_iter=1,
                               shuffle=False, random_state=seed)
    classes = np.arange(sizes[-1])
    order_rng = np.random.default_rng(seed)
    steps_per_epoch = len(x) // config.batch_size
    names = _layer_names(len(sizes) - 1)
    step = 0
    for _ in range(config.epochs):
        order = order_rng.permutation(len(x))
        for start in range(0, steps_per_epoch * config.batch_size, config.batch_size):
            batch = order[start:start + config.batch_size]
            with warnings.catch_warnings():
                # One partial_fit call is one Adam step on one minibatch, so "maximum
                # iterations reached" (max_iter=1) says nothing here. scikit-learn 1.9 returns
                # from partial_fit before issuing it; the filter keeps a version that does
                # issue it from failing the run. Only that category is silenced, only here.
                warnings.simplefilter("ignore", ConvergenceWarning)
                classifier.partial_fit(x[batch], y[batch], classes=classes)
            if pruner is not None:
                # coefs_ are the optimizer's own arrays (Adam updates them in place), stored
                # (in, out); the pruner zeroes them in place, so the next step starts from the
                # masked weights.
                weights = dict(zip(names, classifier.coefs_))
                pruner.step(weights, step)
                pruner.apply(weights)
            step += 1
            advance(1)
    return model_from_arrays([w.T.copy() for w in classifier.coefs_],
                             [b.copy() for b in classifier.intercepts_], names=names)


def _float_predict(model: DenseModel, x: np.ndarray) -> np.ndarray:
    for layer in model.layers:
        x = x @ layer.weight.T + layer.bias
        if layer.relu:
            x = np.maximum(x, 0.0)
    return x.argmax(axis=1)


def _evaluate(name: str, model: DenseModel, data, lanes: int, out: Path | None,
              engine: EngineRunner | None, timing: EngineTiming) -> dict[str, Any]:
    """Quantize, pack and run one trained model; its figures as a dict. Writes the float
    weights and the image to ``out`` when given."""
    x_train, x_test, _, y_test = data
    qmodel = quantize_model(model, x_train, weight_bits=WEIGHT_BITS, activation_bits=ACTIVATION_BITS)
    image = pack_model(qmodel, lanes=lanes)
    if out is not None:
        save_image(image, out / "images" / f"{name}.smac")
        save_model(model, out / "models" / f"{name}.npz")
    x_int = quantize_activations(x_test, qmodel.input_scale, qmodel.activation_bits)
    golden = run_golden(image, x_int, timing)

    engine_outputs = run_on_engine(engine, image, x_int, golden.outputs, name)
    engine_accuracy = (None if engine_outputs is None
                       else float(np.mean(engine_outputs.argmax(axis=1) == y_test)))

    report = footprint(image)
    value_bytes = sum(layer.nonzeros * layer.value_bits / 8 for layer in report.layers)
    return dict(
        nonzero_weights=sum(int(np.count_nonzero(layer.weight)) for layer in model.layers),
        stored_nonzeros=report.total("nonzeros"), dense_bytes=report.total("dense_bytes"),
        bitmask_bytes=value_bytes + report.total("bitmask_bytes"),
        csrc_bytes=value_bytes + report.total("csrc_formula_bytes"),
        entry_bytes=report.total("entry_bytes"), pointer_bytes=report.total("pointer_bytes"),
        row_parameter_bytes=report.total("row_parameter_bytes"),
        image_bytes=report.total("image_bytes"), dense_storage_bytes=dense_storage_bytes(image),
        float_accuracy=float(np.mean(_float_predict(model, x_test) == y_test)),
        golden_accuracy=float(np.mean(golden.outputs.argmax(axis=1) == y_test)),
        engine_accuracy=engine_accuracy,
        cycles_per_inference=float(golden.cycles.mean()),
        lane_utilisation=float(golden.utilisation.mean()))


def _mean(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [run[key] for run in runs]
    return None if any(v is None for v in values) else float(np.mean(values))


# -- the demo ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Job:
    """One training run: a model shape, its final sparsity (0: dense) and a seed."""
    name: str
    sizes: tuple[int, ...]
    sparsity: float
    seed: int


def _run_job(job: _Job, config: DemoConfig,
             advance: Callable[[int], None] | None = None) -> tuple[DenseModel, list, float]:
    """Train one model (in this process or a worker); returns it, the pruner's history and
    the training time."""
    from threadpoolctl import threadpool_limits

    x_train, _, y_train, _ = _load_digits(config)
    pruner = None
    if job.sparsity > 0:
        s = _schedule(config, len(x_train) // config.batch_size, job.sparsity)
        pruner = Pruner(final_sparsity=job.sparsity, begin_step=s.begin_step,
                        end_step=s.end_step, frequency=s.frequency, scope="layer")
    # One BLAS thread per process: these matrices are small, extra threads only contend (on 2
    # shared cores a step ran 5-10x slower with them), and results then repeat exactly.
    with threadpool_limits(limits=1):
        started = time.perf_counter()
        model = _train(job.sizes, x_train, y_train, config, job.seed, pruner=pruner,
                       advance=advance or (lambda n: None))
    return model, list(pruner.history) if pruner else [], time.perf_counter() - started


def run_demo(output_dir: str | Path, *, quick: bool = False, lanes: int = 8, progress: bool = True,
             workers: int | None = None, config: DemoConfig | None = None,
             engine: EngineRunner | None = None,
             timing: EngineTiming | None = None) -> DemoResult:
    """Run the whole experiment and write its results, plots and images to ``output_dir``.

    Parameters
    ----------
    output_dir : created if missing. Receives ``results.json``, ``schedule.png`` (the paper's
        Figure 1), ``accuracy_vs_footprint.png`` (Figure 3), and the first seed's float weights
        (``models/*.npz``) and packed images (``images/*.smac``).
    quick : use :data:`QUICK` (for tests, well under a minute) instead of :data:`FULL`
    lanes : the engine's lane count to pack for
    progress : show a rich progress bar
    workers : training processes; by default one for ``quick``, else one per CPU (at most 4).
        Every run is seeded on its own, so the results do not depend on it.
    config : overrides ``quick``
    engine : runs every packed model on the engine (:data:`EngineRunner`); its outputs must
        equal the golden model's, and its accuracy fills the table's engine column. Without
        it that column says "n/a (not yet available)".
    timing : the engine's timing constants, for the cycles per inference and the lane
        utilisation (default: :class:`EngineTiming`'s, the default engine build's); pass the
        engine's own (``device.info().timing``) when ``engine`` is given

    Raises
    ------
    EngineMismatchError
        If the engine's outputs differ from the golden model's.
    """
    if isinstance(lanes, bool) or not isinstance(lanes, int) or not 1 <= lanes <= MAX_LANES:
        raise ValueError(f"Lane count must be 1 to {MAX_LANES}, not {lanes!r}")
    started = time.perf_counter()
    config = config or (QUICK if quick else FULL)
    timing = timing or EngineTiming()
    if workers is None:
        workers = 1 if quick else max(1, min(os.cpu_count() or 1, 4))
    out = Path(output_dir)
    for sub in ("", "images", "models"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    data = _load_digits(config)
    x_train, _, y_train, _ = data
    inputs, outputs = x_train.shape[1], int(y_train.max()) + 1
    steps_per_epoch = len(x_train) // config.batch_size
    total_steps = config.epochs * steps_per_epoch
    wide = (inputs, *config.wide_hidden, outputs)
    models: dict[str, ModelResult] = {}
    comparisons: list[Comparison] = []
    histories: dict[str, list[tuple[int, float]]] = {}

    n_runs = (2 + 2 * len(config.sparsities)) * len(config.seeds)
    with ExitStack() as stack:
        bar = stack.enter_context(_progress(progress))
        pool = None
        if workers > 1:
            # "spawn": a clean interpreter per worker, never a fork of this threaded process.
            pool = stack.enter_context(ProcessPoolExecutor(
                max_workers=workers, mp_context=multiprocessing.get_context("spawn")))
        task = bar.add_task("training", total=n_runs * total_steps) if bar else None

        def advance(n: int) -> None:
            if bar is not None:
                bar.advance(task, n)

        def train(specs: list[tuple[str, str, tuple[int, ...], float, str | None]]) -> None:
            """Train every seed of every (name, kind, sizes, sparsity, matched_to), then
            quantize, pack and evaluate them."""
            jobs = [_Job(name, sizes, sparsity, seed) for name, _, sizes, sparsity, _ in specs
                    for seed in config.seeds]
            if bar is not None:
                bar.update(task, description=f"training {len(jobs)} models"
                                             f"{f' on {workers} workers' if pool else ''}")
            if pool is None:
                trained = {}
                for job in jobs:
                    if bar is not None:
                        bar.update(task, description=f"training {job.name} "
                                                     f"{'-'.join(map(str, job.sizes))} seed {job.seed}")
                    trained[job] = _run_job(job, config, advance)
            else:
                futures = {pool.submit(_run_job, job, config): job for job in jobs}
                trained = {}
                for future in as_completed(futures):
                    trained[futures[future]] = future.result()
                    advance(total_steps)
            for name, kind, sizes, sparsity, matched_to in specs:
                if bar is not None:
                    bar.update(task, description=f"evaluating {name}")
                runs = [trained[_Job(name, sizes, sparsity, seed)] for seed in config.seeds]
                if sparsity > 0:
                    histories[name] = runs[0][1]
                evaluated = [_evaluate(name, model, data, lanes, out if i == 0 else None, engine,
                                       timing)
                             for i, (model, _, _) in enumerate(runs)]
                footprints = tuple(r["image_bytes"] if sparsity > 0 else r["dense_storage_bytes"]
                                   for r in evaluated)
                models[name] = ModelResult(
                    name=name, kind=kind, sizes=sizes, target_sparsity=sparsity,
                    matched_to=matched_to, weights=sum(a * b for a, b in zip(sizes, sizes[1:])),
                    **{key: _mean(evaluated, key) for key in evaluated[0]},
                    footprint_bytes=float(np.mean(footprints)),
                    train_seconds=sum(seconds for _, _, seconds in runs),
                    seeds=config.seeds, footprint_per_seed=footprints,
                    float_accuracy_per_seed=tuple(r["float_accuracy"] for r in evaluated),
                    golden_accuracy_per_seed=tuple(r["golden_accuracy"] for r in evaluated),
                    model=runs[0][0])

        tags = {s: f"{round(s * 100):g}" for s in config.sparsities}
        # Phase 1: the dense references and the large-sparse models.
        train([("baseline", "dense baseline", (inputs, *config.baseline_hidden, outputs), 0.0, None),
               ("wide-dense", "wide dense", wide, 0.0, None)]
              + [(f"sparse-{tags[s]}", "large-sparse", wide, s, None) for s in config.sparsities])
        # Phase 2: small-dense models sized to the large-sparse footprints just measured.
        train([(f"small-{tags[s]}", "small-dense",
                small_dense_sizes(models[f"sparse-{tags[s]}"].footprint_bytes, wide), 0.0,
                f"sparse-{tags[s]}") for s in config.sparsities])

    order = ["baseline", "wide-dense"] + [f"{kind}-{tags[s]}" for s in config.sparsities
                                          for kind in ("sparse", "small")]
    for s in config.sparsities:
        sparse, dense = models[f"sparse-{tags[s]}"], models[f"small-{tags[s]}"]
        comparisons.append(Comparison(
            sparsity=s, sparse=sparse.name, dense=dense.name,
            sparse_footprint=sparse.footprint_bytes, dense_footprint=dense.footprint_bytes,
            sparse_accuracy=sparse.golden_accuracy, dense_accuracy=dense.golden_accuracy,
            gain_per_seed=tuple(a - b for a, b in zip(sparse.golden_accuracy_per_seed,
                                                      dense.golden_accuracy_per_seed))))

    schedule = _schedule_data(config, steps_per_epoch, total_steps, histories)
    files = {"results": out / "results.json", "schedule_plot": out / "schedule.png",
             "accuracy_plot": out / "accuracy_vs_footprint.png",
             "images": out / "images", "models": out / "models"}
    result = DemoResult(config=config, lanes=lanes, train_samples=len(x_train),
                        test_samples=len(data[1]), models=tuple(models[n] for n in order),
                        comparisons=tuple(comparisons), schedule=schedule, seconds=0.0,
                        workers=workers, files=files, timing=timing)
    _plot_schedule(result, files["schedule_plot"])
    _plot_accuracy(result, files["accuracy_plot"])
    result = replace(result, seconds=time.perf_counter() - started)
    files["results"].write_text(json.dumps(_as_json(result), indent=2) + "\n")
    return result


def _progress(enabled: bool):
    if not enabled:
        return nullcontext(None)
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)
    return Progress(TextColumn("{task.description:<40}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("steps"), TimeElapsedColumn(), TimeRemainingColumn())


def _schedule_data(config: DemoConfig, steps_per_epoch: int, total_steps: int,
                   histories: dict[str, list[tuple[int, float]]]) -> dict[str, Any]:
    """The AGP targets at every training step (what the schedule plot draws) and the sparsity
    each pruner reached at its updates."""
    steps = np.arange(total_steps + 1)
    curves = {}
    for s in config.sparsities:
        sched = _schedule(config, steps_per_epoch, s)
        curves[f"{s:g}"] = agp_sparsity(steps, final_sparsity=s, begin_step=sched.begin_step,
                                        end_step=sched.end_step,
                                        frequency=sched.frequency).tolist()
    first = _schedule(config, steps_per_epoch, config.sparsities[0])
    return {"steps_per_epoch": steps_per_epoch, "total_steps": total_steps,
            "begin_step": first.begin_step, "end_step": first.end_step,
            "frequency": first.frequency, "steps": steps.tolist(), "target": curves,
            "history": {f"{s:g}": histories.get(f"sparse-{round(s * 100):g}", [])
                        for s in config.sparsities}}


def _as_json(result: DemoResult) -> dict[str, Any]:
    return {
        "dataset": "sklearn.datasets.load_digits (8x8, 64 inputs, 10 classes)",
        "train_samples": result.train_samples, "test_samples": result.test_samples,
        "lanes": result.lanes, "weight_bits": WEIGHT_BITS, "activation_bits": ACTIVATION_BITS,
        "config": asdict(result.config),
        "footprint_matched": ("large-sparse: image_bytes (entries with fillers, column pointers, "
                              "per-row parameters); small-dense: dense_storage_bytes (every "
                              "weight at 8 bits, no position information, plus the same per-row "
                              "parameters)"),
        "engine": ("n/a (not yet available)" if any(m.engine_accuracy is None for m in result.models)
                   else "outputs equal to the golden model's"),
        "engine_timing": asdict(result.timing),
        "models": [m.as_dict() for m in result.models],
        "comparisons": [{**asdict(c), "footprint_ratio": c.footprint_ratio,
                         "accuracy_gain": c.accuracy_gain, "sparse_wins": c.sparse_wins}
                        for c in result.comparisons],
        "schedule": result.schedule,
        "seconds": result.seconds,
        "workers": result.workers,
        "files": {k: str(v) for k, v in result.files.items()},
    }


# -- plots -------------------------------------------------------------------------------------

def _figure(width: float, height: float):
    # An explicit Agg canvas: no pyplot, no global backend, safe in threads and tests.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _plot_schedule(result: DemoResult, path: Path) -> None:
    schedule = result.schedule
    fig = _figure(7, 4.2)
    ax = fig.add_subplot()
    steps = np.asarray(schedule["steps"])
    for key, curve in schedule["target"].items():
        line, = ax.plot(steps, np.asarray(curve) * 100, drawstyle="steps-post", lw=1.5,
                        label=f"$s_f$ = {float(key):.0%}")
        history = schedule["history"][key]
        if history:
            hs, hv = zip(*history)
            ax.plot(hs, np.asarray(hv) * 100, "o", ms=3, color=line.get_color())
    for x in (schedule["begin_step"], schedule["end_step"]):
        ax.axvline(x, color="0.6", lw=0.8, ls="--")
    ax.set_xlabel(f"training step ({schedule['steps_per_epoch']} per epoch)")
    ax.set_ylabel("sparsity (%)")
    ax.set_title(f"AGP schedule (Zhu & Gupta Fig. 1): $t_0$ = {schedule['begin_step']}, "
                 f"$n\\Delta t$ = {schedule['end_step'] - schedule['begin_step']}, "
                 f"$\\Delta t$ = {schedule['frequency']}\nlines: target; dots: masks reached")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.savefig(path, dpi=120)


def _plot_accuracy(result: DemoResult, path: Path) -> None:
    fig = _figure(7, 4.5)
    ax = fig.add_subplot()
    styles = {"large-sparse": ("o-", "C0"), "small-dense": ("s-", "C1"),
              "dense baseline": ("^", "C2"), "wide dense": ("D", "C3")}
    for kind, (marker, color) in styles.items():
        group = sorted((m for m in result.models if m.kind == kind), key=lambda m: m.footprint_bytes)
        if not group:
            continue
        kib = [m.footprint_bytes / 1024 for m in group]
        golden = np.array([m.golden_accuracy * 100 for m in group])
        spread = np.array([[g - min(m.golden_accuracy_per_seed) * 100,
                            max(m.golden_accuracy_per_seed) * 100 - g]
                           for m, g in zip(group, golden)]).T
        ax.errorbar(kib, golden, yerr=spread, fmt=marker, color=color, capsize=2, label=kind)
        ax.plot(kib, [m.float_accuracy * 100 for m in group], marker[0], color=color,
                mfc="none", alpha=0.5)
        for m, k in zip(group, kib):
            label = (f"{m.target_sparsity:.0%}" if kind == "large-sparse"
                     else "-".join(map(str, m.sizes[1:-1])))
            ax.annotate(label, (k, m.golden_accuracy * 100), textcoords="offset points",
                        xytext=(4, -10 if kind == "small-dense" else 5), fontsize=7, color=color)
    ax.set_xscale("log")
    low, high = ax.get_xlim()
    ticks = [t for t in (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
             if low <= t <= high]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_formatter("")
    ax.set_xlabel("footprint (KiB): sparse = packed image, dense = 8-bit weights + row parameters")
    ax.set_ylabel("test accuracy (%)")
    seeds = len(result.config.seeds)
    ax.set_title(f"Large-sparse vs small-dense on digits (Zhu & Gupta Fig. 3), "
                 f"{result.lanes} lanes\nfilled: integer golden model"
                 f"{f' (mean, bars: range over {seeds} seeds)' if seeds > 1 else ''}; "
                 f"hollow: float")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right")
    fig.savefig(path, dpi=120)


# -- the table ---------------------------------------------------------------------------------

def results_table(result: DemoResult):
    """The results as a :class:`rich.table.Table`, one row per model (byte counts in KiB)."""
    from rich.table import Table

    seeds = len(result.config.seeds)
    table = Table(title=f"digits: {result.train_samples} train / {result.test_samples} test, "
                        f"8-bit weights and activations, {result.lanes} lanes; bytes in KiB; "
                        f"{'mean over ' + str(seeds) + ' training seeds' if seeds > 1 else 'one seed'}")
    columns = ["model", "layers", "nonzero weights", "dense", "bit-mask", "CSR(C) formula",
               "image", "matched footprint", "float acc", "golden acc", "cycles/inf",
               "lane util", "engine"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("model", "layers") else "right")
    for m in result.models:
        engine = "n/a (not yet available)" if m.engine_accuracy is None else f"{m.engine_accuracy:.2%}"
        table.add_row(m.name, "-".join(map(str, m.sizes)), f"{m.nonzero_weights:,.0f}",
                      f"{m.dense_bytes / 1024:.1f}", f"{m.bitmask_bytes / 1024:.1f}",
                      f"{m.csrc_bytes / 1024:.1f}", f"{m.image_bytes / 1024:.1f}",
                      f"{m.footprint_bytes / 1024:.1f}", f"{m.float_accuracy:.2%}",
                      f"{m.golden_accuracy:.2%}", f"{m.cycles_per_inference:,.0f}",
                      f"{m.lane_utilisation:.3f}", engine)
    return table


def comparison_table(result: DemoResult):
    """Large-sparse against footprint-matched small-dense, as a :class:`rich.table.Table`."""
    from rich.table import Table

    table = Table(title="large-sparse vs small-dense at equal footprint (golden accuracy)")
    for column in ("sparsity", "large-sparse", "small-dense", "footprint (KiB)", "dense/sparse",
                   "sparse acc", "dense acc", "gain (points)", "per seed", "sparse wins"):
        table.add_column(column, justify="left" if column in ("large-sparse", "small-dense")
                         else "right")
    for c in result.comparisons:
        dense = result.model(c.dense)
        table.add_row(f"{c.sparsity:.0%}", c.sparse, f"{c.dense} ({'-'.join(map(str, dense.sizes))})",
                      f"{c.sparse_footprint / 1024:.1f}", f"{c.footprint_ratio:.3f}",
                      f"{c.sparse_accuracy:.2%}", f"{c.dense_accuracy:.2%}",
                      f"{c.accuracy_gain * 100:+.2f}",
                      " ".join(f"{g * 100:+.1f}" for g in c.gain_per_seed),
                      f"{c.sparse_wins}/{len(c.gain_per_seed)}")
    return table
