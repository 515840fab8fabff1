"""Records that cross the seams between engines, agent and host, and their versioned JSON-lines form.

Times are integer nanoseconds since the epoch together with the name of the clock they were read on
(`agent:realtime` on the device, `host:realtime` on the host). Units are in field names and converted only at the
edges. Records are frozen dataclasses; mappings inside them are metadata (free-form, like pyperf's), never
values another module computes with.

Format history (readers accept every version listed here):
- 1: first version. A failed window's message was `settings["error"]`; model facts were `settings["model.*"]`.
- 2: RunRecord gains `error`, `model` (ModelFacts, with the engine's Accuracy when evaluated) and `attempt`
  (0 for a window's first try, 1.. for a re-measurement after the meter invalidated it). Version-1 lines are
  read into the same fields.
- 3: RunRecord gains `cpu_busy` (the device's CPU utilisation over the window, a fraction of all its CPUs, from
  /proc/stat; None where it could not be read), so an idle window taken while the device was busy can be told
  apart. Version-1 and -2 lines read with `cpu_busy` None.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeAlias

from .errors import BadInput

if TYPE_CHECKING:  # numpy is imported where arrays are made: the CLI front, `carbon` and a cached build start without it
    import numpy as np

SCHEMA_VERSION = 3
SUPPORTED_VERSIONS = (1, 2, 3)

AGENT_CLOCK = "agent:realtime"
HOST_CLOCK = "host:realtime"

SAMPLINGS = ("continuous", "spot", "counter")  # how a meter trace was taken (MeterTrace.sampling)

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
class ModelFacts:
    """What the manifest says about the model an engine runs: carried in every RunRecord of that engine, so a
    table shows size, cost and accuracy beside energy without the engines directory."""

    params: int | None = None
    macs_per_inference: int | None = None
    flops_per_inference: int | None = None
    cache_key: str = ""
    accuracy: Accuracy | None = None


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
    error: str = ""  # why the window did not run (load failure, crash); "" when it ran
    model: ModelFacts | None = None
    attempt: int = 0  # 0: first try of this window; n: its n-th re-measurement (`measure --retry`)
    cpu_busy: float | None = None  # CPU utilisation over the window, 0..1 of all CPUs (/proc/stat); None: unknown
    schema: int = SCHEMA_VERSION

    @property
    def failed(self) -> bool:
        """True when the window never ran: an error, or (for an engine window) no iteration completed."""
        return bool(self.error) or (self.kind == "run" and self.iterations <= 0)

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
    # "continuous": a sampled trace, integrated (trapezoid); "spot": readings a person took off a display, a
    # window's power is the mean of the readings inside it; "counter": cumulative energy readings (energy_wh)
    sampling: str = "continuous"
    # What the log's metadata says of the meter's period (None when it says nothing). A trace loaded for some
    # windows (`store.load_windows`) holds only the readings around them, so a period measured on it is the
    # period around the windows, not the log's.
    nominal_period_s: float | None = None
    bad_readings: int = 0  # stored readings left out: not finite, negative or beyond the meter's limit
    duplicate_readings: int = 0  # stored readings left out: a second reading of the same sensor at the same t_ns
    energy_wh: np.ndarray | None = None  # "counter": the cumulative readings (Wh) at t_ns; else None
    timing_u_s: float = 0.0  # standard uncertainty of a reading's time (a smart plug's poll round trip)

    def __post_init__(self) -> None:
        if len(self.t_ns) != len(self.power_w):
            raise ValueError("MeterTrace: t_ns and power_w differ in length")
        if self.energy_wh is not None and len(self.energy_wh) != len(self.t_ns):
            raise ValueError("MeterTrace: energy_wh and t_ns differ in length")
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"MeterTrace: sampling {self.sampling!r} is not one of {', '.join(SAMPLINGS)}")



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

# The records written as tagged JSON (`to_dict`, JSON lines) and read back by their tag.
Record: TypeAlias = "RunRecord | PowerSample | RailEnergy | MeterReading | ClockOffset"

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
    if _is_numpy_scalar(value):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _is_numpy_scalar(value: Any) -> bool:
    # without numpy imported no value can be one of its scalars, and the check must not import it
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, numpy.generic)


def to_dict(record: Record) -> dict[str, Any]:
    """A record as plain JSON-able data, tagged with its type and the format version."""
    data = _plain(record)
    data["type"] = type(record).__name__
    data.setdefault("schema", SCHEMA_VERSION)
    return data


class RecordError(ValueError):
    """A record's data has a missing or mistyped field; the message names the field."""


def _field(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], default: Any = dataclasses.MISSING) -> Any:
    """`data[key]` checked against `kind` (bool is not an int here); `default` when absent or null."""
    if key not in data or data[key] is None:
        if default is dataclasses.MISSING:
            raise RecordError(f"field {key!r} is missing")
        return default
    value = data[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise RecordError(f"field {key!r} is {value!r}, not a number")
    if not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise RecordError(f"field {key!r} is {type(value).__name__} {_short(value)}, not {names}")
    if isinstance(value, float) and not math.isfinite(value):
        raise RecordError(f"field {key!r} is {value!r}, not a finite number")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _int_list(data: Mapping[str, Any], key: str) -> tuple[int, ...]:
    """A list of durations in ns: integers 0..2**63-1. A window holds thousands, so the check runs in C: the set of
    the values' types (True is a bool, not an int, so a `true` in the list is refused) and their min and max."""
    values = _field(data, key, list, [])
    if values and (not set(map(type, values)) <= {int} or min(values) < 0 or max(values) >= 2**63):
        raise RecordError(f"field {key!r} must be a list of integers 0..2**63-1 (nanoseconds)")
    return tuple(values)


def _sensor_figure(data: Mapping[str, Any], key: str) -> float:
    """A sensor's figure: a number, or NaN where it was NaN (written as null: JSON has no NaN)."""
    if data.get(key, 0) is None:
        return math.nan
    return float(_field(data, key, (int, float)))


def _fraction(data: Mapping[str, Any], key: str) -> float | None:
    """An optional fraction 0..1 (None when absent or null)."""
    value = _field(data, key, (int, float), None)
    if value is None:
        return None
    if not 0.0 <= value <= 1.0:
        raise RecordError(f"field {key!r} is {value!r}, not a fraction between 0 and 1")
    return float(value)


def _metadata(data: Mapping[str, Any], key: str) -> dict[str, MetadataValue]:
    value = _field(data, key, dict, {})
    return {str(k): v for k, v in value.items()}


def accuracy_from_dict(data: Mapping[str, Any]) -> Accuracy:
    """An Accuracy from its JSON form, every field checked."""
    top1 = float(_field(data, "top1", (int, float)))
    top5 = _field(data, "top5", (int, float), None)
    if not 0.0 <= top1 <= 1.0 or (top5 is not None and not 0.0 <= top5 <= 1.0):
        raise RecordError("accuracy top1/top5 must be fractions between 0 and 1")
    return Accuracy(
        top1=top1,
        top5=None if top5 is None else float(top5),
        samples=_field(data, "samples", int),
        dataset=_field(data, "dataset", str),
        preprocessing=_field(data, "preprocessing", str, ""),
    )


def model_facts_from_dict(data: Mapping[str, Any]) -> ModelFacts:
    """ModelFacts from its JSON form (RunRecord.model, or a manifest row), every field checked."""
    accuracy = _field(data, "accuracy", dict, None)
    return ModelFacts(
        params=_field(data, "params", int, None),
        macs_per_inference=_field(data, "macs_per_inference", int, None),
        flops_per_inference=_field(data, "flops_per_inference", int, None),
        cache_key=_field(data, "cache_key", str, ""),
        accuracy=None if accuracy is None else accuracy_from_dict(accuracy),
    )


@dataclass(frozen=True)
class AgentHello:
    """The agent's answer to hello, as the host uses it (who it is, what it has, what it samples)."""

    protocol: int
    edgebench: str
    hostname: str
    engines: int  # engines in its manifest
    engines_dir: str = ""
    clock: str = AGENT_CLOCK
    sensor: str = "none"  # its on-board power source
    sensor_estimate: bool = False  # True when that source is a model, not a measurement
    device: Metadata = field(default_factory=dict)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> AgentHello:
        """From the hello result; RecordError naming the field when the agent sent something malformed."""
        if not isinstance(data, Mapping):
            raise RecordError("hello result is not an object")
        sensor = _field(data, "sensor", dict, {})
        return cls(
            protocol=_field(data, "protocol", int),
            edgebench=_field(data, "edgebench", str, ""),
            hostname=_field(data, "hostname", str, ""),
            engines=_field(data, "engines", int, 0),
            engines_dir=_field(data, "engines_dir", str, ""),
            clock=_field(data, "clock", str, AGENT_CLOCK),
            sensor=_field(sensor, "name", str, "none"),
            sensor_estimate=_field(sensor, "estimate", bool, False),
            device=_metadata(data, "device"),
        )


@dataclass(frozen=True)
class EngineRow:
    """One manifest row as the host sees it through the agent's `engines` answer."""

    name: str
    backend: str
    batch: int
    model: ModelFacts
    versions: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> EngineRow:
        """From a manifest row (`ManifestEntry.to_dict()`); RecordError naming the field when malformed."""
        if not isinstance(data, Mapping):
            raise RecordError("an engine row is not an object")
        spec = _field(data, "spec", dict, {})
        batch = _field(spec, "batch", int, 1)
        if batch < 1:
            raise RecordError(f"engine batch {batch} is below 1")
        versions = _field(data, "versions", dict, {})
        return cls(
            name=_field(data, "name", str),
            backend=_field(data, "backend", str, ""),
            batch=batch,
            model=model_facts_from_dict(data),
            versions={str(k): str(v) for k, v in versions.items()},
        )


def _v1_upgrade(settings: dict[str, MetadataValue]) -> tuple[str, ModelFacts | None]:
    """Format 1 kept the error and the model facts in `settings`: lift them into their own fields."""
    error = settings.pop("error", None)
    facts = {k[len("model."):]: settings.pop(k) for k in [k for k in settings if k.startswith("model.")]}
    return (str(error) if error else ""), (model_facts_from_dict(facts) if facts else None)


def _power_sample(data: Any) -> PowerSample:
    if not isinstance(data, Mapping):
        raise RecordError("power_samples must hold objects")
    rails = _field(data, "rails_mw", dict)
    if not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in rails.values()):
        raise RecordError("power_samples rails_mw must map rail names to numbers")
    return PowerSample(
        t_ns=_field(data, "t_ns", int),
        rails_mw={str(k): math.nan if v is None else float(v) for k, v in rails.items()},
        total_mw=_sensor_figure(data, "total_mw"),
    )


def _rail_energy(data: Mapping[str, Any]) -> RailEnergy:
    if not isinstance(data, Mapping):
        raise RecordError("rail_energy must be an object")
    return RailEnergy(
        sensor=_field(data, "sensor", str),
        total_rule=_field(data, "total_rule", str),
        energy_j=_sensor_figure(data, "energy_j"),
        mean_power_w=_sensor_figure(data, "mean_power_w"),
        samples=_field(data, "samples", int),
        estimate=_field(data, "estimate", bool, False),
    )


def run_record_from_dict(data: Mapping[str, Any]) -> RunRecord:
    """Rebuild a RunRecord from `to_dict` output (format 1 or 2), checking the version and every field's type.

    Raises BadInput for a newer format and RecordError (a ValueError naming the field) for malformed data."""
    if not isinstance(data, Mapping):
        raise RecordError(f"a run record is a JSON object, not {type(data).__name__}")
    version = data.get("schema", 1)
    if version not in SUPPORTED_VERSIONS:
        newest = max(SUPPORTED_VERSIONS)
        if isinstance(version, int) and not isinstance(version, bool) and version > newest:
            raise BadInput(
                f"run record format version {version} is newer than this edgebench reads ({newest}): "
                "upgrade edgebench"
            )
        raise RecordError(f"unknown run record format version {_short(version)}")
    settings = _metadata(data, "settings")
    if version == 1:
        error, model = _v1_upgrade(settings)
    else:
        error = _field(data, "error", str, "")
        model_data = _field(data, "model", dict, None)
        model = None if model_data is None else model_facts_from_dict(model_data)
    rail = _field(data, "rail_energy", dict, None)
    warnings = _field(data, "warnings", list, [])
    if not all(isinstance(w, str) for w in warnings):
        raise RecordError("field 'warnings' must be a list of strings")
    record = RunRecord(
        engine=_field(data, "engine", str),
        backend=_field(data, "backend", str, ""),
        clock=_field(data, "clock", str),
        window_start_ns=_field(data, "window_start_ns", int),
        window_end_ns=_field(data, "window_end_ns", int),
        iterations=_field(data, "iterations", int),
        batch=_field(data, "batch", int),
        latencies_ns=_int_list(data, "latencies_ns"),
        warmup_latencies_ns=_int_list(data, "warmup_latencies_ns"),
        kind=_field(data, "kind", str, "run"),
        timed_region=_field(data, "timed_region", str, ""),
        settings=settings,
        device=_metadata(data, "device"),
        device_end=_metadata(data, "device_end"),
        sensor=_field(data, "sensor", str, "none"),
        power_samples=tuple(_power_sample(s) for s in _field(data, "power_samples", list, [])),
        rail_energy=None if rail is None else _rail_energy(rail),
        run_id=_field(data, "run_id", str, ""),
        repeat=_field(data, "repeat", int, 0),
        warnings=tuple(warnings),
        error=error,
        model=model,
        attempt=_field(data, "attempt", int, 0),
        cpu_busy=_fraction(data, "cpu_busy"),
        schema=SCHEMA_VERSION,
    )
    _check_window(record)
    return record


def _check_window(r: RunRecord) -> None:
    """What no writer of a RunRecord produces: RecordError naming the field. An engine window processes batches
    of at least one input (an idle window is written with batch 0); one that ran (no error) completed at least one
    iteration; no window ends before it starts (a failed one is stamped at one instant: end == start)."""
    if r.iterations < 0:
        raise RecordError(f"field 'iterations' is {r.iterations}, below 0")
    if r.batch < (1 if r.kind == "run" else 0):
        raise RecordError(f"field 'batch' is {r.batch}, below {1 if r.kind == 'run' else 0} for a {r.kind} window")
    if not r.error and r.kind == "run" and r.iterations < 1:
        raise RecordError("field 'iterations' is 0 in an engine window with no error: it completed no iteration")
    if r.window_end_ns < r.window_start_ns:
        raise RecordError(f"window_end_ns {r.window_end_ns} is before window_start_ns {r.window_start_ns}")
    if not all(-(2**63) <= t < 2**63 for t in (r.window_start_ns, r.window_end_ns)):
        raise RecordError("window_start_ns/window_end_ns are beyond int64 nanoseconds")


def dumps(record: Record) -> str:
    """One record as one JSON line (no trailing newline)."""
    return json.dumps(to_dict(record), separators=(",", ":"), allow_nan=False)


def write_jsonl(stream: IO[str], records: Iterable[Record]) -> None:
    """Append records to an open text stream, one JSON line each, flushing after each one."""
    for record in records:
        stream.write(dumps(record) + "\n")
        stream.flush()


def append_jsonl(path: str | Path, records: Iterable[Record]) -> None:
    """Append records to a JSON-lines file (created if missing; a device node, FIFO or socket is refused in one
    line, a symlink written through)."""
    from .files import open_append

    with open_append(path, "run records") as stream:
        write_jsonl(stream, records)


def iter_run_records(path: str | Path) -> Iterator[RunRecord]:
    """RunRecords from a JSON-lines file; other record types in the file are skipped. Anything malformed is a
    one-line BadInput naming the file, the line and what is wrong."""
    p = Path(path)
    if not p.is_file():
        raise BadInput(f"no such run-record file: {p}: pass the file `edgebench bench --out` wrote")
    with p.open("rb") as stream:
        for lineno, raw in enumerate(stream, 1):
            if not raw.strip():
                continue
            where = f"{p}:{lineno}"
            try:
                data = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                raise BadInput(f"{where}: not UTF-8 text: is this a run-record file? (restore it or drop the line)") from None
            except (json.JSONDecodeError, RecursionError, ValueError) as exc:
                message = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc) or type(exc).__name__
                raise BadInput(f"{where}: not a JSON line ({message}): is this a run-record file?") from None
            if not isinstance(data, dict):
                raise BadInput(f"{where}: a run record is a JSON object, not {type(data).__name__}: drop the line")
            if data.get("type", "RunRecord") != "RunRecord":
                continue
            try:
                yield run_record_from_dict(data)
            except (RecordError, TypeError, ValueError) as exc:
                raise BadInput(f"{where}: bad run record: {exc}: restore the file or drop the line") from None


def read_run_records(path: str | Path) -> list[RunRecord]:
    """All RunRecords of a JSON-lines file."""
    return list(iter_run_records(path))


# The measure table's JSON form (written by host/table.py, read back by the studies on the agent side).
TABLE_FORMAT = "edgebench-table"
TABLE_VERSION = 3


def read_versioned_json(path: str | Path, *, format: str, newest: int, what: str, advice: str) -> dict[str, Any]:
    """A JSON document that says what it is and its version (`{"format": FORMAT, "version": N, ...}`, as
    table.json and study.json do), checked before it is used: one BadInput naming `path` when it cannot be read
    or is not `what` (`advice` says what to do then), or is a newer version than its reader knows (`newest`):
    then the edgebench that wrote it is newer than this one, and upgrading this one is what to do."""
    p = Path(path)

    def not_it(reason: str) -> BadInput:
        return BadInput(f"{p} is not {what} ({reason}): {advice}")

    try:
        data = json.loads(p.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise not_it(f"cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise not_it("not UTF-8 text") from None
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise not_it(f"not JSON: {exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__}") from None
    if not isinstance(data, dict) or data.get("format") != format:
        raise not_it(f"format {_short(data.get('format') if isinstance(data, dict) else type(data).__name__)}")
    version = data.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise not_it(f"version {_short(version)} is not a format version")
    if version > newest:
        raise BadInput(
            f"{p} is {what} of format version {version}, newer than this edgebench reads ({newest}): upgrade "
            "edgebench (pip install -U edgebench) to read it"
        )
    return data


def with_changes(record: Any, **changes: Any) -> Any:
    """A copy of a frozen record with some fields replaced."""
    return dataclasses.replace(record, **changes)


def latencies_ms(values_ns: Sequence[int]) -> np.ndarray:
    """Latencies in milliseconds as a float array: where a list of latencies becomes ms (bench's statistics, the
    plots). A mean or median is better taken in ns and divided once (pairing, the studies): it keeps its last bits."""
    import numpy as np

    return np.asarray(values_ns, dtype=np.float64) / 1e6


def failed_window(
    engine: str,
    backend: str,
    batch: int,
    error: str,
    *,
    clock: str,
    model: ModelFacts | None = None,
    run_id: str = "",
    repeat: int = 0,
    attempt: int = 0,
) -> RunRecord:
    """The RunRecord of a window that never ran (a load failure, a crash, a time limit): `error` says why, no
    iteration, and the window is the instant it failed on `clock` (the agent's for `bench`, the host's for a
    window `measure` lost with its agent)."""
    import time

    now = time.time_ns()
    return RunRecord(
        engine=engine, backend=backend, clock=clock, window_start_ns=now, window_end_ns=now, iterations=0,
        batch=batch, latencies_ns=(), error=error, model=model, run_id=run_id, repeat=repeat, attempt=attempt,
    )  # fmt: skip
