"""`edgebench measure`: the main job. Log the wall meter for the whole session, drive the agent through an idle
baseline and every engine's repeated windows, pair each window with the meter trace, and rank the engines by
joules and CO2 per inference.

Order of a session (docs/measure.md has the why of each step):
1. open the meter and start logging it in the background into DIR/meter.sqlite (append-only; it runs until
   the end, so every window lies inside the log);
2. listen until the meter's period is known and compute the shortest window it can measure:
   max(1 s, 10 readings x period x 1.2); refuse a shorter --duration unless --allow-short;
3. start or reach the agent, say hello, sync the clocks (NTP-style, smallest round trip);
4. an idle window (the baseline), then each engine --repeat times; every RunRecord is appended to
   DIR/runs.jsonl the moment it arrives; a window the meter invalidated (a gap, silence) is measured again up
   to --retry times;
5. after each engine: re-sync the clocks (the two syncs give the drift), pair everything measured so far, and
   rewrite DIR/table.csv/json/md, session.json and clock.json, so a crash or Ctrl-C leaves results;
6. at the end, the ranked table on stdout.
An engine that fails to load or crashes (even taking the agent down) is recorded as failed and the sweep goes
on; `--resume` keeps the engines DIR already holds enough valid windows of and measures the rest.

The parts: `MeasureConfig` (the options, checked once), `MeterSource` (the logger and what it tells about the
meter), an agent client (`edgebench.host.transport`), `Progress` (what the user sees) and `MeasureDir` (the
files). `MeasureSession` runs the loop over them, so a session runs from Python without the CLI.
"""

from __future__ import annotations

import json
import math
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import click

from edgebench.console import is_interactive, note, warn
from edgebench.errors import BadInput, DeviceError, EdgebenchError, ProtocolError
from edgebench.options import (
    DEFAULT_ENGINES_DIR,
    MAX_REPEAT,
    engine_names_option,
    engines_dir_option,
    finite,
    sensor_option,
    threads_option,
    token_option,
)
from edgebench.protocol import MAX_WARMUP_S, MAX_WINDOW_S
from edgebench.records import (
    HOST_CLOCK,
    AgentHello,
    ClockOffset,
    EngineRow,
    RecordError,
    RunRecord,
    failed_window,
    run_record_from_dict,
)
from edgebench.units import count, duration, plus_minus, signed_figure

from .carbon import GridFactor, check_pue
from .measuredir import MeasureDir, ResumeState, Session, SetupFacts, earlier_setup, metadata_conflicts
from .meters.options import (
    METER_TIMEOUT_S,
    address_option,
    baudrate_option,
    calibration_option,
    meter_access_options,
    meter_option,
    meter_timeout_option,
    protocol_option,
)
from .options import (
    DEFAULT_IDLE_S,
    DEFAULT_PUE,
    MIN_SAMPLES,
    grid_options,
    idle_option,
    meter_resolution_option,
    min_samples_option,
    pue_option,
    sort_option,
)
from .pairing import BUSY_IDLE_CPU, EngineResult, PairingResult, WindowResult, busy_idle_message

if TYPE_CHECKING:
    from .clocksync import ClockSample
    from .logger import BaseLogger, MeterOptions
    from .meters.manual import ManualLogger
    from .prometheus import MeterExporter
    from .transport import AgentClient, AgentSpec

MIN_WINDOW_FLOOR_S = 1.0  # no window shorter than this, whatever the meter's rate (edge and clock effects)
WINDOW_MARGIN = 1.2  # 20 % over the bare minimum so a late reading does not drop a window below 10 samples
DEFAULT_DURATION_S = 3.0  # the shortest default window: trtexec's 3 s, as `bench` (agent.options)
DEFAULT_REPEAT = 3
DEFAULT_RETRY = 1
DEFAULT_WARMUP_S = 1.0  # longer than trtexec's 200 ms: the wall meter also sees the warm-up settle
RUN_TIMEOUT_EXTRA_S = 120.0  # loading an engine and reading metadata, beyond warm-up + window
ADDRESS_CHECK_S = 3.0  # the logger flushes to the store once a second: wait this long for the first rows


def minimum_window_s(period_s: float, min_samples: int) -> float:
    """The shortest window a meter reading every `period_s` seconds can measure with `min_samples` readings."""
    return max(MIN_WINDOW_FLOOR_S, min_samples * period_s * WINDOW_MARGIN)


def failed_record(row: EngineRow, message: str, run_id: str, repeat: int, attempt: int = 0) -> RunRecord:
    """A RunRecord for a window that never ran (load failure, crash): host clock, no iterations, the error."""
    return failed_window(
        row.name, row.backend, row.batch, message, clock=HOST_CLOCK, model=row.model, run_id=run_id, repeat=repeat,
        attempt=attempt,
    )  # fmt: skip


# --- the configuration ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MeasureConfig:
    """Everything a session is told, checked once (the CLI's options, or a Python caller's arguments)."""

    meter: str
    out: Path
    grid: GridFactor
    protocol: str = "auto"
    address: str | None = None
    calibration: Path | None = None
    baudrate: int | None = None
    meter_timeout_s: float = METER_TIMEOUT_S
    meter_label: str = ""
    meter_options: MeterOptions | None = None  # plug credentials, --kwh, --prometheus
    agent: str = "local"
    token: str | None = None
    agent_command: str = "edgebench"
    engines_dir: Path = DEFAULT_ENGINES_DIR
    engine_names: tuple[str, ...] = ()
    sensor: str = "auto"
    agent_args: tuple[str, ...] = ()
    duration_s: float | None = None
    warmup_s: float = DEFAULT_WARMUP_S
    settle_s: float | None = None  # rest before each idle window; None: as long as the warm-up
    idle_s: float | None = None
    idle_every: int = 0
    repeat: int = DEFAULT_REPEAT
    retry: int = DEFAULT_RETRY
    threads: int | None = None
    pue: float = DEFAULT_PUE
    resolution_w: float | None = None
    min_samples: int = MIN_SAMPLES
    allow_short: bool = False
    sort: str | None = None
    resume: bool = False
    sync_rounds: int = 16

    def __post_init__(self) -> None:
        from .transport import parse_agent

        check_pue(self.pue)
        if self.repeat < 1 or self.retry < 0 or self.min_samples < 2 or self.idle_every < 0:
            raise BadInput("--repeat >= 1, --retry >= 0, --min-samples >= 2 and --idle-every >= 0, please")
        for name in ("duration_s", "warmup_s", "settle_s", "idle_s", "resolution_w", "meter_timeout_s"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise BadInput(f"{name} {value!r} is not a finite number >= 0")
        parse_agent(self.agent)  # a bad URL fails now

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> MeasureConfig:
        """From the CLI's keyword arguments (grid options resolved to one factor)."""
        from .carbon import resolve_grid
        from .meters.options import meter_options_from

        o = dict(options)
        o["meter_options"] = meter_options_from(o)
        grid = resolve_grid(
            grid=o.pop("grid"), egrid=o.pop("egrid"), country=o.pop("country"), intensity=o.pop("intensity")
        )
        o["agent"] = o.pop("agent_spec")
        o["engine_names"] = tuple(dict.fromkeys(o["engine_names"]))
        o["agent_args"] = tuple(o["agent_args"])
        return cls(grid=grid, **o)

    @property
    def agent_spec(self) -> AgentSpec:
        from .transport import parse_agent

        return parse_agent(self.agent)


# --- the meter ------------------------------------------------------------------------------------------------


class MeterSource:
    """The wall meter as a session sees it: a MeterLogger writing the directory's log in the background, the
    sensor to use, its period and the shortest window it can measure."""

    def __init__(self, logger: BaseLogger, path: Path, *, address: str | None, min_samples: int, url: str) -> None:
        self.logger, self.path, self.address, self.url = logger, path, address, url
        self.min_samples = min_samples
        self.period_s = math.nan
        self.min_window_s = math.nan
        self.exporter: MeterExporter | None = None  # the Prometheus endpoint, when one was asked for
        self.started_ns = time.time_ns()

    @classmethod
    def start(cls, config: MeasureConfig, path: Path) -> MeterSource:
        """Open and start logging; wait for the first readings; check the address; learn the period. The manual
        meter has nothing to wait for: its windows are long enough for a person by default (see `meters.manual`)."""
        from .logger import open_logger

        options = config.meter_options
        logger = open_logger(
            config.meter, config.protocol, path, options=options, calibration=config.calibration,
            baudrate=config.baudrate,
        )  # fmt: skip
        logger.start()
        source = cls(logger, path, address=config.address, min_samples=config.min_samples, url=config.meter)
        try:
            if options is not None and options.prometheus:
                from .prometheus import serve

                source.exporter = serve(logger, options.prometheus, remote=options.prometheus_remote)
                note(f"live watts for Prometheus at {source.exporter.url}")
            manual = source.manual
            if manual is not None:
                source.period_s, source.min_window_s = manual.period_s, manual.min_window_s
                note(manual.introduction())
                manual.first_counter_reading()  # the kWh counter before the first window (display: no wait)
            else:
                source._listen(config.meter_timeout_s)
        except BaseException:
            source.stop()
            raise
        return source

    @property
    def manual(self) -> ManualLogger | None:
        """The manual meter's logger (a person typing what the display shows), None for any other meter."""
        if not self.logger.manual:
            return None
        from .meters.manual import ManualLogger

        return self.logger if isinstance(self.logger, ManualLogger) else None

    def progress(self, plan: Plan) -> ProgressView:
        """The session's view: the manual meter's prompts, or the live line; either tells the Prometheus
        endpoint which window is open."""
        if self.manual is not None:
            from .meters.manual import ManualProgress

            return ManualProgress(self, plan)
        return AnnouncingProgress(self, plan)

    def announce(self, label: str | None, kind: str = "run") -> None:
        """A window opens (`label`) or closes (None): tell the Prometheus endpoint and the manual meter."""
        if self.exporter is not None:
            self.exporter.window(label, kind)
        manual = self.manual
        if manual is not None:
            manual.window(label, kind)

    @property
    def identity(self) -> str:
        return self.logger.meter

    @property
    def protocol(self) -> str:
        return self.logger.protocol

    @property
    def calibration(self) -> dict[str, Any] | None:
        """The Tweet-a-Watt calibration the logger converts with (the JSON file's content), None for the default
        or another meter."""
        from .logger import MeterLogger

        cal = self.logger.calibration if isinstance(self.logger, MeterLogger) else None
        if isinstance(cal, (str, Path)):
            return json.loads(Path(cal).read_text(encoding="utf-8"))
        return cal

    def latest_watts(self) -> float | None:
        reading = self.logger.latest()
        return None if reading is None else reading.power_w

    def check(self) -> None:
        """DeviceError when the logger thread has died (the session must not go on measuring blind)."""
        failure = self.logger.failure
        if failure is not None or not self.logger.alive:
            why = f" ({failure})" if failure is not None else ""
            raise DeviceError(f"the meter logger on {self.url} stopped{why}: no window after it can be measured")

    def _listen(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.logger.stats.readings < 5 and time.monotonic() < deadline:
            self.check()
            time.sleep(0.05)
        if self.logger.stats.readings == 0:
            raise BadInput(
                f"the meter on {self.url} sent no reading in {timeout_s:g} s: is it powered and plugged in, and is "
                "--protocol right? (`edgebench meter probe PORT` shows what it says)"
            )
        self._check_addresses()
        self.period_s = self._period(deadline)
        self.min_window_s = minimum_window_s(self.period_s, self.min_samples)
        note(
            f"meter: {self.identity}, a reading every {self.period_s:.3g} s; shortest valid window "
            f"{self.min_window_s:.3g} s ({self.min_samples} readings x period x {WINDOW_MARGIN:g}, at least "
            f"{MIN_WINDOW_FLOOR_S:g} s)"
        )

    def _period(self, deadline: float) -> float:
        """Seconds between readings of the chosen sensor: the median spacing in the stored log (the logger's own
        figure mixes every sensor a receiver hears), once 5 are in or at the deadline."""
        import numpy as np

        from .store import load_trace

        since = time.time_ns() - int(METER_TIMEOUT_S * 2e9)  # this logger's readings: a resumed log may be long
        while True:
            t = load_trace(self.path, start_ns=since, address=self.address).t_ns
            if len(t) >= 5 or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        return float(np.median(np.diff(t))) / 1e9 if len(t) >= 2 else self.logger.nominal_period_s

    def _check_addresses(self) -> None:
        """One receiver hearing several Kill-a-Watts needs --address: say so now, not after the first engine."""
        from .store import resolve_address, summarize

        deadline = time.monotonic() + ADDRESS_CHECK_S
        while True:
            try:
                summary = summarize(self.path)
            except BadInput:  # not written yet
                summary = None
            if summary is not None and summary.readings:
                break
            if time.monotonic() >= deadline:
                return  # nothing stored yet to check; load_trace checks again at the first table
            time.sleep(0.1)
        addresses = [a for a in summary.addresses if a]
        if self.address is None and len(addresses) > 1:
            raise BadInput(
                f"the meter on {self.url} hears several sensors ({', '.join(addresses)}): "
                "pass --address with the one the device is plugged into"
            )
        if self.address is not None and self.address not in addresses:
            canonical = resolve_address(self.address, addresses)
            if canonical is None:
                raise BadInput(
                    f"no sensor {self.address!r} on {self.url} (it hears {', '.join(addresses) or 'no address'}): "
                    "pass one of those to --address, or drop it"
                )
            self.address = canonical  # as stored: "1" -> "0001"

    def wait_past(self, after_ns: int) -> None:
        """Wait until the stored log holds a reading after `after_ns` (host clock): the last window's right edge
        needs one to be interpolated, and the logger flushes to disk once a second. The manual meter commits
        each reading as it is typed and interpolates nothing: nothing to wait for."""
        from .store import load_trace

        manual = self.manual
        if manual is not None:
            manual.wait_reading_after(after_ns)  # the kWh counter typed at a window's end; display: at once
            return
        period = self.period_s if math.isfinite(self.period_s) else 1.0
        deadline = time.monotonic() + max(3 * period, 1.0) + 2.0
        while time.monotonic() < deadline:
            self.check()
            try:
                if len(load_trace(self.path, start_ns=after_ns, address=self.address).t_ns):
                    return
            except BadInput:
                pass
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop logging (and the Prometheus endpoint); a failure already reported by `check` is not raised
        again. A meter with its own energy counter (a smart plug) has it compared with the integrated power."""
        if self.exporter is not None:
            self.exporter.close()
            self.exporter = None
        try:
            self.logger.stop()
        except Exception as exc:  # noqa: BLE001 - the session is ending; say it, keep what was logged
            warn(f"meter logger on {self.url}: {exc}")
        if self.manual is None:
            from .spot import counter_note

            line = counter_note(self.path, self.started_ns, time.time_ns(), self.address)
            if line:
                note(line)


# --- what the session will run --------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnginePlan:
    """One engine's windows in this session: how many, and the repeat index of the first."""

    row: EngineRow
    windows: int
    first_repeat: int = 0


@dataclass
class Plan:
    """What the session will run, fixed before the first window."""

    engines: list[EnginePlan]
    duration_s: float
    warmup_s: float
    idle_s: float
    repeat: int
    threads: int | None = None
    skipped: list[str] = field(default_factory=list)  # --resume: enough valid windows already
    idle_first: bool = True  # False on --resume when DIR already holds a valid idle baseline
    idle_every: int = 0  # another idle window after every N engines (0: only the first)
    settle_s: float = 0.0  # rest before each idle window, so the engine's power has fallen when it starts

    def idle_after(self, index: int) -> bool:
        """Whether an idle window follows the index-th engine (1-based): after every N-th engine, and after the
        last one, so that every engine window lies between two idle windows and its baseline is interpolated,
        never extrapolated."""
        if not (self.idle_s > 0 and self.idle_every):
            return False
        return index % self.idle_every == 0 or index == len(self.engines)

    @property
    def windows(self) -> int:
        idles = int(self.idle_s > 0 and self.idle_first)
        idles += sum(self.idle_after(i) for i in range(1, len(self.engines) + 1))
        return sum(e.windows for e in self.engines) + idles


def make_plan(
    config: MeasureConfig, rows: Sequence[EngineRow], meter: MeterSource, state: ResumeState | None
) -> Plan:
    """The engines to measure (all, or --engine's, less what --resume keeps) and the window lengths."""
    known = {row.name: row for row in rows}
    if config.engine_names:
        unknown = [n for n in config.engine_names if n not in known]
        if unknown:
            shown = ", ".join(list(known)[:8]) + (" ..." if len(known) > 8 else "")
            raise BadInput(f"the agent has no engine {', '.join(unknown)}: it has {shown}")
        rows = [known[n] for n in config.engine_names]
    if not rows:
        raise BadInput("the agent's manifest lists no engines: run `edgebench build-engines` on the device")
    shortest = meter.min_window_s
    duration_s = config.duration_s if config.duration_s is not None else max(shortest, DEFAULT_DURATION_S)
    idle_s = config.idle_s if config.idle_s is not None else max(shortest, DEFAULT_IDLE_S)
    for what, seconds in (("--duration", duration_s), ("--idle", idle_s)):
        if 0 < seconds < shortest:
            message = (
                f"{what} {seconds:g} s is shorter than the {shortest:.3g} s this meter needs "
                f"({config.min_samples} readings at its {meter.period_s:.3g} s period, +20 %)"
            )
            if not config.allow_short:
                raise BadInput(f"{message}: pass {what} {math.ceil(shortest * 10) / 10:g} or more, "
                               "or --allow-short to measure anyway (short windows are marked invalid)")
            warn(message + ": going on (--allow-short); windows with too few readings are marked invalid")
    engines, skipped = [], []
    for row in rows:
        missing = config.repeat if state is None else state.missing(row.name, config.repeat)
        if missing == 0:
            skipped.append(row.name)
            continue
        seen = state.engines.get(row.name) if state is not None else None
        engines.append(EnginePlan(row, missing, seen.next_repeat if seen else 0))
    return Plan(
        engines=engines,
        duration_s=duration_s,
        warmup_s=config.warmup_s,
        settle_s=config.warmup_s if config.settle_s is None else config.settle_s,
        idle_s=idle_s,
        repeat=config.repeat,
        threads=config.threads,
        skipped=skipped,
        idle_first=not (state is not None and state.valid_idle),
        idle_every=config.idle_every,
    )


# --- what the user sees ---------------------------------------------------------------------------------------


class ProgressView(Protocol):
    """What a session tells the user as it goes: `Progress` (a live line, or a line per window), the manual
    meter's prompts (`meters.manual.ManualProgress`), or a caller's own. Used as a context manager around the
    session's windows."""

    def window(self, label: str) -> None:
        """A window starts (`label` says which)."""

    def done(self, cost_s: float) -> None:
        """The window ended; it cost `cost_s` seconds in all."""

    def more(self, windows: int) -> None:
        """Windows added (retries, > 0) or dropped (a failed engine's rest, < 0)."""

    def clear(self) -> None:
        """Clear what is drawn before a note or a warning is written."""

    def __enter__(self) -> ProgressView: ...

    def __exit__(self, *exc: object) -> None: ...


class Progress:
    """Current engine, watts now and time left: a live line on a terminal, a line per window otherwise."""

    def __init__(self, watts: Callable[[], float | None], plan: Plan, live: bool | None = None) -> None:
        self.watts, self.plan = watts, plan
        self.label = ""
        self.windows_left = plan.windows
        self.window_cost_s = plan.duration_s + plan.warmup_s + 1.0  # refined from measured windows
        self.live = is_interactive() if live is None else live
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_len = 0

    def line(self) -> str:
        watts = self.watts()
        now = f"{watts:.2f} W now" if watts is not None else "no reading yet"
        return f"{self.label} · {now} · about {duration(self.windows_left * self.window_cost_s)} left"

    def window(self, label: str) -> None:
        self.label = label
        if not self.live:
            note(self.line())

    def done(self, cost_s: float) -> None:
        self.windows_left = max(0, self.windows_left - 1)
        # a running mean of what a window really costs (load, warm-up, metadata, round trips)
        self.window_cost_s = 0.7 * self.window_cost_s + 0.3 * cost_s

    def more(self, windows: int) -> None:
        """Windows added (retries) or dropped (a failed engine's rest)."""
        self.windows_left = max(0, self.windows_left + windows)

    def __enter__(self) -> Progress:
        if self.live:
            self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            if self.label:
                text = self.line()
                pad = max(0, self._last_len - len(text))
                click.echo("\r" + text + " " * pad, err=True, nl=False)
                self._last_len = len(text)

    def clear(self) -> None:
        if self.live and self._last_len:
            click.echo("\r" + " " * self._last_len + "\r", err=True, nl=False)
            self._last_len = 0

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self.clear()


class AnnouncingProgress(Progress):
    """The live view, also telling the meter source (its Prometheus endpoint) which window is open."""

    def __init__(self, source: MeterSource, plan: Plan, live: bool | None = None) -> None:
        super().__init__(source.latest_watts, plan, live)
        self.source = source

    def window(self, label: str) -> None:
        super().window(label)
        self.source.announce(label, "idle" if label.startswith("idle") else "run")

    def done(self, cost_s: float) -> None:
        super().done(cost_s)
        self.source.announce(None)


# --- the session ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Earlier:
    """What a directory to resume already holds: its runs' clocks, its session, and what is valid in it."""

    state: ResumeState
    clocks: Mapping[str, ClockOffset]
    session: Session | None


def load_earlier(out: MeasureDir) -> Earlier | None:
    """On --resume: read and check everything the directory holds (before the meter opens, so a corrupt file is
    reported at once) and pair it, to know which engines already have enough valid windows."""
    if not out.has_runs():
        return None
    records = out.records()
    saved = out.clocks()
    clocks = {r.run_id: saved for r in records} if isinstance(saved, ClockOffset) else dict(saved or {})
    session = out.session() if out.session_path.is_file() else None
    result = None
    if session is None or not out.has_meter_log():
        warn(f"resume: {out.path} holds no session.json or meter log, so no window there counts as valid")
    else:
        result = out.pair(session=session, records=records)
    return Earlier(out.resume_state(result), clocks, session)


class MeasureSession:
    """One measurement: `run()` goes through the plan, writing every record and table into `out` as it goes.

    `connect_agent()` starts or reaches the agent and returns a said-hello client (called again after the
    agent dies); `meter` is a started MeterSource; `progress` makes the Progress shown for a plan."""

    def __init__(
        self,
        config: MeasureConfig,
        out: MeasureDir,
        meter: MeterSource,
        connect_agent: Callable[[], AgentClient],
        progress: Callable[[Plan], ProgressView] | None = None,
        earlier: Earlier | None = None,
    ) -> None:
        self.config, self.out, self.meter = config, out, meter
        self.connect_agent = connect_agent
        self.make_progress = progress or (lambda plan: Progress(meter.latest_watts, plan))
        self.run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self.client: AgentClient | None = None
        self.hello: AgentHello | None = None
        self.first_sync: ClockSample | None = None
        self.clocks: dict[str, ClockOffset] = {}
        self.warned: dict[str, int] = {}  # engine -> windows with warnings after its first warned one
        self.warning_kinds: set[str] = set()  # kinds said in full once ("unstable timings"); the rest are counted
        self.warnings: list[tuple[str, str]] = []  # (engine, message) of every window, grouped at the end
        self.earlier = earlier  # what the directory held before (--resume)
        if earlier is not None:
            self.clocks.update(earlier.clocks)
        self.result: PairingResult | None = None

    # --- agent --------------------------------------------------------------------------------------------

    @property
    def agent(self) -> AgentClient:
        """The connected agent's client (`connect()` makes it)."""
        if self.client is None:
            raise ProtocolError("no agent connected: connect() first")
        return self.client

    def connect(self) -> None:
        self.client = self.connect_agent()
        try:
            self.hello = AgentHello.from_wire(self.client.hello)
        except RecordError as exc:
            raise ProtocolError(f"the agent's hello is malformed ({exc}): is it the same edgebench version?") from None
        h = self.hello
        note(
            f"agent: {self.config.agent_spec.label}, {h.hostname}, protocol {h.protocol}, edgebench {h.edgebench}, "
            f"{count(h.engines, 'engine')}, on-board power: {h.sensor}{' (an estimate)' if h.sensor_estimate else ''}"
        )

    def reconnect(self) -> None:
        """Start (or reach) the agent again after it died; the clock offset stays the device's."""
        self.close_agent()
        note(f"agent: reconnecting to {self.config.agent_spec.label}")
        self.connect()

    def close_agent(self) -> None:
        if self.client is not None:
            try:
                self.client.close()
            except EdgebenchError:
                pass

    def engine_rows(self) -> list[EngineRow]:
        rows = self.agent.call("engines").get("engines")
        if not isinstance(rows, list):
            raise ProtocolError("the agent's engines answer has no list of engines: is it the same edgebench?")
        try:
            return [EngineRow.from_wire(row) for row in rows]
        except RecordError as exc:
            raise ProtocolError(f"the agent's manifest row is malformed ({exc}): rebuild its engines") from None

    def sync(self) -> None:
        """One clock sync; the session's offset from its first and latest syncs."""
        from .clocksync import combine, sync

        sample = sync(lambda: int(self.agent.call("clock")["t_ns"]), rounds=self.config.sync_rounds)
        if self.first_sync is None:
            self.first_sync = sample
            self.clocks[self.run_id] = combine(sample)
            shift = sample.offset_ns / 1e6
            note(f"clock: agent is {-shift:+.3f} ms from host (+-{sample.uncertainty_ns / 1e6:.3f} ms)")
        else:
            self.clocks[self.run_id] = combine(self.first_sync, sample)
        clock = self.clocks[self.run_id]
        c = self.config
        shortest = min(c.duration_s or self.meter.min_window_s, c.idle_s or math.inf)
        if clock.uncertainty_ns / 1e9 > 0.001 * shortest:
            warn(
                f"clock uncertainty +-{clock.uncertainty_ns / 1e6:.3g} ms is "
                f"{clock.uncertainty_ns / 1e9 / shortest:.2%} of a {shortest:.3g} s window: use a wired link or "
                "longer windows (over 0.5 % a window is invalid)"
            )

    # --- resume -------------------------------------------------------------------------------------------

    def check_same_setup(self) -> None:
        """A resumed directory must be the same device and meter: its numbers go into one table."""
        assert self.hello is not None
        if self.earlier is None or self.earlier.session is None:
            return
        before = earlier_setup(self.earlier.session, self.out.records())
        now = SetupFacts.from_hello(self.hello, self.meter.protocol)
        mismatches = before.mismatches(now)
        if mismatches:
            raise BadInput(
                f"--resume into {self.out.path}, measured with another set-up ({'; '.join(mismatches)}): "
                "pass another --out, or drop --resume"
            )
        versions = before.version_changes(now)
        if versions:
            warn(f"resume: package versions changed since the earlier runs ({'; '.join(versions)})")

    # --- windows ------------------------------------------------------------------------------------------

    def _record(self, result: Mapping[str, Any], row: EngineRow | None = None, attempt: int = 0) -> RunRecord:
        try:
            record = run_record_from_dict(result["record"])
        except (KeyError, TypeError, RecordError) as exc:
            raise ProtocolError(f"the agent sent a malformed run record ({exc}): is it the same edgebench?") from None
        if attempt:
            record = replace(record, attempt=attempt)
        if row is not None and record.model is None:
            record = replace(record, model=row.model)
        self.out.append([record])
        if record.warnings:
            # the first window's warnings in full; later windows of the engine only counted (runs.jsonl has all)
            self.warnings += [(record.engine, message) for message in record.warnings]
            if record.engine in self.warned:
                self.warned[record.engine] += 1
            else:
                self.warned[record.engine] = 0
                for message in record.warnings:
                    kind = message.split(":", 1)[0]
                    if kind not in self.warning_kinds:  # each kind in full once; grouped with a count at the end
                        self.warning_kinds.add(kind)
                        warn(f"{record.engine}: {message}")
        return record

    def idle(self, plan: Plan, progress: ProgressView, repeat: int) -> None:
        self.meter.check()
        progress.window(f"idle baseline {plan.idle_s:g} s")
        t0 = time.monotonic()
        # the device rests first, as an engine warms up before its window: the power of the engine just run (and
        # the meter's own averaging, and readings still in flight) must not reach into the baseline
        time.sleep(plan.settle_s)
        result = self.agent.call(
            "idle", duration_s=plan.idle_s, run_id=self.run_id, repeat=repeat, timeout_s=plan.idle_s + 60
        )
        record = self._record(result)
        progress.done(time.monotonic() - t0)
        if record.cpu_busy is not None and record.cpu_busy >= BUSY_IDLE_CPU:
            # said at once: the user can stop what else is running before the engines are measured against it
            progress.clear()
            warn(
                f"idle window {repeat + 1} was not idle: CPU {record.cpu_busy * 100:.0f} % busy; its baseline is "
                "suspect: stop other work on the device (--idle-every measures it again later), or rank by gross"
            )

    def window(self, row: EngineRow, plan: Plan, repeat: int, attempt: int) -> str:
        """One window of one engine: "" when it ran, else the failure (recorded as a failed window)."""
        from edgebench import protocol as wire

        from .transport import AgentLost

        self.meter.check()
        args: dict[str, Any] = {"engine": row.name, "duration_s": plan.duration_s, "warmup_s": plan.warmup_s}
        if plan.threads:
            args["threads"] = plan.threads
        timeout = plan.warmup_s + plan.duration_s * 2 + RUN_TIMEOUT_EXTRA_S
        try:
            self._record(self.agent.call("run", run_id=self.run_id, repeat=repeat, timeout_s=timeout, **args),
                         row, attempt)
            return ""
        except wire.EngineFailed as exc:
            message = str(exc)
        except AgentLost as exc:
            message = f"the agent died running it: {exc}"
            self.out.append([failed_record(row, message, self.run_id, repeat, attempt)])
            self.reconnect()
            return message
        self.out.append([failed_record(row, message, self.run_id, repeat, attempt)])
        return message

    def engine(self, item: EnginePlan, index: int, plan: Plan, progress: ProgressView) -> None:
        """Every window of one engine, then the retries of those the meter invalidated; a failure ends it."""
        row = item.row
        repeats = list(range(item.first_repeat, item.first_repeat + item.windows))
        for n, repeat in enumerate(repeats):
            progress.window(f"[{index}/{len(plan.engines)}] {row.name} window {n + 1}/{len(repeats)}")
            t0 = time.monotonic()
            failure = self.window(row, plan, repeat, 0)
            if failure:
                progress.clear()
                warn(f"{row.name} failed: {failure}; recorded as failed, going on")
                progress.more(-(len(repeats) - n))
                return
            progress.done(time.monotonic() - t0)
        for attempt in range(1, self.config.retry + 1):
            again = self.meter_faults(row.name, repeats)
            if not again:
                return
            progress.clear()
            note(f"  {row.name}: the meter invalidated {count(len(again), 'window')}; measuring again "
                 f"(retry {attempt}/{self.config.retry})")
            progress.more(len(again))
            for repeat in again:
                progress.window(f"[{index}/{len(plan.engines)}] {row.name} window {repeat + 1} again")
                t0 = time.monotonic()
                if self.window(row, plan, repeat, attempt):
                    return
                progress.done(time.monotonic() - t0)

    def meter_faults(self, engine: str, repeats: Sequence[int]) -> list[int]:
        """Repeats of `engine` in this run whose every try so far the meter invalidated (a gap, silence)."""
        self.meter.wait_past(time.time_ns() - 1)
        mine = [r for r in self.out.records() if r.run_id == self.run_id and r.engine == engine]
        result = self.out.pair(session=self.session(), records=mine)
        by_repeat: dict[int, list[WindowResult]] = {}
        for w in result.windows:
            by_repeat.setdefault(w.repeat, []).append(w)
        return [
            repeat for repeat in repeats
            if repeat in by_repeat and all(w.meter_fault for w in by_repeat[repeat])
        ]

    # --- results ------------------------------------------------------------------------------------------

    def session(self) -> Session:
        c, h = self.config, self.hello
        return Session(
            grid=c.grid,
            meter=c.meter_label or self.meter.identity,
            resolution_w=c.resolution_w,
            pue=c.pue,
            min_samples=c.min_samples,
            clock=dict(self.clocks),
            setup=SetupFacts.from_hello(h, self.meter.protocol) if h else None,
            extra={
                "agent": c.agent_spec.label,
                "agent_hostname": h.hostname if h else "",
                "agent_sensor": h.sensor if h else "none",
                "meter_url": c.meter,
                "meter_protocol": self.meter.protocol,
                "meter_calibration": self.meter.calibration,
                "meter_address": self.meter.address or "",
                "meter_period_s": self.meter.period_s,
                "min_window_s": self.meter.min_window_s,
                "retry": c.retry,
                "runs": sorted(self.clocks),
            },
        )

    def export(self) -> PairingResult:
        """Write session.json and clock.json, pair everything in the directory, write the tables."""
        session = self.session()
        self.out.write_session(session)
        self.result = self.out.pair(session=session)
        busy = [busy_idle_message(n, w) for n, w in self.result.busy_idle_windows]
        if busy:  # what the idle windows were worth, beside what produced them
            self.out.write_session(replace(session, extra={**session.extra, "busy_idle": busy}))
        self.out.write_tables(self.result, self.config.sort)
        return self.result

    def run(self) -> PairingResult:
        """The whole session (see the module docstring); returns the final PairingResult."""
        state = self.earlier.state if self.earlier is not None else None
        self.connect()
        self.check_same_setup()
        self.sync()
        self.out.write_session(self.session())  # the clock of every window from here on, before the first one
        plan = make_plan(self.config, self.engine_rows(), self.meter, state)
        if plan.skipped:
            note(f"resume: {count(len(plan.skipped), 'engine')} already measured with enough valid windows, kept")
        if state is not None and not plan.idle_first and plan.idle_s > 0:
            note("resume: keeping the idle baseline already measured")
        redo = [e for e in plan.engines if state is not None and e.row.name in state.engines]
        if redo:
            note(f"resume: measuring again {', '.join(e.row.name for e in redo)} (fewer valid windows than --repeat)")
        idle_words = ""
        if plan.idle_s > 0:
            idle_words = f", idle baseline {plan.idle_s:g} s after {plan.settle_s:g} s of rest" + (
                f" (again after every {plan.idle_every} engines)" if plan.idle_every else ""
            )
        note(
            f"plan: {count(len(plan.engines), 'engine')} x {count(plan.repeat, 'window')} of {plan.duration_s:g} s "
            f"(warm-up {plan.warmup_s:g} s){idle_words} -> {self.out.path}"
        )
        idles = state.idle_windows if state is not None else 0
        with self.make_progress(plan) as progress:
            if plan.idle_s > 0 and plan.idle_first:
                self.idle(plan, progress, idles)
                idles += 1
            for index, item in enumerate(plan.engines, 1):
                self.engine(item, index, plan, progress)
                if plan.idle_after(index):
                    self.idle(plan, progress, idles)
                    idles += 1
                self.sync()
                self.meter.wait_past(time.time_ns() - 1)
                result = self.export()
                progress.clear()
                done = next((e for e in result.engines if e.engine == item.row.name), None)
                if done is not None:
                    note(engine_line(done))
        if not plan.engines:
            self.meter.wait_past(time.time_ns() - 1)
        return self.export()


def engine_line(e: EngineResult) -> str:
    """One engine's result as the note printed when it is done: wall J per sample (what the table ranks), per
    execution beside it, net where there is a baseline (never a negative number shown as a result)."""
    if not e.ok:
        return f"  {e.engine}: {e.status}"
    net = signed_figure(e.net_j_per_sample, e.net_j_per_sample_u, below=e.net_below_idle)
    retried = f", {count(e.retried, 'window')} measured again" if e.retried else ""
    per_exec = f" ({plus_minus(e.gross_j_per_inference, e.gross_j_per_inference_u)} J/execution of {e.batch})" if e.batch > 1 else ""
    return (
        f"  {e.engine}: {plus_minus(e.gross_j_per_sample, e.gross_j_per_sample_u)} J/sample at the wall{per_exec}"
        f"{f', net {net} J/sample' if net != '-' else ''}, {e.wall_power_w:.3g} W, {e.valid_windows}/{e.windows} "
        f"windows valid{retried}"
    )


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP (`kill`, `timeout`, systemd, an ssh drop) ended the session: handled as Ctrl-C is."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def _stop_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP raise Stopped in the main thread for the time of a session, so the agent is stopped,
    the meter log flushed and the tables written, as after Ctrl-C; a signal the caller ignores (nohup) stays
    ignored."""

    def stop(signum: int, frame: object) -> None:
        raise Stopped(signum)

    old = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            old[sig] = signal.signal(sig, stop)
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def agent_connector(config: MeasureConfig) -> Callable[[], AgentClient]:
    """A function that starts or reaches the configured agent and returns its said-hello client."""
    from .transport import connect

    spec = config.agent_spec

    def connect_agent() -> AgentClient:
        return connect(
            spec,
            engines_dir=config.engines_dir,
            sensor=config.sensor,
            token=config.token,
            remote_command=config.agent_command,
            extra_args=list(config.agent_args),
        )

    return connect_agent


def run_measurement(config: MeasureConfig) -> tuple[MeasureSession, PairingResult]:
    """Open the directory and the meter, run the session, and always stop the meter and the agent. Whatever
    happens after the first window, the tables are rewritten from everything in the directory."""
    out = MeasureDir.create(config.out, resume=config.resume)
    earlier = load_earlier(out) if config.resume else None
    meter = MeterSource.start(config, out.new_meter_path)
    session = MeasureSession(config, out, meter, agent_connector(config), progress=meter.progress, earlier=earlier)
    try:
        return session, session.run()
    except (KeyboardInterrupt, EdgebenchError):
        session.close_agent()
        meter.stop()  # flushes the readings after the last window: its right edge needs them
        _salvage(session)
        raise
    finally:
        session.close_agent()
        meter.stop()


def _salvage(session: MeasureSession) -> None:
    """After an interruption or a failure: the tables from every window finished, if there are any."""
    if session.hello is None or not session.out.has_runs():
        return
    try:
        session.export()
    except EdgebenchError as exc:
        warn(f"the table could not be rewritten ({exc}); runs.jsonl and the meter log hold every window")


@click.command()
@meter_option()
@protocol_option
@address_option
@calibration_option
@baudrate_option
@meter_timeout_option
@click.option("--meter-label", default="", help="Name the meter in the results (default: what it reports).")
@meter_access_options
@click.option("--agent", "agent_spec", default="local", show_default=True,
              help="local, ssh://user@host[:port][/path/to/engines] or tcp://host:port.")
@token_option("the one `edgebench agent --listen` was given")
@click.option("--agent-command", default="edgebench", show_default=True,
              help="How to run edgebench on an ssh agent (e.g. ~/venv/bin/edgebench).")
@engines_dir_option("a local agent's (an ssh agent's goes in the URL)")
@engine_names_option
@click.option("--duration", "duration_s", type=finite(min=0, max=MAX_WINDOW_S, min_open=True),
              help=f"Seconds per measured window (default: the meter's minimum, at least {DEFAULT_DURATION_S:g} s).")
@click.option("--settle", "settle_s", type=finite(min=0, max=MAX_WARMUP_S), metavar="S",
              help="Seconds the device rests before each idle window (default: the warm-up's).")
@click.option("--warmup", "warmup_s", type=finite(min=0, max=MAX_WARMUP_S), default=DEFAULT_WARMUP_S, show_default=True,
              help="Warm-up seconds before each window (not measured).")
@idle_option()
@click.option("--idle-every", type=click.IntRange(min=0, max=MAX_REPEAT), default=0, show_default=True, metavar="N",
              help="Measure the idle baseline again after every N engines and after the last (drift, warming up): each "
                   "window's baseline is interpolated in time between the idle windows around it; 0: only first.")
@click.option("--repeat", type=click.IntRange(min=1, max=MAX_REPEAT), default=DEFAULT_REPEAT, show_default=True,
              help="Windows per engine.")
@click.option("--retry", type=click.IntRange(min=0, max=10), default=DEFAULT_RETRY, show_default=True,
              help="Measure a window again, up to N times, when a meter gap or silence invalidated it.")
@threads_option
@sensor_option(extra="on a local or ssh agent (a TCP agent samples its own --sensor)")
@grid_options
@pue_option()
@meter_resolution_option
@min_samples_option
@click.option("--allow-short", is_flag=True, help="Measure windows shorter than the meter's minimum anyway.")
@sort_option
@click.option("--out", type=click.Path(path_type=Path), default=Path("measure-out"), show_default=True,
              help="Directory for runs.jsonl, meter.sqlite, session.json, clock.json and table.csv/json/md.")
@click.option("--resume", is_flag=True,
              help="Continue a measurement in --out: keep engines with --repeat valid windows, measure the rest.")
@click.option("--sync-rounds", type=click.IntRange(min=1, max=1000), default=16, hidden=True)
@click.option("--agent-arg", "agent_args", multiple=True, hidden=True, help="Extra argument for a local agent.")
def measure(**options: Any) -> None:
    """Measure every engine's wall energy through the agent; rank them by wall joules per sample (image).

    \b
    edgebench measure --meter /dev/ttyUSB0 --engines engines-out
    edgebench measure --meter /dev/ttyUSB0 --agent ssh://nvidia@jetson/home/nvidia/engines-out --grid RFCW
    edgebench measure --meter socket://bridge:2000 --agent tcp://jetson:8765 --token "$TOKEN" --resume
    """
    from .table import render

    config = MeasureConfig.from_options(options)
    spec = config.agent_spec
    if spec.kind == "local" and not (Path(config.engines_dir) / "manifest.json").is_file():
        raise BadInput(
            f"no engines in {config.engines_dir}: run `edgebench build-engines --out {config.engines_dir}` first"
        )
    if spec.kind == "tcp" and config.sensor != "auto":
        warn("--sensor applies to agents this command starts (local, ssh): a TCP agent samples its own --sensor")
    try:
        with _stop_signals():
            session, result = run_measurement(config)
    except KeyboardInterrupt as exc:
        signum = exc.signum if isinstance(exc, Stopped) else signal.SIGINT
        note(f"interrupted ({signal.Signals(signum).name}): every finished window is in {config.out}; "
             "`edgebench measure ... --resume` continues it")
        raise SystemExit(128 + signum) from None
    except DeviceError as exc:
        raise DeviceError(f"{exc}; every window before it is in {config.out} (`--resume` continues)") from None
    if result.idle is None:
        warn("no valid idle window: net figures need an idle baseline (--idle S)")
    from .table import result_warnings

    for message in result_warnings(result):
        if not message.startswith("idle window"):  # said live, when the idle window was measured
            warn(message)
    if len(session.warnings) > len(session.warning_kinds):  # the first of each kind was said live
        from .table import grouped_warnings

        warn(f"the agent's warnings, by kind (every one is in {config.out}/runs.jsonl):")
        for line in grouped_warnings(session.warnings):
            warn(f"  {line}")
    bad = [w for w in result.windows if not w.valid]
    if bad:
        warn(f"{len(bad)} of {len(result.windows)} windows are invalid or failed; the status column says why")
    errors, versions = metadata_conflicts(session.out.records())
    for message in errors + versions:
        warn(f"{message}: the table mixes measurements of different set-ups")
    click.echo("\n".join(render(result, "table", config.sort)))
    note(f"results: {config.out}/table.csv, table.json, table.md (re-render with `edgebench report {config.out}`)")
