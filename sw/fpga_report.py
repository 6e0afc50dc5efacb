"""What an FPGA build achieved: Fmax per clock and resource use, read from the tools' files.

Host-only (no Amaranth): it reads nextpnr's ``--report`` JSON (Fmax per clock against its
constraint, and utilisation per cell type), Yosys' ``stat -json`` (cell counts after
synthesis, for builds that stop there) and nextpnr's log (the critical path when timing
fails).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["ClockTiming", "Resource", "FPGAReport", "read_nextpnr_report", "read_yosys_stat",
           "critical_path_from_log", "critical_path_from_report", "fmax_from_log",
           "RESOURCE_NAMES"]

#: The resources a report lists, per family: (report name, nextpnr cell type, Yosys cell types).
RESOURCE_NAMES = {
    "ice40": [
        # nextpnr counts logic cells (a LUT4, a carry and a flip-flop each), Yosys the parts.
        ("LC", "ICESTORM_LC", ()),
        ("LUT", None, ("SB_LUT4",)),
        ("FF", None, ("SB_DFF", "SB_DFFE", "SB_DFFSR", "SB_DFFR", "SB_DFFS", "SB_DFFESR",
                      "SB_DFFER", "SB_DFFES", "SB_DFFSS", "SB_DFFESS", "SB_DFFN")),
        ("carry", None, ("SB_CARRY",)),
        ("DSP", "ICESTORM_DSP", ("SB_MAC16",)),
        ("BRAM", "ICESTORM_RAM", ("SB_RAM40_4K",)),
        ("SPRAM", "ICESTORM_SPRAM", ("SB_SPRAM256KA",)),
        ("PLL", "ICESTORM_PLL", ("SB_PLL40_PAD", "SB_PLL40_CORE")),
        ("IO", "SB_IO", ("SB_IO",)),
    ],
    "ecp5": [
        ("LUT", "TRELLIS_COMB", ("LUT4",)),
        ("FF", "TRELLIS_FF", ("TRELLIS_FF",)),
        ("carry", None, ("CCU2C",)),
        ("LUTRAM", "TRELLIS_RAMW", ("TRELLIS_DPR16X4",)),
        ("DSP", "MULT18X18D", ("MULT18X18D",)),
        ("BRAM", "DP16KD", ("DP16KD",)),
        ("PLL", "EHXPLLL", ("EHXPLLL",)),
        ("IO", "TRELLIS_IO", ("TRELLIS_IO",)),
    ],
}


@dataclass(frozen=True)
class ClockTiming:
    """One clock's achieved and constrained frequencies, MHz."""
    name: str
    achieved_mhz: float
    constraint_mhz: float | None

    @property
    def met(self) -> bool:
        return self.constraint_mhz is None or self.achieved_mhz >= self.constraint_mhz


@dataclass(frozen=True)
class Resource:
    """Cells of one kind used, and available on the device (None if not known)."""
    name: str
    used: int
    available: int | None = None

    @property
    def fraction(self) -> float | None:
        return None if not self.available else self.used / self.available


@dataclass
class FPGAReport:
    """The figures of one build.

    ``stage`` is ``synth`` (Yosys' counts only, no timing) or ``pnr`` (nextpnr's).
    """
    board: str
    device: str
    stage: str
    resources: list[Resource] = field(default_factory=list)
    clocks: list[ClockTiming] = field(default_factory=list)
    critical_path: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    @property
    def timing_met(self) -> bool | None:
        if self.stage != "pnr":
            return None
        return all(clock.met for clock in self.clocks)

    def resource(self, name: str) -> Resource | None:
        return next((r for r in self.resources if r.name == name), None)

    def clock(self, fragment: str) -> ClockTiming | None:
        """The first clock whose name contains ``fragment``."""
        return next((c for c in self.clocks if fragment in c.name), None)

    def as_dict(self) -> dict:
        data = asdict(self)
        data["timing_met"] = self.timing_met
        for resource, entry in zip(self.resources, data["resources"]):
            entry["fraction"] = resource.fraction
        for clock, entry in zip(self.clocks, data["clocks"]):
            entry["met"] = clock.met
        return data


def read_nextpnr_report(path: str | Path, family: str) -> tuple[list[Resource], list[ClockTiming]]:
    """Resources and clocks from nextpnr's ``--report`` JSON.

    The file has ``utilization: {cell type: {used, available}}`` and
    ``fmax: {clock net: {achieved, constraint}}`` (MHz).
    """
    data = json.loads(Path(path).read_text())
    utilisation = data.get("utilization", {})
    resources = []
    for name, cell, _ in RESOURCE_NAMES[family]:
        if cell is not None and cell in utilisation:
            entry = utilisation[cell]
            resources.append(Resource(name, int(entry["used"]), int(entry["available"])))
    clocks = [ClockTiming(name, float(entry["achieved"]),
                          None if entry.get("constraint") is None else float(entry["constraint"]))
              for name, entry in sorted(data.get("fmax", {}).items())]
    return resources, clocks


def read_yosys_stat(path: str | Path, family: str, top: str | None = None) -> list[Resource]:
    """Cell counts from Yosys' ``stat -json`` of a synthesised design (the top module's, or
    the design total's)."""
    data = json.loads(Path(path).read_text())
    if "design" in data and "num_cells_by_type" in data["design"]:
        cells = data["design"]["num_cells_by_type"]
    else:
        modules = data["modules"]
        module = modules[top] if top in modules else next(iter(modules.values()))
        cells = module["num_cells_by_type"]
    resources = []
    for name, _, kinds in RESOURCE_NAMES[family]:
        if not kinds:
            continue
        used = sum(int(count) for kind, count in cells.items()
                   if kind in kinds or (name == "FF" and family == "ice40" and kind.startswith("SB_DFF")))
        resources.append(Resource(name, used))
    return resources


_PATH_LINE = re.compile(r"Info:\s+(clk-to-q|routing|logic|setup)\s+([\d.]+)\s+([\d.]+)\s+"
                        r"(?:Source|Net|Sink|Setup)?\s*(\S*)")
_DEFINED = re.compile(r"Info:\s+(\S+\.py:\d+)")


def critical_path_from_log(path: str | Path) -> list[str]:
    """The last same-clock critical path in a nextpnr log, one line per step
    (``kind delay total cell-or-net``, with the Amaranth source line where nextpnr gives
    one), or an empty list."""
    lines = Path(path).read_text(errors="replace").splitlines()
    starts = [k for k, line in enumerate(lines)
              if "Critical path report for clock" in line]
    if not starts:
        return []
    steps: list[str] = []
    located = True
    for line in lines[starts[-1] + 1:]:
        if "Critical path report" in line or not line.startswith("Info:"):
            break
        if match := _PATH_LINE.match(line):
            kind, delay, total, name = match.groups()
            name = name if len(name) <= 72 else name[:69] + "..."
            steps.append(f"{kind:8} {float(delay):6.2f} {float(total):7.2f} ns  {name}")
            located = False
        elif (match := _DEFINED.match(line)) and not located:
            steps[-1] += f"  ({match.group(1)})"
            located = True
    return steps


def critical_path_from_report(path: str | Path) -> list[str]:
    """The longest same-clock critical path of nextpnr's ``--report`` JSON, one line per step
    (``kind delay total cell.port``, and the net for a routing step), or an empty list."""
    data = json.loads(Path(path).read_text())
    paths = [p for p in data.get("critical_paths", []) if p.get("from") == p.get("to")]
    if not paths:
        return []
    longest = max(paths, key=lambda p: sum(step["delay"] for step in p["path"]))
    steps, total = [], 0.0
    for step in longest["path"]:
        total += step["delay"]
        end = step["to"] if step["type"] != "clk-to-q" else step["from"]
        name = step.get("net") if step["type"] == "routing" else f"{end['cell']}.{end['port']}"
        name = name if len(name) <= 72 else name[:69] + "..."
        steps.append(f"{step['type']:8} {step['delay']:6.2f} {total:7.2f} ns  {name}")
    return steps


def fmax_from_log(path: str | Path) -> list[ClockTiming]:
    """``Max frequency for clock 'x': A MHz (PASS|FAIL at B MHz)`` lines of a nextpnr log (the
    last of each clock: the figures after routing)."""
    found: dict[str, ClockTiming] = {}
    pattern = re.compile(r"Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz \((?:PASS|FAIL) "
                         r"at ([\d.]+) MHz\)")
    for line in Path(path).read_text(errors="replace").splitlines():
        if match := pattern.search(line):
            name, achieved, constraint = match.groups()
            found[name] = ClockTiming(name, float(achieved), float(constraint))
    return list(found.values())
