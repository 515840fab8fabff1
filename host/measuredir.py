"""The measure directory: the one module that knows its layout, reads and writes its files, and says what in it
is valid. `edgebench measure` writes it, `report` and `pair --out` read it; nothing else spells a file name.

Layout of DIR:
- runs.jsonl: RunRecords (agent clock unless their `clock` says host), appended the moment each window ends;
- meter.sqlite (or meter.csv): the meter log `edgebench.host.store.load_trace` reads;
- clock.json: {run_id: ClockOffset} (older directories: one ClockOffset for every run);
- session.json: what produced the numbers (grid factor, meter, PUE, thresholds, agent and meter identity) and
  the set-up every resumed run must share (`setup`: SetupFacts);
- table.csv / table.json / table.md: the ranked table, rewritten after every engine.
Every reader turns a malformed file into one BadInput line naming the file (and the line where there is one).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, TypeGuard

from edgebench.errors import BadInput
from edgebench.files import write_atomic
from edgebench.records import (
    ZERO_OFFSET,
    AgentHello,
    ClockOffset,
    MetadataValue,
    MeterTrace,
    RunRecord,
    read_run_records,
    to_dict,
)

from .carbon import GridFactor, egrid_factor
from .pairing import MIN_SAMPLES, IdleBaseline, PairingResult, pair

RUNS_FILE = "runs.jsonl"
METER_FILES = ("meter.sqlite", "meter.csv")  # what measure writes first; a CSV log is accepted too
SESSION_FILE = "session.json"
CLOCK_FILE = "clock.json"
SESSION_VERSION = 1
PLOT_MARGIN_S = 30.0  # the power plot shows this much of the log before the first window and after the last

VERSION_PREFIX = "version."  # device metadata `version.<package>`: the agent's package versions


@dataclass(frozen=True)
class SetupFacts:
    """The set-up a measurement's numbers come from. The facts in `MUST_AGREE` must be equal for runs to share
    one table (another agent host, meter protocol, board, CPU, architecture or Jetson power mode makes another
    measurement): `measure --resume` refuses a mismatch, `report`, `pair` and `measure` warn about runs that
    differ. Package versions only warn (pyperf's check, for energy). "" is a fact not known, never compared.

    Built from the agent's hello (`from_hello`) or a RunRecord's device metadata (`from_device`, `per_run`),
    written into session.json under `setup`, read back with `from_dict` (`MeasureDir.session`)."""

    agent_host: str = ""
    meter_protocol: str = ""
    board_model: str = ""
    cpu_model: str = ""
    arch: str = ""
    power_mode: str = ""  # Jetson nvpmodel mode (MAXN, 15W, ...)
    versions: Mapping[str, str] = field(default_factory=dict)  # package -> version, on the device

    # (field, label in messages, device metadata key it comes from)
    MUST_AGREE: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("agent_host", "agent host", ""),
        ("meter_protocol", "meter protocol", ""),
        ("board_model", "board.model", "board.model"),
        ("cpu_model", "cpu.model", "cpu.model"),
        ("arch", "os.arch", "os.arch"),
        ("power_mode", "jetson.nvpmodel", "jetson.nvpmodel"),
    )

    @classmethod
    def from_device(
        cls, device: Mapping[str, MetadataValue], *, agent_host: str = "", meter_protocol: str = ""
    ) -> SetupFacts:
        """From a device's metadata (`collect_metadata`: a hello's or a RunRecord's), with the host-side facts."""

        def text(key: str) -> str:
            value = device.get(key)
            return "" if value is None else str(value)

        facts = {name: text(key) for name, _, key in cls.MUST_AGREE if key}
        versions = {k[len(VERSION_PREFIX):]: text(k) for k in device if k.startswith(VERSION_PREFIX) and text(k)}
        return cls(agent_host=agent_host, meter_protocol=meter_protocol, versions=versions, **facts)

    @classmethod
    def from_hello(cls, hello: AgentHello, meter_protocol: str) -> SetupFacts:
        """The set-up of a session: the agent that said `hello`, logged with a meter speaking `meter_protocol`."""
        return cls.from_device(hello.device, agent_host=hello.hostname, meter_protocol=meter_protocol)

    @classmethod
    def per_run(cls, records: Sequence[RunRecord]) -> dict[str, SetupFacts]:
        """Per run_id, the device facts of its first record that carries device metadata."""
        seen: dict[str, SetupFacts] = {}
        for r in records:
            if r.run_id not in seen and r.device:
                seen[r.run_id] = cls.from_device(r.device)
        return seen

    def facts(self) -> dict[str, str]:
        """The facts that must agree, by label ("agent host", "board.model", ...), in MUST_AGREE's order."""
        return {label: getattr(self, name) for name, label, _ in self.MUST_AGREE}

    def version_facts(self) -> dict[str, str]:
        """The package versions by label ("version.onnxruntime"), sorted."""
        return {f"{VERSION_PREFIX}{k}": v for k, v in sorted(self.versions.items())}

    def mismatches(self, now: SetupFacts) -> list[str]:
        """Facts that must agree and differ from this (earlier) set-up to `now`: "board.model A -> B"."""
        return _changes(self.facts(), now.facts())

    def version_changes(self, now: SetupFacts) -> list[str]:
        """Package versions that changed from this (earlier) set-up to `now`: "version.onnxruntime 1.17 -> 1.18"."""
        return _changes(self.version_facts(), now.version_facts())

    def to_dict(self) -> dict[str, Any]:
        return {
            **{name: getattr(self, name) for name, _, _ in self.MUST_AGREE},
            "versions": dict(sorted(self.versions.items())),
        }

    @classmethod
    def from_dict(cls, data: object, where: str) -> SetupFacts:
        """Inverse of `to_dict`, every field checked (BadInput naming `where`)."""
        if not isinstance(data, Mapping):
            raise BadInput(f"{where}: setup is not an object: restore the file or measure again")
        facts: dict[str, str] = {}
        for name, _, _ in cls.MUST_AGREE:
            value = data.get(name, "")
            if not isinstance(value, str):
                raise BadInput(f"{where}: setup {name} is {value!r}, not text: restore the file or measure again")
            facts[name] = value
        versions = data.get("versions", {})
        if not isinstance(versions, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in versions.items()
        ):
            raise BadInput(f"{where}: setup versions is not an object of package: version text: restore the file")
        return cls(versions=dict(versions), **facts)


def _changes(before: Mapping[str, str], now: Mapping[str, str]) -> list[str]:
    return [f"{label} {before[label]} -> {now[label]}"
            for label in before if before[label] and now.get(label) and before[label] != now[label]]  # fmt: skip


def earlier_setup(session: Session, records: Sequence[RunRecord]) -> SetupFacts:
    """The set-up a directory was measured with: session.json's `setup`, or for a directory written before it
    existed, the agent host and meter protocol its `extra` kept and the device facts of its last record."""
    if session.setup is not None:
        return session.setup
    device = next((r.device for r in reversed(records) if r.device), {})
    return SetupFacts.from_device(
        device,
        agent_host=str(session.extra.get("agent_hostname") or ""),
        meter_protocol=str(session.extra.get("meter_protocol") or ""),
    )


@dataclass(frozen=True)
class Session:
    """What `edgebench measure` records beside its results (DIR/session.json), read back by `report`."""

    grid: GridFactor
    meter: str = ""
    resolution_w: float | None = None
    pue: float = 1.0
    min_samples: int = MIN_SAMPLES
    clock: ClockOffset | Mapping[str, ClockOffset] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    version: int = SESSION_VERSION
    setup: SetupFacts | None = None  # what resumed runs must share (None: written before it was kept)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "grid": self.grid.to_dict(),
            "meter": self.meter,
            "resolution_w": self.resolution_w,
            "pue": self.pue,
            "min_samples": self.min_samples,
            **({"setup": self.setup.to_dict()} if self.setup is not None else {}),
            **({"extra": dict(self.extra)} if self.extra else {}),
        }


def clock_to_dict(clock: ClockOffset | Mapping[str, ClockOffset]) -> dict[str, Any]:
    """A clock offset (or one per run_id) as JSON-able data for clock.json."""
    if isinstance(clock, ClockOffset):
        return to_dict(clock)
    return {run_id: to_dict(c) for run_id, c in clock.items()}


def _number(data: Mapping[str, Any], key: str, kind: type, default: Any, where: str) -> Any:
    value = data.get(key, default)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        ok = ok and float(value).is_integer()
    if not ok or not math.isfinite(float(value)):
        raise BadInput(f"{where}: {key} is {value!r}, not a finite number: restore the file or measure again")
    return kind(value)


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def clock_from_dict(data: Any, where: str = CLOCK_FILE) -> ClockOffset | dict[str, ClockOffset]:
    """Inverse of `clock_to_dict`, every field checked (BadInput naming `where`)."""

    def one(d: Any) -> ClockOffset:
        if not isinstance(d, Mapping):
            raise BadInput(f"{where}: a clock offset is an object, not {type(d).__name__}: restore the file")
        if "offset_ns" not in d:
            raise BadInput(f"{where}: a clock offset has no offset_ns: restore the file")
        return ClockOffset(
            offset_ns=_number(d, "offset_ns", int, None, where),
            reference_agent_ns=_number(d, "reference_agent_ns", int, 0, where),
            drift_ppm=_number(d, "drift_ppm", float, 0.0, where),
            uncertainty_ns=abs(_number(d, "uncertainty_ns", int, 0, where)),
            method=str(d.get("method", "none")),
        )

    if not isinstance(data, Mapping):
        raise BadInput(f"{where}: not a JSON object: restore the file or measure again")
    if "offset_ns" in data:
        return one(data)
    return {str(k): one(v) for k, v in data.items()}


def _grid_from_dict(data: Any, where: str) -> GridFactor:
    if not isinstance(data, Mapping):
        raise BadInput(f"{where}: grid is not an object: restore the file or pass --grid")
    lb = _number(data, "lb_co2_per_mwh", float, None, where)
    if lb < 0:
        raise BadInput(f"{where}: a negative grid factor ({lb}): restore the file or pass --grid")
    return GridFactor(
        lb_co2_per_mwh=lb,
        source=str(data.get("source", "")),
        edition=str(data.get("edition", "")),
        region=str(data.get("region", "")),
        kind=str(data.get("kind", "average")),
    )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise BadInput(f"{path}: not UTF-8 text: restore the file or measure again") from None
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        message = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        raise BadInput(f"{path}: not JSON ({message}): restore the file or measure again") from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot be read ({exc.strerror}): check its permissions") from None


def _atomic_write(path: Path, text: str) -> None:
    write_atomic(path, text)  # edgebench/files.py: refuses device nodes and FIFOs, follows symlinks


def check_writable_dir(path: Path, option: str = "--out") -> None:
    """BadInput unless `path` is, or can be made, a directory we can write into."""
    for parent in [path, *path.parents]:
        if parent.exists():
            if not parent.is_dir():
                what = "is a file" if parent == path else f"lies under the file {parent}"
                raise BadInput(f"{option} {path} {what}: pass a directory path")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise BadInput(f"{option} {path}: {parent} is not writable: pass a directory you can write to")
            return


def make_writable_dir(path: Path, option: str = "--out") -> None:
    """Create `path` if needed and check a file can be written in it: BadInput otherwise (a path under a file,
    /proc, a read-only mount), before any work is done."""
    check_writable_dir(path, option)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".edgebench-write-probe"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise BadInput(f"{option} {path}: cannot write there ({exc.strerror}): pass a directory you can write to") from None


@dataclass(frozen=True)
class EngineProgress:
    """What a directory already holds of one engine: windows that ran, and those the meter made valid."""

    windows: int
    valid: int
    next_repeat: int  # the repeat index a new window of this engine gets


@dataclass(frozen=True)
class ResumeState:
    """What `measure --resume` keeps: engines with enough valid windows are done, the rest measured again."""

    engines: Mapping[str, EngineProgress]
    valid_idle: bool
    idle_windows: int

    def missing(self, engine: str, repeat: int) -> int:
        """Windows still to measure for `engine` so that it has `repeat` valid ones."""
        done = self.engines.get(engine)
        return repeat if done is None else max(0, repeat - done.valid)


class MeasureDir:
    """One measure directory (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    runs = property(lambda self: self.path / RUNS_FILE)
    session_path = property(lambda self: self.path / SESSION_FILE)
    clock_path = property(lambda self: self.path / CLOCK_FILE)
    new_meter_path = property(lambda self: self.path / METER_FILES[0])

    # --- opening ------------------------------------------------------------------------------------------

    @classmethod
    def create(cls, path: str | Path, *, resume: bool) -> MeasureDir:
        """A directory to measure into: new, or (with `resume`) one holding a measurement to continue."""
        d = cls(path)
        check_writable_dir(d.path)
        if d.has_runs() and not resume:
            raise BadInput(
                f"{d.path} already holds a measurement: pass --resume to continue it, or another --out"
            )
        make_writable_dir(d.path)
        return d

    @classmethod
    def open(cls, path: str | Path) -> MeasureDir:
        """An existing measure directory to read (report)."""
        d = cls(path)
        if not d.path.is_dir():
            raise BadInput(f"no such directory: {d.path}: pass the directory `edgebench measure --out` wrote")
        if not d.runs.is_file():
            raise BadInput(f"{d.path} has no {RUNS_FILE}: pass the directory `edgebench measure --out` wrote")
        return d

    def has_runs(self) -> bool:
        return self.runs.is_file() and self.runs.stat().st_size > 0

    # --- reading ------------------------------------------------------------------------------------------

    def records(self) -> list[RunRecord]:
        return read_run_records(self.runs) if self.runs.is_file() else []

    def append(self, records: Sequence[RunRecord]) -> None:
        from edgebench.records import append_jsonl

        append_jsonl(self.runs, records)

    def has_meter_log(self) -> bool:
        return any((self.path / name).is_file() for name in METER_FILES)

    def meter_log(self) -> Path:
        for name in METER_FILES:
            if (self.path / name).is_file():
                return self.path / name
        raise BadInput(
            f"{self.path} has no {' or '.join(METER_FILES)}: pass the directory `edgebench measure` wrote"
        )

    def clocks(self) -> ClockOffset | dict[str, ClockOffset] | None:
        if not self.clock_path.is_file():
            return None
        return clock_from_dict(_read_json(self.clock_path), str(self.clock_path))

    def session(self) -> Session:
        """DIR/session.json (and DIR/clock.json if present), every field checked."""
        path = self.session_path
        if not path.is_file():
            raise BadInput(f"{self.path} has no {SESSION_FILE}: pass the directory `edgebench measure --out` wrote")
        data = _read_json(path)
        where = str(path)
        if not isinstance(data, Mapping):
            raise BadInput(f"{where}: not a JSON object: restore the file or measure again")
        version = data.get("version", 1)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise BadInput(f"{where}: version is {version!r}, not a format version: restore the file")
        if version > SESSION_VERSION:
            raise BadInput(f"{where} is format version {version}, newer than this edgebench reads: upgrade edgebench")
        resolution = data.get("resolution_w")
        if resolution is not None:
            resolution = _number(data, "resolution_w", float, None, where)
            if resolution < 0:
                raise BadInput(f"{where}: resolution_w {resolution} is negative: restore the file")
        pue = _number(data, "pue", float, 1.0, where)
        min_samples = _number(data, "min_samples", int, MIN_SAMPLES, where)
        if pue < 1.0 or min_samples < 2:
            raise BadInput(f"{where}: pue below 1 or min_samples below 2: restore the file or measure again")
        extra = data.get("extra", {})
        if not isinstance(extra, Mapping):
            raise BadInput(f"{where}: extra is not an object: restore the file")
        meter = data.get("meter", "")
        setup = SetupFacts.from_dict(data["setup"], where) if "setup" in data else None
        return Session(
            grid=_grid_from_dict(data["grid"], where) if "grid" in data else egrid_factor(),
            meter=meter if isinstance(meter, str) else str(meter),
            resolution_w=resolution,
            pue=pue,
            min_samples=min_samples,
            clock=self.clocks(),
            extra=extra,
            version=version,
            setup=setup,
        )

    def trace(
        self,
        *,
        address: str | None = None,
        resolution_w: float | None = None,
        meter: str = "",
        spans: Sequence[tuple[int, int]] | None = None,
    ) -> MeterTrace:
        """The meter log (one sensor's readings when `address` is given), with the resolution and name given;
        only what windows `spans` (host ns) need when given (`store.load_windows`), else all of it."""
        from .store import load_trace, load_windows

        log = self.meter_log()
        trace = load_trace(log, address=address) if spans is None else load_windows(log, spans, address=address)
        if resolution_w is not None:
            trace = replace(trace, resolution_w=resolution_w)
        if meter:
            trace = replace(trace, meter=meter)
        return trace

    def session_trace(self, session: Session, spans: Sequence[tuple[int, int]] | None = None) -> MeterTrace:
        """The meter log as the session recorded it: its sensor address, resolution and meter name (only what
        windows `spans` need, when given)."""
        return self.trace(
            address=session.extra.get("meter_address") or None,
            resolution_w=session.resolution_w,
            meter=session.meter,
            spans=spans,
        )

    def plot_trace(self, session: Session, records: Sequence[RunRecord]) -> MeterTrace:
        """The meter log over the session's windows, first to last, with PLOT_MARGIN_S either side: what the power
        plot draws (a log kept for weeks is not read whole for one session's page)."""
        clock = session.clock if session.clock is not None else ZERO_OFFSET
        spans = host_spans(records, clock)
        if not spans:
            return self.session_trace(session)
        margin = int(PLOT_MARGIN_S * 1e9)
        return self.session_trace(
            session, spans=[(min(a for a, _ in spans) - margin, max(b for _, b in spans) + margin)]
        )

    # --- writing ------------------------------------------------------------------------------------------

    def write_session(self, session: Session) -> None:
        """DIR/session.json (and DIR/clock.json when the session has a clock), each atomically."""
        self.path.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.session_path, json.dumps(session.to_dict(), indent=2) + "\n")
        if session.clock is not None:
            _atomic_write(self.clock_path, json.dumps(clock_to_dict(session.clock), indent=2) + "\n")

    def write_tables(self, result: PairingResult, sort: str | None = None) -> list[Path]:
        from .table import write_exports

        return write_exports(result, self.path, sort)

    # --- what is there ------------------------------------------------------------------------------------

    def pair(
        self,
        *,
        session: Session | None = None,
        records: Sequence[RunRecord] | None = None,
        grid: GridFactor | None = None,
        pue: float | None = None,
        clock: ClockOffset | Mapping[str, ClockOffset] | None = None,
    ) -> PairingResult:
        """Pair everything the directory holds with its meter log, as the session recorded it (overrides:
        another grid factor or PUE, a clock when the directory has none yet)."""
        session = session or self.session()
        records = self.records() if records is None else records
        clock = session.clock if session.clock is not None else clock
        if clock is None:
            clock = ZERO_OFFSET
        trace = self.session_trace(session, spans=host_spans(records, clock))
        given = session.extra.get("idle_power_w")  # `edgebench run --idle-power W`: the baseline it was given
        idle = IdleBaseline(float(given), 0.0, 0.0, 0, source="given") if _is_number(given) else None
        return pair(
            records,
            trace,
            clock,
            grid=grid or session.grid,
            idle=idle,
            min_samples=session.min_samples,
            pue=session.pue if pue is None else pue,
        )

    def resume_state(self, result: PairingResult | None) -> ResumeState:
        """Per engine, windows run and windows valid (from `result`, the pairing of what is here); the idle
        baseline's state. Without a pairing (no meter log yet) nothing counts as valid."""
        records = self.records()
        valid: dict[str, int] = {}
        valid_idle = False
        if result is not None:
            for e in result.engines:
                valid[e.engine] = e.valid_windows
            valid_idle = result.idle is not None
        engines: dict[str, EngineProgress] = {}
        for r in records:
            if r.kind != "run":
                continue
            seen = engines.get(r.engine)
            engines[r.engine] = EngineProgress(
                windows=(seen.windows if seen else 0) + 1,
                valid=valid.get(r.engine, 0),
                next_repeat=max(seen.next_repeat if seen else 0, r.repeat + 1),
            )
        return ResumeState(
            engines=engines,
            valid_idle=valid_idle,
            idle_windows=sum(1 for r in records if r.kind == "idle"),
        )


def host_spans(
    records: Iterable[RunRecord], clock: ClockOffset | Mapping[str, ClockOffset]
) -> list[tuple[int, int]]:
    """Each window pairing will integrate, on the host clock: what to ask the meter log for. Windows that never
    ran (pairing looks at no reading for them) have none; a window with no clock offset raises the BadInput that
    pairing would."""
    from .pairing import _to_host  # the one mapping of window edges to the host clock

    spans = []
    for r in records:
        if r.failed or r.window_end_ns <= r.window_start_ns:
            continue
        start, end, _clock_u_s = _to_host(r, clock)
        spans.append((start, end))
    return spans


def metadata_conflicts(records: Sequence[RunRecord]) -> tuple[list[str], list[str]]:
    """(errors, warnings): device facts that must agree (SetupFacts) and differ between the runs in `records`
    (another board, CPU or power mode: the runs do not belong in one table), and package versions that differ
    (worth knowing). Each "board.model differs between runs (A, B)", sorted by fact."""
    per_run = SetupFacts.per_run(records)

    def differing(labelled: list[dict[str, str]]) -> list[str]:
        out = []
        for label in sorted({k for facts in labelled for k in facts}):
            distinct = sorted({facts[label] for facts in labelled if facts.get(label)})
            if len(distinct) > 1:
                out.append(f"{label} differs between runs ({', '.join(distinct)})")
        return out

    return (
        differing([s.facts() for s in per_run.values()]),
        differing([s.version_facts() for s in per_run.values()]),
    )
