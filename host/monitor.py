"""Measure a block of Python code at the wall: `with Monitor(meter=...) as m:` or named begin/end windows.

The meter is logged in the background (the same MeterLogger and store as `edgebench measure`), an idle baseline
is measured first (or given), and each window is paired with the log by `edgebench.host.pairing.pair`, so a
training loop measured from inside gets the same figures as an engine: gross and net joules with their
uncertainty, mean power, and CO2 under a named grid factor. A window's result is the pairing's own
`WindowResult`; the Monitor's `pairing` holds every window so far with the idle baseline, grid factor and PUE.

    from edgebench import Monitor

    with Monitor(meter="/dev/ttyUSB0", idle_s=10) as m:
        train(epochs=1)
    print("\n".join(m.lines(m.result)))

    mon = Monitor(meter="/dev/ttyUSB0").start()
    mon.begin_window("epoch1"); train(epochs=1); epoch = mon.end_window("epoch1", iterations=1000)
    mon.stop()

The folder (`out`) is a measure directory (host/measuredir.py: meter.sqlite, runs.jsonl, session.json), so
`edgebench report OUT` (and `--html`) re-renders it. `edgebench run -- CMD` is this around a subprocess.
"""

from __future__ import annotations

import math
import tempfile
import time
import uuid
from contextlib import nullcontext
from dataclasses import fields
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgebench.errors import BadInput
from edgebench.records import HOST_CLOCK, RunRecord
from edgebench.units import num, plus_minus, signed_figure

from .carbon import GridFactor, check_pue, country_iso3, egrid_factor, j_to_kwh, kg_to_lb
from .measuredir import MeasureDir, Session
from .meters.options import METER_TIMEOUT_S
from .options import DEFAULT_IDLE_S, DEFAULT_PUE, MIN_SAMPLES
from .pairing import SIGNIFICANCE, IdleBaseline, PairingResult, WindowResult

if TYPE_CHECKING:
    from types import TracebackType

    from .codecarbon_bridge import CodeCarbonEstimate, CodeCarbonWindow
    from .logger import MeterOptions
    from .measure import MeterSource

RESULT_FORMAT = 2  # of `Monitor.to_dict` (run's result.json); 1: the former Measurement's flat fields


def _number(name: str, value: Any, *, minimum: float, integer: bool = False, optional: bool = False) -> Any:
    """`value` checked as the CLI checks its options: a real number (not a bool or a string), finite, >= minimum,
    whole when `integer`; None passes when `optional`. BadInput naming the argument otherwise."""
    if value is None and optional:
        return None
    kind = "a whole number" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadInput(f"{name}={value!r} must be {kind}, not {type(value).__name__}")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int too large for a float
        finite = False
    if not finite or value < minimum:
        raise BadInput(f"{name}={str(value)[:40]} must be a finite {kind} >= {minimum:g}")
    if integer and isinstance(value, float) and not value.is_integer():
        raise BadInput(f"{name}={value!r} must be a whole number")
    return int(value) if integer else float(value)


def _name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise BadInput(f"a window name must be a non-empty string, not {name!r}")
    return name


def below_idle(window: WindowResult) -> bool:
    """Whether the window's net energy is below zero beyond its uncertainty (never a result: a warning)."""
    return math.isfinite(window.net_energy_j) and window.net_energy_j < -SIGNIFICANCE * (
        window.net_energy_u_j if math.isfinite(window.net_energy_u_j) else 0.0
    )


class Monitor:
    """A wall meter watching this process's machine: an idle baseline, then named measurement windows.

    `meter` is a port URL (/dev/ttyUSB0, a pty, socket://host:port). `idle_s` seconds of idle are measured at
    `start()` (None: the meter's shortest valid window, at least 10 s; 0: none) unless `idle_power_w` gives the
    baseline. `out` is the measure directory to write (meter.sqlite, runs.jsonl, session.json); None uses a
    temporary folder, removed at `stop()`. `codecarbon=True` also runs CodeCarbon's offline tracker over each
    window (needs `edgebench[codecarbon]`). `progress=True` shows the idle baseline's progress on stderr.
    Arguments are checked as the CLI checks its options: a bad one is a BadInput naming it.
    """

    def __init__(
        self,
        meter: str,
        *,
        protocol: str = "auto",
        address: str | None = None,
        out: str | Path | None = None,
        idle_s: float | None = None,
        idle_power_w: float | None = None,
        grid: GridFactor | None = None,
        pue: float = DEFAULT_PUE,
        min_samples: int = MIN_SAMPLES,
        meter_timeout_s: float = METER_TIMEOUT_S,
        resolution_w: float | None = None,
        codecarbon: bool = False,
        codecarbon_country: str | None = None,
        progress: bool = False,
        meter_options: MeterOptions | None = None,
    ) -> None:
        if not isinstance(meter, (str, Path)) or not str(meter):
            raise BadInput(f"meter={meter!r} must be a port: /dev/ttyUSB0, a pty, socket://HOST:PORT")
        if grid is not None and not isinstance(grid, GridFactor):
            raise BadInput(f"grid={grid!r} must be a GridFactor (edgebench.host.carbon.resolve_grid makes one)")
        check_pue(_number("pue", pue, minimum=0))
        if _number("min_samples", min_samples, minimum=0, integer=True) < 2:
            raise BadInput(f"min_samples {min_samples} is too small: the trapezoid rule needs at least 2 readings")
        self.meter_url = str(meter)
        self.protocol = protocol
        self.address = address
        self.out = Path(out) if out is not None else None
        self.idle_s = _number("idle_s", idle_s, minimum=0, optional=True)
        self.idle_power_w = _number("idle_power_w", idle_power_w, minimum=0, optional=True)
        self.grid = grid or egrid_factor()
        self.pue = float(pue)
        self.min_samples = int(min_samples)
        self.meter_timeout_s = _number("meter_timeout_s", meter_timeout_s, minimum=0)
        if self.meter_timeout_s <= 0:
            raise BadInput(f"meter_timeout_s={meter_timeout_s!r} must be > 0")
        self.resolution_w = _number("resolution_w", resolution_w, minimum=0, optional=True)
        self.codecarbon = bool(codecarbon)
        self.codecarbon_country = codecarbon_country
        self.progress = bool(progress)
        self.meter_options = meter_options  # edgebench.host.logger.MeterOptions (plug password, --kwh, Prometheus)
        self.run_id = uuid.uuid4().hex[:12]
        self.windows: list[WindowResult] = []
        self.result: WindowResult | None = None  # the `with` block's window
        self.pairing: PairingResult | None = None  # every window so far, paired with the idle baseline
        self.extras: dict[int, dict[str, CodeCarbonEstimate]] = {}  # per window (its repeat index): CodeCarbon's
        self._source: MeterSource | None = None
        self._dir: MeasureDir | None = None
        self._session: Session | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._records: list[RunRecord] = []
        self._open: dict[str, tuple[int, CodeCarbonWindow | None]] = {}

    # --- lifecycle --------------------------------------------------------------------------------------------

    @property
    def log_path(self) -> Path:
        assert self.out is not None
        return MeasureDir(self.out).new_meter_path

    @property
    def runs_path(self) -> Path:
        assert self.out is not None
        return MeasureDir(self.out).runs

    @property
    def idle(self) -> IdleBaseline | None:
        """The idle baseline the windows are paired with (given, or from the idle window), None without one."""
        if self.pairing is not None:
            return self.pairing.idle
        if self.idle_power_w is not None:
            return IdleBaseline(self.idle_power_w, 0.0, 0.0, 0, source="given")
        return None

    def start(self) -> Monitor:
        """Start logging the meter and measure the idle baseline (this process should be idle meanwhile)."""
        from .measure import MeasureConfig, MeterSource
        from .measuredir import make_writable_dir

        if self._source is not None:
            raise BadInput("this Monitor is already started: stop() it first, or use another")
        if self.out is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="edgebench-monitor-")
            self.out = Path(self._tmp.name)
        else:
            make_writable_dir(self.out)
        d = MeasureDir(self.out)
        if d.has_meter_log() or d.has_runs():
            raise BadInput(f"{self.out} already holds a measurement: pass another --out directory, or remove it")
        config = MeasureConfig(
            meter=self.meter_url, out=self.out, grid=self.grid, protocol=self.protocol, address=self.address,
            meter_timeout_s=self.meter_timeout_s, min_samples=self.min_samples, pue=self.pue,
            meter_options=self.meter_options,
        )  # fmt: skip
        self._source = MeterSource.start(config, d.new_meter_path)
        try:
            extra: dict[str, Any] = {"agent": "monitor", "meter_protocol": self._source.protocol}
            if self._source.address:
                extra["meter_address"] = self._source.address
            if self.idle_power_w is not None:
                extra["idle_power_w"] = self.idle_power_w  # report pairs with the same given baseline
            self._session = Session(
                grid=self.grid, meter=self._source.identity, resolution_w=self.resolution_w, pue=self.pue,
                min_samples=self.min_samples, extra=extra,
            )  # fmt: skip
            d.write_session(self._session)
            self._dir = d
            if self.idle_power_w is None:
                seconds = self.idle_s
                if seconds is None:
                    seconds = max(self._source.min_window_s, DEFAULT_IDLE_S)
                if seconds > 0:
                    self._measure_idle(self._source, seconds)
        except BaseException:
            self.stop()
            raise
        return self

    def _measure_idle(self, source: MeterSource, seconds: float) -> None:
        from edgebench.console import is_interactive, note, progress

        source.announce(f"idle baseline {seconds:g} s", "idle")  # the manual meter's prompt, Prometheus
        start = time.time_ns()
        deadline = time.monotonic() + seconds
        steps = max(1, int(seconds * 4))  # a quarter-second bar on a terminal
        if self.progress and not is_interactive():
            note(f"idle baseline: {seconds:g} s, keep the machine idle")
        label = f"idle baseline {seconds:g} s, keep the machine idle"
        with progress(range(steps), label) if self.progress else nullcontext(range(steps)) as ticks:
            for step in ticks:
                # each tick waits until its own share of the deadline: a late wake-up does not add up
                left = deadline - (steps - step - 1) * seconds / steps - time.monotonic()
                if left > 0:
                    time.sleep(left)
        end = time.time_ns()
        source.announce(None)
        record = RunRecord(
            engine="idle", backend="monitor", clock=HOST_CLOCK, window_start_ns=start, window_end_ns=end,
            iterations=0, batch=1, latencies_ns=(), kind="idle", run_id=self.run_id,
            repeat=sum(1 for r in self._records if r.kind == "idle"),
        )  # fmt: skip
        self._append(record)

    def stop(self) -> None:
        """Stop logging (windows still open are dropped). The temporary folder, if one was used, is removed."""
        for _, tracker in self._open.values():
            if tracker is not None:
                tracker.abandon()
        self._open.clear()
        if self._source is not None:
            source, self._source = self._source, None
            source.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
            self.out = None  # a later start() takes a fresh temporary folder

    def __enter__(self) -> Monitor:
        self.start()
        try:
            self.begin_window("block")
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc_type is None:
                self.result = self.end_window("block")
        finally:
            self.stop()

    # --- windows ----------------------------------------------------------------------------------------------

    def begin_window(self, name: str) -> None:
        """Start the window `name` (several may be open at once, each with its own name)."""
        name = _name(name)
        if self._source is None:
            raise BadInput("the Monitor is not started: call start() or use `with Monitor(...)`")
        if name in self._open:
            raise BadInput(f"window {name!r} is already open: end_window({name!r}) first, or use another name")
        tracker = None
        if self.codecarbon:
            from .codecarbon_bridge import CodeCarbonWindow

            tracker = CodeCarbonWindow.begin(self.codecarbon_country or country_iso3(self.grid) or "USA")
        self._source.announce(name)
        self._open[name] = (time.time_ns(), tracker)

    def end_window(self, name: str, iterations: int = 1, *, warning: str = "") -> WindowResult:
        """End the window `name` and measure it; `iterations` (steps, batches) gives energy per iteration.
        `warning` is recorded with the window (e.g. why it ended early)."""
        end = time.time_ns()
        name = _name(name)
        iterations = _number("iterations", iterations, minimum=1, integer=True)
        if name not in self._open:
            raise BadInput(f"no open window {name!r}: call begin_window({name!r}) first")
        assert self._source is not None  # windows are open only while started: stop() drops them
        start, tracker = self._open.pop(name)
        self._source.announce(None)
        repeat = len(self.windows)
        if tracker is not None:
            self.extras[repeat] = {"codecarbon": tracker.end()}
        record = RunRecord(
            engine=name, backend="monitor", clock=HOST_CLOCK, window_start_ns=start, window_end_ns=end,
            iterations=iterations, batch=1, latencies_ns=(end - start,), run_id=self.run_id, repeat=repeat,
            warnings=(warning,) if warning else (),
        )  # fmt: skip
        self._append(record)
        window = self.measure(record)
        self.windows.append(window)
        return window

    def measure(self, record: RunRecord) -> WindowResult:
        """Pair the windows so far (`record` among them) with the meter log and the idle baseline, as `report`
        pairs the directory; `record`'s WindowResult."""
        if self._source is None or self._dir is None:
            raise BadInput("the Monitor is stopped: measure windows before stop()")
        self._wait_past(self._source, record.window_end_ns)
        self.pairing = self._dir.pair(session=self._session, records=self._records)
        return next(
            w for w in self.pairing.windows
            if w.kind != "idle" and w.run_id == record.run_id and w.repeat == record.repeat
        )  # fmt: skip

    def _wait_past(self, source: MeterSource, end_ns: int) -> None:
        """Until the log holds a reading after `end_ns` (the window's right edge is interpolated with it). The
        logger flushes once a second and a loaded machine may delay that: the wait lasts as long as the meter
        may stay silent (`meter_timeout_s`), not a fixed few seconds; a dead logger ends it at once."""
        from .store import load_trace

        deadline = time.monotonic() + self.meter_timeout_s
        while True:
            source.wait_past(end_ns)  # returns on the reading, or after a few seconds without it
            try:
                if len(load_trace(source.path, start_ns=end_ns, address=source.address).t_ns):
                    return
            except BadInput:
                pass
            if time.monotonic() >= deadline:
                return  # the window is then paired without it, and says what it lacks

    def _append(self, record: RunRecord) -> None:
        assert self._dir is not None
        self._dir.append([record])
        self._records.append(record)

    # --- what a window comes to -------------------------------------------------------------------------------

    def co2_kg(self, window: WindowResult, *, net: bool = False) -> float:
        """CO2 of the window's gross (wall) energy, or of its net energy, PUE included, under the grid factor."""
        return self.grid.co2_kg((window.net_energy_j if net else window.gross_energy_j) * self.pue)

    def to_dict(self, window: WindowResult) -> dict[str, Any]:
        """The window as JSON-able data (NaN stays NaN: `edgebench run` writes it as null): the WindowResult's
        fields, the idle baseline, the grid factor, PUE and CO2."""
        data: dict[str, Any] = {"format": RESULT_FORMAT}
        for f in fields(window):
            value = getattr(window, f.name)
            data[f.name] = value.value if isinstance(value, Enum) else value
        idle = self.idle
        data.update(
            status=window.status,
            valid=window.valid,
            gross_j_per_inference=window.gross_j_per_inference,
            net_j_per_inference=window.net_j_per_inference,
            gross_energy_kwh=j_to_kwh(window.gross_energy_j),
            net_energy_kwh=j_to_kwh(window.net_energy_j),
            idle=None if idle is None else {
                "power_w": idle.power_w, "power_u_w": idle.power_u_w, "windows": idle.windows, "source": idle.source,
            },
            pue=self.pue,
            co2_kg=self.co2_kg(window),
            co2_lb=kg_to_lb(self.co2_kg(window)),
            co2_kg_net=self.co2_kg(window, net=True),
            co2_lb_net=kg_to_lb(self.co2_kg(window, net=True)),
            grid=self.grid.to_dict(),
            meter=self.pairing.meter if self.pairing is not None else "",
            **self.extras.get(window.repeat, {}),
        )  # fmt: skip
        return data

    def lines(self, window: WindowResult) -> list[str]:
        """The window as terminal lines (results, not diagnostics)."""
        idle = self.idle
        below = below_idle(window)
        net = signed_figure(window.net_energy_j, window.net_energy_u_j, below=below, sigmas=SIGNIFICANCE)
        pue = f" (PUE {self.pue:g} included)" if self.pue != 1.0 else ""
        idle_text = (
            f"idle {plus_minus(idle.power_w, idle.power_u_w)} W "
            f"({'given' if idle.source == 'given' else f'{idle.windows} idle window(s)'})"
            if idle is not None else "no idle baseline"
        )  # fmt: skip
        gross_kwh, net_kwh = j_to_kwh(window.gross_energy_j), j_to_kwh(window.net_energy_j)
        out = [
            f"window   {window.engine}: {window.duration_s:.3f} s, {window.samples} meter readings"
            + ("" if window.valid else f" - {window.status}"),
            f"power    {window.mean_power_w:.4g} W mean at the wall; {idle_text}",
            f"energy   gross {plus_minus(window.gross_energy_j, window.gross_energy_u_j)} J = {gross_kwh:.4g} kWh; "
            f"net {net} J" + (f" = {net_kwh:.4g} kWh" if net != "-" and not below else ""),
        ]
        if window.iterations > 1:
            n = window.iterations
            out.append(
                f"per it.  gross {plus_minus(window.gross_j_per_inference, window.gross_energy_u_j / n)} J, net "
                f"{signed_figure(window.net_j_per_inference, window.net_energy_u_j / n, below=below)} J "
                f"({n:,} iterations)"
            )
        co2, co2_net = self.co2_kg(window), self.co2_kg(window, net=True)
        out += [
            f"CO2      gross {co2:.4g} kg = {kg_to_lb(co2):.4g} lbs; net "
            + ("<0 !" if below else f"{num(co2_net, '.4g')} kg") + pue,
            f"grid     {self.grid.label}",
        ]
        cc = self.extras.get(window.repeat, {}).get("codecarbon")
        if isinstance(cc, dict):
            out.append(
                f"codecarbon {cc['energy_kwh'] * 3.6e6:.4g} J = {cc['energy_kwh']:.4g} kWh, {cc['emissions_kg']:.4g} kg CO2 "
                f"(its own estimate from CPU/GPU/RAM models, {cc['country_iso_code']}; not a wall figure)"
            )
        return out

