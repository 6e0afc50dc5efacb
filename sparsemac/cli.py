"""The ``sparsemac`` command: parses, calls the library, prints.

Every failure the user can cause (a missing or corrupt file, a wrong shape, a value the format
cannot hold) exits non-zero with one line on stderr and no traceback.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

import numpy as np

from .sw import container, format as fmt, golden, model_io, prune, quantize
from .sw.driver import EngineError
from .sw.footprint import ModelFootprint, footprint
from .sim.build import BuildError

__all__ = ["main"]


#: The boards ``build`` and ``run --board`` know (``sparsemac.hw.boards.BOARDS``, named here so
#: that the parser does not import the hardware).
BOARD_NAMES = ("icebreaker", "ulx3s-85f")


class CommandError(Exception):
    """A user error found by the CLI itself."""


# -- helpers -----------------------------------------------------------------------------------

def _load_array(path: str, what: str) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise CommandError(f"{what} file not found: {path}") from None
    except (ValueError, OSError, EOFError) as error:
        raise CommandError(f"{what} file {path} is not a readable .npy array ({error})") from None
    if not isinstance(array, np.ndarray):
        raise CommandError(f"{what} file {path} holds an archive, not one .npy array")
    return array


def _run_bits(text: str) -> int | str:
    if text == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or an integer, not {text!r}") from None


def _kib(n: float) -> str:
    return f"{n / 1024:,.1f}"


# -- commands ----------------------------------------------------------------------------------

def cmd_prune(args) -> None:
    model = model_io.load_model(args.input)
    weights = {layer.name: layer.weight for layer in model.layers}
    if args.scope == "global":
        masks = prune.global_magnitude_masks(weights, args.sparsity)
    else:
        masks = {name: prune.magnitude_mask(w, args.sparsity) for name, w in weights.items()}
    pruned = model_io.DenseModel(tuple(
        model_io.DenseLayer(layer.name, np.where(masks[layer.name], layer.weight, 0),
                            layer.bias, layer.relu)
        for layer in model.layers))
    model_io.save_model(pruned, args.output)
    for layer in pruned.layers:
        kept = np.count_nonzero(layer.weight)
        print(f"{layer.name:>16}  {layer.weight.shape[0]}x{layer.weight.shape[1]}  "
              f"kept {kept:,} of {layer.weight.size:,} ({1 - kept / layer.weight.size:.1%} sparse)")
    print(f"wrote {args.output}")


def cmd_pack(args) -> None:
    model = model_io.load_model(args.input)
    calibration = None
    if args.calibration:
        calibration = _load_array(args.calibration, "Calibration")
    qmodel = quantize.quantize_model(model, calibration, weight_bits=args.weight_bits,
                                     activation_bits=args.activation_bits)
    needed = qmodel.accumulator_bits()
    if needed > args.accumulator_bits:
        raise CommandError(f"the model needs {needed}-bit accumulators to never overflow, more "
                           f"than --accumulator-bits {args.accumulator_bits}")
    image = fmt.pack_model(qmodel, lanes=args.lanes, run_bits=args.run_bits,
                           max_run_bits=args.max_run_bits, balance=not args.interleave)
    container.save_image(image, args.output)
    _print_footprint(footprint(image), image)
    print(f"wrote {args.output} ({Path(args.output).stat().st_size:,} bytes, "
          f"{needed}-bit accumulators suffice)")


def _print_footprint(report: ModelFootprint, image: fmt.ModelImage) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Footprint: {image.lanes} lanes, {image.activation_bits}-bit "
                        f"activations (KiB)")
    for column in ("layer", "shape", "nonzeros", "density", "run bits", "fillers",
                   "dense", "bit-mask", "CSR(C) formula", "image", "bits/nz", "lane balance"):
        table.add_column(column, justify="left" if column == "layer" else "right")
    for layer in report.layers:
        table.add_row(layer.name, f"{layer.rows}x{layer.columns}", f"{layer.nonzeros:,}",
                      f"{layer.density:.1%}", str(layer.run_bits), f"{layer.fillers:,}",
                      _kib(layer.dense_bytes), _kib(layer.bitmask_bytes),
                      _kib(layer.csrc_formula_bytes), _kib(layer.image_bytes),
                      f"{layer.bits_per_nonzero:.2f}", f"{layer.lane_balance:.3f}")
    table.add_row("total", "", f"{report.total('nonzeros'):,}", "", "",
                  f"{report.total('fillers'):,}", _kib(report.total("dense_bytes")),
                  _kib(report.total("bitmask_bytes")), _kib(report.total("csrc_formula_bytes")),
                  _kib(report.total("image_bytes")), "", "", style="bold")
    Console(width=160).print(table)


def cmd_inspect(args) -> None:
    image = container.load_image(args.image)
    report = footprint(image)
    if args.json:
        print(json.dumps({"lanes": image.lanes, "activation_bits": image.activation_bits,
                          **report.as_dict()}, indent=2))
    else:
        _print_footprint(report, image)


def cmd_unpack(args) -> None:
    image = container.load_image(args.image)
    qmodel = fmt.unpack_model(image)
    model = model_io.DenseModel(tuple(
        model_io.DenseLayer(layer.name, layer.weight, layer.bias, layer.relu)
        for layer in qmodel.layers))
    model_io.save_model(model, args.output)
    print(f"wrote {len(model.layers)} integer layers to {args.output}")


def _engine_inputs(path: str, image: fmt.ModelImage) -> np.ndarray:
    """Input vectors from a .npy: integers as they are, floats quantized with the image's
    input scale."""
    x = _load_array(path, "Input")
    if x.ndim == 1:
        x = x[None, :]
    if x.dtype.kind == "f":
        if image.input_scale is None:
            raise CommandError("float inputs need the image's input scale, and this image has "
                               "none; give integer activations")
        if not np.all(np.isfinite(x)):
            raise CommandError("input contains NaN or infinite values")
        x = quantize.quantize_activations(x, image.input_scale, image.activation_bits)
    elif x.dtype.kind not in "iu":
        raise CommandError(f"input must be an integer or float array, not {x.dtype}")
    return golden.check_inputs(image, x)


def cmd_golden(args) -> None:
    image = container.load_image(args.image)
    x = _engine_inputs(args.input, image)
    # Cycles of the engine `sparsemac run` builds for this image by default.
    from .sim.transport import engine_build_info, parameters_for

    result = golden.run_golden(image, x, engine_build_info(parameters_for(image)).timing)
    np.save(args.output, result.accumulators if args.accumulators else result.outputs)
    print(f"{x.shape[0]} vectors: cycles per run min {result.cycles.min():,} "
          f"mean {result.cycles.mean():,.1f} max {result.cycles.max():,}; "
          f"lane utilisation mean {result.utilisation.mean():.3f}")
    print(f"wrote {'first-layer accumulators' if args.accumulators else 'outputs'} "
          f"{'x'.join(map(str, np.load(args.output).shape))} to {args.output}")


def cmd_example(args) -> None:
    from .sw.example import example_model

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    model = example_model()
    weights_path, image_path = out / "example.npz", out / "example.smac"
    model_io.save_model(model, weights_path)
    print(f"example: a seeded {'-'.join(str(n) for n in [model.input_size] + [l.weight.shape[0] for l in model.layers])} "
          f"MLP, magnitude-pruned to 90% (global); weights in {weights_path}")
    _dispatch(["pack", str(weights_path), "-o", str(image_path), "--lanes", str(args.lanes)])
    x = np.random.default_rng(1).standard_normal((64, model.input_size))
    x[:, ::3] = 0.0                                   # some zero activations, which cost nothing
    np.save(out / "inputs.npy", x)
    _dispatch(["golden", str(image_path), "--input", str(out / "inputs.npy"), "-o", str(out / "outputs.npy")])


def cmd_demo(args) -> None:
    from rich.console import Console

    from .sw.demo import EngineMismatchError, comparison_table, results_table, run_demo

    engine = device = timing = None
    if not args.no_engine:
        from .hw import EngineParameters
        from .sim.build import rich_progress
        from .sim.transport import SimulatorTransport
        from .sw.driver import Device

        # One engine for every model of the demo, sized for the widest (64-256-128-10); a
        # model it cannot hold whole runs in pieces, transparently.
        params = EngineParameters(lanes=args.lanes, max_run_bits=8, word_bits=16,
                                  entry_words=8192, pointer_depth=1024, slot_depth=128,
                                  bank_depth=64, layer_depth=4)
        with rich_progress("Verilator build of the demo's engine") as progress:
            device = Device(SimulatorTransport.start(params, progress=progress), run_timeout=120)

        def engine(image, x):
            device.load(image)
            ran = device.run(x)
            expected = device.golden(x).cycles
            if not np.array_equal(ran.cycles, expected):
                raise EngineMismatchError(f"the engine took {ran.cycles.sum():,} cycles for "
                                          f"the test split, the cycle model {expected.sum():,}")
            return ran.outputs

        # The table's cycles and utilisation are this engine's (they equal its counters).
        timing = device.info().timing
    try:
        result = run_demo(args.output, quick=args.quick, lanes=args.lanes, engine=engine,
                          timing=timing)
    except EngineMismatchError as error:
        raise CommandError(f"the engine disagrees with the golden model: {error}") from None
    finally:
        if device is not None:
            device.close()
    console = Console(width=200)
    console.print(results_table(result))
    console.print(comparison_table(result))
    print(f"finished in {result.seconds:.0f} s; wrote {result.files['results']}, "
          f"{result.files['schedule_plot']}, {result.files['accuracy_plot']}, and images and "
          f"weights under {Path(args.output)}")


def _engine_parameters(args, image=None):
    """EngineParameters from the command line, defaulting to the image's own build."""
    from dataclasses import fields

    from .hw import EngineParameters
    from .sim.transport import parameters_for

    given = {f.name: getattr(args, f.name) for f in fields(EngineParameters)
             if getattr(args, f.name) is not None}
    if image is not None:
        return parameters_for(image, **given)
    return EngineParameters(**given)


def cmd_verilog(args) -> None:
    from amaranth.back import verilog

    from .hw import Engine

    params = _engine_parameters(args)
    Path(args.output).write_text(verilog.convert(Engine(params), name=args.name, emit_src=False))
    print(f"wrote {args.output}: {args.name}, {params}")


def _serial_baud(args) -> int:
    """The UART rate for ``run --port``: ``--baud``, else that of ``--board``'s default build,
    else 3 Mbaud."""
    if args.baud is not None:
        return args.baud
    if args.board is not None:
        from .hw.boards import get_board
        return get_board(args.board).baudrate
    return 3_000_000


def cmd_run(args) -> None:
    from .sim.build import rich_progress
    from .sim.transport import SimulatorTransport, engine_build_info
    from .sw.driver import Device, SerialTransport, plan_pieces

    image = container.load_image(args.image)
    x = _engine_inputs(args.input, image)
    if args.port:
        transport = SerialTransport(args.port, _serial_baud(args))
        where = f"the board on {args.port}"
    else:
        params = _engine_parameters(args, image)
        plan_pieces(image, engine_build_info(params))     # refuse a misfit before building
        with rich_progress("Verilator build") as progress:
            transport = SimulatorTransport.start(params, trace=args.vcd, progress=progress)
        where = f"the Verilator engine ({params.lanes} lanes)"
    with Device(transport, run_timeout=args.timeout) as device:
        pieces = device.load(image)
        result = device.run(x)
        expected = device.golden(x)
        useful = golden.run_golden(image, x, device.info().timing).useful_macs
    np.save(args.output, result.outputs)
    mismatched = int(np.count_nonzero(np.any(result.outputs != expected.outputs, axis=1)))
    cycles_off = int(np.count_nonzero(result.cycles != expected.cycles))
    utilisation = useful / (image.lanes * result.cycles)
    report = {
        "engine": where, "vectors": int(x.shape[0]), "pieces": len(pieces),
        "outputs_equal_golden": mismatched == 0, "cycles_equal_golden": cycles_off == 0,
        "cycles": {"min": int(result.cycles.min()), "mean": float(result.cycles.mean()),
                   "max": int(result.cycles.max()), "total": int(result.cycles.sum())},
        "lane_utilisation": float(utilisation.mean()),
        "output": str(args.output),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{x.shape[0]} vectors on {where}"
              + (f", in {len(pieces)} pieces (the model is larger than the build)" if len(pieces) > 1 else ""))
        print(f"outputs {'equal' if mismatched == 0 else 'DIFFER FROM'} the golden model"
              + ("" if mismatched == 0 else f" on {mismatched} vectors"))
        print(f"cycles per run min {report['cycles']['min']:,} mean {report['cycles']['mean']:,.1f} "
              f"max {report['cycles']['max']:,}; "
              + ("equal to the cycle model" if cycles_off == 0 else f"{cycles_off} differ from the cycle model"))
        print(f"lane utilisation (useful multiply-accumulates per lane-cycle): {utilisation.mean():.3f}")
        print(f"wrote outputs {'x'.join(map(str, result.outputs.shape))} to {args.output}")
    if mismatched or cycles_off:
        raise CommandError("the engine disagrees with the golden model (see above)")


def cmd_build(args) -> None:
    import time
    from dataclasses import fields

    from rich.console import Console
    from rich.markup import escape

    from .hw import EngineParameters
    from .hw.boards import get_board
    from .hw.boards.build import FPGABuildError, TimingError, build, program

    board = get_board(args.board)
    given = {f.name: getattr(args, f.name) for f in fields(EngineParameters)
             if getattr(args, f.name) is not None}
    params = board.engine_parameters(**given)
    output = Path(args.output or f"build-{board.name}")
    console = Console(stderr=True)
    started = time.monotonic()
    try:
        with console.status(f"{board.title}: elaborating") as status:
            def progress(step: str, line: str) -> None:
                if step == "retry":
                    console.print(escape(line), highlight=False)
                    return
                shown = line if len(line) <= 90 else line[:87] + "..."
                status.update(f"{board.title} {step} [{time.monotonic() - started:4.0f} s]: "
                              f"{escape(shown)}")
            result = build(board, params, directory=output, seed=args.seed, seeds=args.seeds,
                           stage=args.stage,
                           frequency=None if args.frequency is None else args.frequency * 1e6,
                           baudrate=args.baud, progress=progress)
    except TimingError as error:
        if args.json:
            print(json.dumps(error.report.as_dict(), indent=2))
        else:
            _print_fpga_report(error.report, None)
        raise CommandError(str(error)) from None
    except FPGABuildError as error:
        raise CommandError(str(error)) from None
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        _print_fpga_report(result.report, result)
    if args.program:
        program(result)
        print(f"programmed {board.title} with {result.bitstream}")


def _print_fpga_report(report, result) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=120)
    title = f"{report.board} ({report.device})"
    if result is not None:
        title += (f": {result.params.lanes} lanes at {result.frequency / 1e6:g} MHz, UART "
                  f"{result.baudrate:,} baud (divisor {result.divisor})")
    console.print(title, highlight=False)
    table = Table()
    for column in ("resource", "used", "available", "use"):
        table.add_column(column, justify="left" if column == "resource" else "right")
    for resource in report.resources:
        table.add_row(resource.name, f"{resource.used:,}",
                      "" if resource.available is None else f"{resource.available:,}",
                      "" if resource.fraction is None else f"{resource.fraction:.0%}")
    console.print(table)
    if report.clocks:
        clocks = Table(title="Timing (nextpnr)")
        for column in ("clock", "Fmax (MHz)", "constraint (MHz)", "met"):
            clocks.add_column(column, justify="left" if column == "clock" else "right")
        for clock in report.clocks:
            clocks.add_row(clock.name, f"{clock.achieved_mhz:.2f}",
                           "" if clock.constraint_mhz is None else f"{clock.constraint_mhz:.2f}",
                           "yes" if clock.met else "NO")
        console.print(clocks)
    if report.timing_met is False and report.critical_path:
        console.print("critical path:\n  " + "\n  ".join(report.critical_path[-12:]),
                      highlight=False)
    if result is not None:
        steps = ", ".join(f"{step} {seconds:.0f} s" for step, seconds in result.seconds.items())
        console.print(f"{steps}; logs and files in {result.directory}"
                      + (f"; bitstream {result.bitstream}" if result.bitstream else ""),
                      highlight=False)


def _add_engine_options(parser: argparse.ArgumentParser, default_note: str) -> None:
    from dataclasses import fields

    from .hw import EngineParameters

    group = parser.add_argument_group("engine parameters", default_note)
    for field in fields(EngineParameters):
        flag = field.type == "bool"
        group.add_argument("--" + field.name.replace("_", "-"), dest=field.name,
                           type=_yes_or_no if flag else int, metavar="0|1" if flag else "N")


def _yes_or_no(text: str) -> bool:
    """A yes/no engine parameter: 1/0, yes/no, true/false or on/off."""
    for value, words in ((True, ("1", "yes", "true", "on")),
                         (False, ("0", "no", "false", "off"))):
        if text.lower() in words:
            return value
    raise argparse.ArgumentTypeError(f"expected 0 or 1 (or yes/no), not {text!r}")


# -- entry point -------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sparsemac", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prune", help="one-shot magnitude pruning of a weights file")
    p.add_argument("input", help="weights (.npz, .safetensors, .pt)")
    p.add_argument("-o", "--output", required=True, help="pruned weights (.npz or .safetensors)")
    p.add_argument("--sparsity", type=float, required=True, help="fraction of weights to prune, in [0, 1)")
    p.add_argument("--scope", choices=("layer", "global"), default="layer",
                   help="one threshold per layer, or one across all layers")
    p.set_defaults(run=cmd_prune)

    p = sub.add_parser("pack", help="quantize and pack a model into an engine image")
    p.add_argument("input", help="weights (.npz, .safetensors, .pt)")
    p.add_argument("-o", "--output", required=True, help="model image (.smac)")
    p.add_argument("--lanes", type=int, default=8)
    p.add_argument("--run-bits", type=_run_bits, default="auto", help="'auto' or 1..8")
    p.add_argument("--max-run-bits", type=int, default=fmt.MAX_RUN_BITS,
                   help="widest run field 'auto' may choose (the engine's)")
    p.add_argument("--weight-bits", type=int, default=8)
    p.add_argument("--activation-bits", type=int, default=8, choices=(8, 16))
    p.add_argument("--accumulator-bits", type=int, default=32,
                   help="the engine's accumulator width; a model that could overflow it is refused")
    p.add_argument("--calibration", help=".npy of float sample inputs (samples x inputs)")
    p.add_argument("--interleave", action="store_true",
                   help="EIE's row i -> lane i mod N instead of the balanced assignment")
    p.set_defaults(run=cmd_pack)

    p = sub.add_parser("inspect", help="the footprint table of an image")
    p.add_argument("image")
    p.add_argument("--json", action="store_true", help="print the same figures as JSON")
    p.set_defaults(run=cmd_inspect)

    p = sub.add_parser("unpack", help="the integer weights of an image back, exactly")
    p.add_argument("image")
    p.add_argument("-o", "--output", required=True, help=".npz or .safetensors")
    p.set_defaults(run=cmd_unpack)

    p = sub.add_parser("golden", help="run the bit-exact golden model")
    p.add_argument("image")
    p.add_argument("--input", required=True, help=".npy, one input vector per row; integers "
                                                  "are engine activations, floats are quantized")
    p.add_argument("-o", "--output", required=True, help=".npy for the outputs")
    p.add_argument("--accumulators", action="store_true",
                   help="write the first layer's raw accumulators instead of the outputs")
    p.set_defaults(run=cmd_golden)

    p = sub.add_parser("verilog", help="write the engine's Verilog")
    p.add_argument("-o", "--output", required=True, help=".v file")
    p.add_argument("--name", default="sparsemac_engine", help="top module name")
    _add_engine_options(p, "default: EngineParameters' defaults")
    p.set_defaults(run=cmd_verilog)

    p = sub.add_parser("run", help="run inputs through the engine (Verilator, or a board) "
                                   "and check them against the golden model")
    p.add_argument("image")
    p.add_argument("--input", required=True, help=".npy, one input vector per row")
    p.add_argument("-o", "--output", required=True, help=".npy for the outputs")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--vcd", help="dump the simulation's waves to this file")
    p.add_argument("--port", help="a board's serial port instead of the simulation")
    p.add_argument("--board", choices=BOARD_NAMES,
                   help="the board on --port, for its default build's UART rate")
    p.add_argument("--baud", type=int, help="the board's UART rate (default: --board's, else "
                                            "3,000,000)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for one RUN")
    _add_engine_options(p, "simulation only; default: the smallest build that holds the image")
    p.set_defaults(run=cmd_run)

    p = sub.add_parser("build", help="build a board's bitstream (YoWASP Yosys and nextpnr) and "
                                     "report Fmax and utilisation")
    p.add_argument("--board", required=True, choices=BOARD_NAMES)
    p.add_argument("-o", "--output", help="build directory (default build-BOARD); the tools' "
                                          "logs stay there")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--program", action="store_true", help="load the bitstream into the board")
    p.add_argument("--seed", type=int, default=1, help="nextpnr's placement seed")
    p.add_argument("--seeds", type=int, metavar="N",
                   help="seeds to try, from --seed on, until one meets the clock (default: "
                        "the board's, 4 on the iCEBreaker, 2 on the ULX3S)")
    p.add_argument("--frequency", type=float, help="engine clock in MHz (default: the board's)")
    p.add_argument("--baud", type=int, help="UART rate (default: the board's)")
    p.add_argument("--stage", choices=("synth", "pnr", "bitstream"), default="bitstream",
                   help="stop after synthesis or place and route")
    _add_engine_options(p, "default: the board's build (docs/fpga.md)")
    p.set_defaults(run=cmd_build)

    p = sub.add_parser("example", help="prune, pack, inspect and run a built-in example model")
    p.add_argument("-o", "--output", default="sparsemac-example", help="directory for the files")
    p.add_argument("--lanes", type=int, default=8)
    p.set_defaults(run=cmd_example)

    p = sub.add_parser("demo", help="train large-sparse and small-dense MLPs on digits, compare "
                                     "them at equal footprint, run them on the engine")
    p.add_argument("-o", "--output", default="sparsemac-demo", help="directory for the files")
    p.add_argument("--quick", action="store_true", help="a reduced configuration (seconds)")
    p.add_argument("--lanes", type=int, default=8)
    p.add_argument("--no-engine", action="store_true",
                   help="skip the Verilator engine (golden model only)")
    p.set_defaults(run=cmd_demo)
    return parser


def _dispatch(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    args.run(args)


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (the console script exits with it)."""
    args = build_parser().parse_args(argv)
    # A SIGTERM (kill, a batch scheduler) unwinds like Ctrl-C, so that the tools a command
    # runs (nextpnr, Verilator, a simulated engine) are killed with it, not left running.
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        args.run(args)
    except (CommandError, ValueError, OSError, EngineError, BuildError) as error:
        # ValueError covers ModelFileError, ImageFormatError and ImageTooLargeError; OSError
        # covers missing files and LinkError.
        print(f"sparsemac {args.command}: error: {error}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def _terminate(signum, frame):
    raise SystemExit(128 + signum)
