"""``python -m sparsemac.sim``: build a design's simulation, lint it, or run it as a pipe.

Examples::

    python -m sparsemac.sim build sparsemac.hw.engine:Engine -p lanes=8
    python -m sparsemac.sim lint tests/sim/standin.py:AddEcho --no-waivers
    python -m sparsemac.sim pipe sparsemac.hw.engine:Engine < request.bin > reply.bin

``FACTORY`` is ``module:name`` or ``path/to/file.py:name``; ``-p key=value`` parameters are
parsed as JSON where they parse (``-p lanes=8`` is the integer 8), else taken as strings.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

from .build import build_cocotb, build_harness, convert, lint, rich_progress


def load_factory(spec: str) -> Callable[..., Any]:
    """Resolve ``module:name`` or ``file.py:name`` to the object it names."""
    where, sep, attr = spec.rpartition(":")
    if not sep or not where or not attr:
        raise SystemExit(f"error: factory must be MODULE:NAME or FILE.py:NAME, not {spec!r}")
    if where.endswith(".py"):
        path = Path(where).resolve()
        sys.path.insert(0, str(path.parent))  # so the module's name is importable by key
        module = importlib.import_module(path.stem)
    else:
        module = importlib.import_module(where)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise SystemExit(f"error: {where} has no {attr!r}") from None


def parse_params(pairs: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep:
            raise SystemExit(f"error: parameter must be KEY=VALUE, not {pair!r}")
        try:
            params[key] = json.loads(text)
        except json.JSONDecodeError:
            params[key] = text
    return params


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sparsemac.sim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in [("build", "convert and Verilate (cocotb model and pipe harness)"),
                       ("lint", "verilator --lint-only -Wall on the converted design"),
                       ("pipe", "run the pipe harness: stdin to the design, design to stdout")]:
        p = sub.add_parser(name, help=text)
        p.add_argument("factory", help="MODULE:NAME or FILE.py:NAME of the component class")
        p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE")
        p.add_argument("--name", default="top", help="top module name (default: top)")
        if name == "build":
            p.add_argument("--kind", choices=["cocotb", "harness", "both"], default="both")
        if name == "lint":
            p.add_argument("--no-waivers", action="store_true",
                           help="leave sim/verilator_waivers.vlt out, to see what it hides")
        if name == "pipe":
            p.add_argument("--trace", metavar="FILE", help="write a VCD")
            p.add_argument("--idle-cycles", type=int, default=1_000_000)
    args = parser.parse_args(argv)

    design = convert(load_factory(args.factory), parse_params(args.param), name=args.name)
    if args.command == "lint":
        lines = lint(design, waivers=not args.no_waivers)
        print("\n".join(lines) if lines else f"{design.verilog}: clean")
        return 1 if lines else 0
    with rich_progress() as progress:
        if args.command == "build":
            if args.kind in ("cocotb", "both"):
                print(build_cocotb(design, progress=progress))
            if args.kind in ("harness", "both"):
                print(build_harness(design, progress=progress))
            return 0
        executable = build_harness(design, progress=progress)
    command = [str(executable), "--idle-cycles", str(args.idle_cycles)]
    if args.trace:
        command += ["--trace", args.trace]
    sys.stdout.flush()
    os.execv(command[0], command)  # the harness takes over stdin and stdout
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
