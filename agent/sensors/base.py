"""The PowerSensor protocol, the null sensor, the total rule, and `probe()` that picks a source.

Every source module has an `open_sensor(...)` that returns an open sensor (discovered once, then only read) or
raises `SensorUnavailable(reason, kind)`. `probe()` tries them in PROBE_ORDER and records the reason of every
source it skips (never swallowed); when the user named one source, its failure becomes an edgebench error at the
edge (`to_user_error`). Vendor exceptions (OSError, NVMLError, jtop's) are translated inside the source modules.

Total rules (what `total_rule` says):
- "VDD_IN" / "POM_5V_IN": the board or module input rail (Jetson Nano, TX2, Xavier NX, Orin Nano/NX); "VIN" on
  Jetson Thor carrier boards.
- "sum of rails (no input rail)": AGX Xavier / AGX Orin have no input rail; rails named NC are left out.
- RAPL: package zones plus their dram subzones; NVML: sum of GPUs; Pi 5: sum of V x I over PMIC rails.
- "CPU util x TDP above an idle floor (estimate)": the model used when nothing measures power (the estimate
  sensor names its idle share in its own rule); always flagged `estimate`.
"""

from __future__ import annotations

import importlib
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from edgebench.errors import BadInput, DeviceError, EdgebenchError, MissingDependency, PermissionDenied
from edgebench.records import PowerSample

# Rails that measure the whole board/module input, best first (onboard-power.md). VIN is the carrier-board system
# input of Jetson Thor (INA238), which jetson-stats prefers over the module rails; exact names only, so AGX Orin's
# VIN_SYS_5V0 (one rail among several) is not mistaken for it.
INPUT_RAILS = ("VIN", "VDD_IN", "POM_5V_IN")
SUM_RULE = "sum of rails (no input rail)"
ESTIMATE_RULE = "CPU util x TDP above an idle floor (estimate)"
# The most one rail may read, in mW, before the reading is refused as garbage: 1 kW. The largest Jetson (AGX Thor)
# draws about 130 W at its input, a Pi 5 under 30 W, an x86 package or dram zone a few hundred W.
MAX_RAIL_MW = 1_000_000.0

# Probe order: the direct sysfs reader first (fastest, no service), then jtop (a service), tegrastats (a
# subprocess), discrete GPU, x86 package, Pi 5 PMIC, and the model last.
PROBE_ORDER = ("ina3221", "jtop", "tegrastats", "nvml", "rapl", "pi5", "estimate")


class SensorUnavailable(Exception):
    """A source cannot be used here; `reason` says why and, where there is one, the fix.

    `kind` picks the edgebench error it becomes at the edge: "missing" (not on this machine), "dependency"
    (a package or tool is not installed), "permission" (the OS refused), "failed" (present but misbehaving),
    "input" (the user's option for it is malformed, e.g. an unbalanced quote in a command).
    """

    def __init__(self, reason: str, kind: str = "missing") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


def to_user_error(name: str, exc: SensorUnavailable) -> EdgebenchError:
    """The edgebench error for a source the user asked for by name that cannot be used."""
    message = f"sensor {name}: {exc.reason}"
    if exc.kind == "dependency":
        return MissingDependency(message)
    if exc.kind == "permission":
        return PermissionDenied(message)
    if exc.kind == "failed":
        return DeviceError(message)
    return BadInput(message)


@runtime_checkable
class PowerSensor(Protocol):
    """One on-board power source: read all its rails at once and derive the total."""

    name: str  # "ina3221", "tegrastats", "rapl", ...
    rails: tuple[str, ...]  # rail names in the order read() reports them
    total_rule: str  # which rail or rule gives total_mw
    estimate: bool  # True when the figure is modelled, not measured

    def read(self) -> PowerSample:
        """One reading now: t_ns = time.time_ns() when taken, every rail in mW, and the total."""

    def close(self) -> None:
        """Release files, subprocesses and library handles."""


def total_rule_for(rails: Sequence[str]) -> str:
    """Which rail (or rule) gives the total for a sensor with these rails."""
    for rail in INPUT_RAILS:
        if rail in rails:
            return rail
    return SUM_RULE


def total_mw(rails_mw: Mapping[str, float], rule: str) -> float:
    """The total power in mW under `rule`: an input rail's value, or (SUM_RULE) every rail but `NC` summed."""
    if rule == SUM_RULE:
        return float(sum(v for k, v in rails_mw.items() if k != "NC"))
    return float(rails_mw[rule])


class NullSensor:
    """The stand-in when no source is present: no rails, and read() says so instead of inventing a number."""

    name = "none"
    rails: tuple[str, ...] = ()
    total_rule = "none"
    estimate = False

    def __init__(self, reason: str = "no on-board power source on this machine") -> None:
        self.reason = reason

    def read(self) -> PowerSample:
        raise DeviceError(f"no on-board power reading ({self.reason}): see `edgebench sensors` for why")

    def close(self) -> None:
        return None


@dataclass(frozen=True)
class ProbeResult:
    """The sensor probe() chose (NullSensor when none) and every source tried: (name, "used ..." or reason)."""

    sensor: PowerSensor
    tried: list[tuple[str, str]] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return not isinstance(self.sensor, NullSensor)


def _opener(name: str) -> Callable[..., PowerSensor]:
    """The `open_sensor` function of a source module, imported only when probed (vendor libraries lazily)."""
    module = importlib.import_module(f"{__package__}.{name}")
    return module.open_sensor


def _open(name: str, root: Path, tegrastats_cmd: str, vcgencmd_cmd: str, period_s: float) -> PowerSensor:
    opener = _opener(name)
    if name in ("ina3221", "rapl", "estimate"):
        return opener(root=root)
    if name == "tegrastats":
        return opener(cmd=tegrastats_cmd, interval_ms=max(1, round(period_s * 1000)))
    if name == "pi5":
        return opener(cmd=vcgencmd_cmd)
    return opener()


def probe(
    names: str | Sequence[str] = "auto",
    *,
    root: Path = Path("/"),
    tegrastats_cmd: str = "tegrastats",
    vcgencmd_cmd: str = "vcgencmd",
    period_s: float = 0.1,
) -> ProbeResult:
    """Open the first usable power source among `names` ("auto": every source, in PROBE_ORDER).

    Every source tried is listed in `tried` with "used (total: ...)" or the reason it was skipped. With one
    source named (a string other than "auto"), its failure is raised as an edgebench error instead, since the
    user asked for it; "none" gives the NullSensor. Unknown names are BadInput. `period_s` sets the tegrastats
    interval.
    """
    if isinstance(names, str):
        if names == "none":
            return ProbeResult(NullSensor("sensor none was asked for"), [("none", "asked for")])
        wanted = list(PROBE_ORDER) if names == "auto" else [names]
        strict = names != "auto"
    else:
        wanted = list(names)
        strict = False
    unknown = [n for n in wanted if n not in PROBE_ORDER]
    if unknown or not wanted:
        raise BadInput(
            f"unknown sensor {unknown[0] if unknown else '(none)'!r}: pick auto, none, or one of {', '.join(PROBE_ORDER)}"
        )
    tried: list[tuple[str, str]] = []
    for name in wanted:
        try:
            sensor = _open(name, Path(root), tegrastats_cmd, vcgencmd_cmd, period_s)
        except SensorUnavailable as exc:
            if strict:
                raise to_user_error(name, exc) from None
            tried.append((name, exc.reason))
            continue
        tried.append((name, f"used (total: {sensor.total_rule})"))
        return ProbeResult(sensor, tried)
    return ProbeResult(NullSensor("; ".join(f"{n}: {r}" for n, r in tried)), tried)


def split_command(cmd: str, what: str) -> list[str]:
    """`cmd` split like a shell would (quotes kept together, no shell run); SensorUnavailable when it cannot be.

    So a command option can hold "sudo -n tegrastats" or "'/opt/my tools/vcgencmd'", not only a bare name.
    """
    try:
        argv = shlex.split(cmd)
    except ValueError as exc:
        raise SensorUnavailable(f"{what} command {cmd!r} cannot be split ({exc}): check its quotes", "input") from None
    if not argv:
        raise SensorUnavailable(f"{what} command is empty: give one, e.g. {what!r}", "input")
    return argv


def now_ns() -> int:
    """The sample clock: agent realtime, the clock RunRecord windows are read on."""
    return time.time_ns()
