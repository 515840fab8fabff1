"""Records that cross the seams between engines, agent and host, and their versioned JSON-lines form.

Times are integer nanoseconds since the epoch together with the name of the clock they were read on
(`agent:realtime` on the device, `host:realtime` on the host). Units are in field names and converted only at the
edges. Records are frozen dataclasses; mappings inside them are metadata (free-form, like pyperf's), never
values another module computes with.

Format history (readers accept every version listed here):
- 1: first version.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from .errors import BadInput

SCHEMA_VERSION = 1
SUPPORTED_VERSIONS = (1,)

AGENT_CLOCK = "agent:realtime"
HOST_CLOCK = "host:realtime"

MetadataValue = str | int | float | bool | None
Metadata = Mapping[str, MetadataValue]


@dataclass(frozen=True)
class PowerSample:
    """One reading of an on-board power sensor: every rail it saw and the total it derived."""

    t_ns: int
    rails_mw: Mapping[str, float]
    total_mw: float


@dataclass(frozen=True)
class RailEnergy:
    """On-board energy of one measured window, integrated from PowerSamples (trapezoid, edges interpolated)."""

    sensor: str  # which PowerSensor produced the samples ("ina3221", "tegrastats", "estimate", ...)
    total_rule: str  # which rail or rule gave the total ("VDD_IN", "sum of rails", "CPU util x TDP")
    energy_j: float
    mean_power_w: float
    samples: int
    estimate: bool = False  # True when the figure is modelled, not measured


@dataclass(frozen=True)
class Accuracy:
    """How well an engine classifies a labelled dataset (written by `edgebench eval` into the manifest)."""

    top1: float  # fraction correct, 0..1
    top5: float | None  # None when the dataset has 5 classes or fewer
    samples: int  # labelled inputs evaluated
    dataset: str  # what was evaluated, in words ("sklearn digits, 1797 images, test split")
    preprocessing: str = ""  # resize method, mean/std, channel order, as applied


@dataclass(frozen=True)
class RunRecord:
    """What the agent measured for one window of one engine (or of idle, when kind == "idle")."""

    engine: str
    backend: str
    clock: str
    window_start_ns: int
    window_end_ns: int
    iterations: int
    batch: int
    latencies_ns: tuple[int, ...]
    warmup_latencies_ns: tuple[int, ...] = ()
    kind: str = "run"  # "run" for an engine window, "idle" for an idle baseline window
    timed_region: str = ""  # what one timed iteration contains, in words
    settings: Metadata = field(default_factory=dict)  # threads, providers, spin-wait...: what shapes the timing
    device: Metadata = field(default_factory=dict)  # machine metadata at the start of the run
    device_end: Metadata = field(default_factory=dict)  # temperatures/clocks at the end of the run
    sensor: str = "none"
    power_samples: tuple[PowerSample, ...] = ()
    rail_energy: RailEnergy | None = None
    run_id: str = ""
    repeat: int = 0
    warnings: tuple[str, ...] = ()
    schema: int = SCHEMA_VERSION

    @property
    def duration_ns(self) -> int:
        return self.window_end_ns - self.window_start_ns

    @property
    def samples_processed(self) -> int:
        """Input samples processed in the measured window (iterations x batch)."""
        return self.iterations * self.batch


@dataclass(frozen=True)
class MeterReading:
    """One wall-meter reading, timestamped on the host when its bytes arrived."""

    t_ns: int
    power_w: float
    meter: str  # meter identity: protocol and model, e.g. "tweetawatt", "wattsup PRO", "UM25C"
    address: str = ""  # sensor address where one receiver hears several meters (XBee source address)
    voltage_v: float | None = None
    current_a: float | None = None
    power_factor: float | None = None
    energy_wh: float | None = None


@dataclass(frozen=True)
class MeterTrace:
    """A meter log loaded for analysis: host-clock times and watts as arrays, sorted by time."""

    t_ns: np.ndarray  # int64
    power_w: np.ndarray  # float64
    meter: str
    resolution_w: float = 0.0  # smallest step the meter reports; feeds the uncertainty
    gaps: tuple[tuple[int, int], ...] = ()  # (start_ns, end_ns) spans the logger knows it heard nothing

    def __post_init__(self) -> None:
        if len(self.t_ns) != len(self.power_w):
            raise ValueError("MeterTrace: t_ns and power_w differ in length")


@dataclass(frozen=True)
class ClockOffset:
    """Maps agent-clock times to the host clock: host = agent + offset + drift x (agent - reference)."""

    offset_ns: int
    reference_agent_ns: int = 0
    drift_ppm: float = 0.0
    uncertainty_ns: int = 0
    method: str = "none"  # "ntp-style, N round trips", "same machine", "user-given"

    def to_host_ns(self, agent_ns: int) -> int:
        drift_ns = (agent_ns - self.reference_agent_ns) * self.drift_ppm * 1e-6
        return int(agent_ns + self.offset_ns + round(drift_ns))


ZERO_OFFSET = ClockOffset(offset_ns=0, method="same clock")


# --- JSON lines -----------------------------------------------------------------------------------------------

_RECORD_TYPES: dict[str, type] = {
    "RunRecord": RunRecord,
    "PowerSample": PowerSample,
    "RailEnergy": RailEnergy,
    "MeterReading": MeterReading,
    "ClockOffset": ClockOffset,
}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_dict(record: Any) -> dict[str, Any]:
    """A record as plain JSON-able data, tagged with its type and the format version."""
    data = _plain(record)
    data["type"] = type(record).__name__
    data.setdefault("schema", SCHEMA_VERSION)
    return data


def run_record_from_dict(data: Mapping[str, Any]) -> RunRecord:
    """Rebuild a RunRecord from `to_dict` output, checking the format version."""
    version = data.get("schema", 1)
    if version not in SUPPORTED_VERSIONS:
        raise BadInput(
            f"run record format version {version} is newer than this edgebench reads "
            f"({max(SUPPORTED_VERSIONS)}): upgrade edgebench"
        )
    fields = {f.name for f in dataclasses.fields(RunRecord)}
    kwargs = {k: v for k, v in data.items() if k in fields}
    kwargs["latencies_ns"] = tuple(int(v) for v in data.get("latencies_ns", ()))
    kwargs["warmup_latencies_ns"] = tuple(int(v) for v in data.get("warmup_latencies_ns", ()))
    kwargs["warnings"] = tuple(data.get("warnings", ()))
    kwargs["power_samples"] = tuple(
        PowerSample(t_ns=int(s["t_ns"]), rails_mw=dict(s["rails_mw"]), total_mw=float(s["total_mw"]))
        for s in data.get("power_samples", ())
    )
    rail = data.get("rail_energy")
    kwargs["rail_energy"] = (
        RailEnergy(**{k: v for k, v in rail.items() if k not in ("type", "schema")}) if rail else None
    )
    kwargs["schema"] = SCHEMA_VERSION
    return RunRecord(**kwargs)


def dumps(record: Any) -> str:
    """One record as one JSON line (no trailing newline)."""
    return json.dumps(to_dict(record), separators=(",", ":"), allow_nan=False)


def write_jsonl(stream: IO[str], records: Iterable[Any]) -> None:
    """Append records to an open text stream, one JSON line each, flushing after each one."""
    for record in records:
        stream.write(dumps(record) + "\n")
        stream.flush()


def append_jsonl(path: str | Path, records: Iterable[Any]) -> None:
    """Append records to a JSON-lines file (created if missing)."""
    with open(path, "a", encoding="utf-8") as stream:
        write_jsonl(stream, records)


def iter_run_records(path: str | Path) -> Iterator[RunRecord]:
    """RunRecords from a JSON-lines file; other record types in the file are skipped."""
    p = Path(path)
    if not p.is_file():
        raise BadInput(f"no such run-record file: {p}: pass the file `edgebench bench --out` wrote")
    with p.open(encoding="utf-8") as stream:
        for lineno, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BadInput(f"{p}:{lineno}: not a JSON line ({exc.msg}): is this a run-record file?") from None
            if data.get("type", "RunRecord") == "RunRecord":
                yield run_record_from_dict(data)


def read_run_records(path: str | Path) -> list[RunRecord]:
    """All RunRecords of a JSON-lines file."""
    return list(iter_run_records(path))


def with_changes(record: Any, **changes: Any) -> Any:
    """A copy of a frozen record with some fields replaced."""
    return dataclasses.replace(record, **changes)


def latencies_ms(values_ns: Sequence[int]) -> np.ndarray:
    """Latencies in milliseconds as a float array (the one place ns become ms for display)."""
    return np.asarray(values_ns, dtype=np.float64) / 1e6
