"""Measure a block of Python code at the wall: `with Monitor(meter=...) as m:` or named begin/end windows.

The meter is logged in the background (the same MeterLogger and store as `edgebench measure`), an idle baseline
is measured first (or given), and each window is paired with the log by `edgebench.host.pairing.pair`, so a
training loop measured from inside gets the same figures as an engine: gross and net joules with their
uncertainty, mean power, and CO2 under a named grid factor.

    from edgebench import Monitor

    with Monitor(meter="/dev/ttyUSB0", idle_s=10) as m:
        train(epochs=1)
    print(m.result.lines())

    mon = Monitor(meter="/dev/ttyUSB0").start()
    mon.begin_window("epoch1"); train(epochs=1); epoch = mon.end_window("epoch1", iterations=1000)
    mon.stop()

`edgebench run -- CMD` is this around a subprocess.
"""

from __future__ import annotations

import math
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgebench.errors import BadInput
from edgebench.records import HOST_CLOCK, ClockOffset, RunRecord
from edgebench.units import plus_minus

from .carbon import GridFactor, egrid_factor, j_to_kwh, kg_to_lb
from .pairing import MIN_SAMPLES, IdleBaseline, WindowResult

DEFAULT_IDLE_S = 10.0  # at least this, and at least the meter's shortest valid window


@dataclass(frozen=True)
class Measurement:
    """One measured window: wall energy gross and net of the idle baseline, with 1-sigma uncertainties."""

    name: str
    start_ns: int
    end_ns: int
    iterations: int
    samples: int  # meter readings inside the window
    mean_power_w: float
    gross_energy_j: float
    gross_energy_u_j: float
    net_energy_j: float  # nan without an idle baseline
    net_energy_u_j: float
    idle_power_w: float
    idle_power_u_w: float
    idle_source: str
    status: str  # "ok" or "invalid: <why>" (too few readings, a meter gap...)
    grid: GridFactor
    pue: float = 1.0
    meter: str = ""
    run_id: str = ""  # the Monitor's (one per start)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. CodeCarbon's estimate of the same window

    @property
    def valid(self) -> bool:
        return self.status == "ok"

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9

    @property
    def gross_energy_kwh(self) -> float:
        return j_to_kwh(self.gross_energy_j)

    @property
    def net_energy_kwh(self) -> float:
        return j_to_kwh(self.net_energy_j)

    @property
    def co2_kg(self) -> float:
        """CO2 of the gross (wall) energy, PUE included: what the wall pays."""
        return self.grid.co2_kg(self.gross_energy_j * self.pue)

    @property
    def co2_kg_net(self) -> float:
        """CO2 of the net energy (above idle), PUE included: what the work costs."""
        return self.grid.co2_kg(self.net_energy_j * self.pue)

    @property
    def gross_j_per_iteration(self) -> float:
        return self.gross_energy_j / self.iterations if self.iterations else math.nan

    @property
    def net_j_per_iteration(self) -> float:
        return self.net_energy_j / self.iterations if self.iterations else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "duration_s": self.duration_s,
            "iterations": self.iterations,
            "samples": self.samples,
            "mean_power_w": self.mean_power_w,
            "gross_energy_j": self.gross_energy_j,
            "gross_energy_u_j": self.gross_energy_u_j,
            "net_energy_j": self.net_energy_j,
            "net_energy_u_j": self.net_energy_u_j,
            "gross_energy_kwh": self.gross_energy_kwh,
            "net_energy_kwh": self.net_energy_kwh,
            "idle_power_w": self.idle_power_w,
            "idle_power_u_w": self.idle_power_u_w,
            "idle_source": self.idle_source,
            "gross_j_per_iteration": self.gross_j_per_iteration,
            "net_j_per_iteration": self.net_j_per_iteration,
            "pue": self.pue,
            "co2_kg": self.co2_kg,
            "co2_lb": kg_to_lb(self.co2_kg),
            "co2_kg_net": self.co2_kg_net,
            "co2_lb_net": kg_to_lb(self.co2_kg_net),
            "grid": self.grid.to_dict(),
            "meter": self.meter,
            "run_id": self.run_id,
            **self.extra,
        }

    def lines(self) -> list[str]:
        """The window as terminal lines (results, not diagnostics)."""
        net = plus_minus(self.net_energy_j, self.net_energy_u_j)
        pue = f" (PUE {self.pue:g} included)" if self.pue != 1.0 else ""
        out = [
            f"window   {self.name}: {self.duration_s:.3f} s, {self.samples} meter readings"
            + ("" if self.valid else f" - {self.status}"),
            f"power    {self.mean_power_w:.4g} W mean at the wall; idle {plus_minus(self.idle_power_w, self.idle_power_u_w)} W "
            f"({self.idle_source})",
            f"energy   gross {plus_minus(self.gross_energy_j, self.gross_energy_u_j)} J = {self.gross_energy_kwh:.4g} kWh; "
            f"net {net} J" + (f" = {self.net_energy_kwh:.4g} kWh" if net != "-" else ""),
        ]
        if self.iterations > 1:
            n = self.iterations
            out.append(
                f"per it.  gross {plus_minus(self.gross_j_per_iteration, self.gross_energy_u_j / n)} J, "
                f"net {plus_minus(self.net_j_per_iteration, self.net_energy_u_j / n)} J ({n:,} iterations)"
            )
        out += [
            f"CO2      gross {self.co2_kg:.4g} kg = {kg_to_lb(self.co2_kg):.4g} lbs; net {self.co2_kg_net:.4g} kg"
            + pue,
            f"grid     {self.grid.label}",
        ]
        cc = self.extra.get("codecarbon")
        if isinstance(cc, dict):
            out.append(
                f"codecarbon {cc['energy_kwh'] * 3.6e6:.4g} J = {cc['energy_kwh']:.4g} kWh, {cc['emissions_kg']:.4g} kg CO2 "
                f"(its own estimate from CPU/GPU/RAM models, {cc['country_iso_code']}; not a wall figure)"
            )
        return out


class Monitor:
    """A wall meter watching this process's machine: an idle baseline, then named measurement windows.

    `meter` is a port URL (/dev/ttyUSB0, a pty, socket://host:port). `idle_s` seconds of idle are measured at
    `start()` (None: the meter's shortest valid window, at least 10 s; 0: none) unless `idle_power_w` gives the
    baseline. `out` keeps the meter log (meter.sqlite) and windows (runs.jsonl); None uses a temporary folder.
    `codecarbon=True` also runs CodeCarbon's offline tracker over each window (needs `edgebench[codecarbon]`).
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
        pue: float = 1.0,
        min_samples: int = MIN_SAMPLES,
        meter_timeout_s: float = 20.0,
        resolution_w: float | None = None,
        codecarbon: bool = False,
        codecarbon_country: str | None = None,
        meter_options: Any = None,
    ) -> None:
        for name, value in (("idle_s", idle_s), ("idle_power_w", idle_power_w), ("resolution_w", resolution_w)):
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise BadInput(f"{name} {value!r} must be a finite number >= 0")
        if not (math.isfinite(pue) and pue >= 1.0):
            raise BadInput(f"PUE {pue} is below 1: pass 1 for a device on a desk, more for a facility")
        if min_samples < 2:
            raise BadInput(f"min_samples {min_samples} is too small: the trapezoid rule needs at least 2 readings")
        self.meter_url = str(meter)
        self.protocol = protocol
        self.address = address
        self.out = Path(out) if out is not None else None
        self.idle_s = idle_s
        self.idle_power_w = idle_power_w
        self.grid = grid or egrid_factor()
        self.pue = pue
        self.min_samples = min_samples
        self.meter_timeout_s = meter_timeout_s
        self.resolution_w = resolution_w
        self.codecarbon = codecarbon
        self.codecarbon_country = codecarbon_country
        self.meter_options = meter_options  # edgebench.host.logger.MeterOptions (plug password, --kwh, Prometheus)
        self.run_id = uuid.uuid4().hex[:12]
        self.windows: list[Measurement] = []
        self.result: Measurement | None = None  # the `with` block's window
        self._source: Any = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._idle_records: list[RunRecord] = []
        self._open: dict[str, tuple[int, Any]] = {}

    # --- lifecycle --------------------------------------------------------------------------------------------

    @property
    def log_path(self) -> Path:
        assert self.out is not None
        return self.out / "meter.sqlite"

    @property
    def runs_path(self) -> Path:
        assert self.out is not None
        return self.out / "runs.jsonl"

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
        if self.log_path.exists():
            raise BadInput(f"{self.log_path} already exists: pass another --out directory, or remove it")
        config = MeasureConfig(
            meter=self.meter_url, out=self.out, grid=self.grid, protocol=self.protocol, address=self.address,
            meter_timeout_s=self.meter_timeout_s, min_samples=self.min_samples, pue=self.pue,
            meter_options=self.meter_options,
        )  # fmt: skip
        self._source = MeterSource.start(config, self.log_path)
        try:
            if self.idle_power_w is None:
                seconds = self.idle_s
                if seconds is None:
                    seconds = max(self._source.min_window_s, DEFAULT_IDLE_S)
                if seconds > 0:
                    self._measure_idle(seconds)
        except BaseException:
            self.stop()
            raise
        return self

    def _measure_idle(self, seconds: float) -> None:
        self._source.announce(f"idle baseline {seconds:g} s", "idle")  # the manual meter's prompt, Prometheus
        start = time.time_ns()
        time.sleep(seconds)
        end = time.time_ns()
        self._source.announce(None)
        record = RunRecord(
            engine="idle", backend="monitor", clock=HOST_CLOCK, window_start_ns=start, window_end_ns=end,
            iterations=0, batch=1, latencies_ns=(), kind="idle", run_id=self.run_id,
            repeat=len(self._idle_records),
        )  # fmt: skip
        self._idle_records.append(record)
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

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.result = self.end_window("block")
        finally:
            self.stop()

    # --- windows ----------------------------------------------------------------------------------------------

    def begin_window(self, name: str) -> None:
        """Start the window `name` (several may be open at once, each with its own name)."""
        if self._source is None:
            raise BadInput("the Monitor is not started: call start() or use `with Monitor(...)`")
        if name in self._open:
            raise BadInput(f"window {name!r} is already open: end_window({name!r}) first, or use another name")
        tracker = None
        if self.codecarbon:
            from .codecarbon_bridge import CodeCarbonWindow

            tracker = CodeCarbonWindow.begin(self.codecarbon_country or _iso3(self.grid))
        self._source.announce(name)
        self._open[name] = (time.time_ns(), tracker)

    def end_window(self, name: str, iterations: int = 1) -> Measurement:
        """End the window `name` and measure it; `iterations` (steps, batches) gives energy per iteration."""
        end = time.time_ns()
        if name not in self._open:
            raise BadInput(f"no open window {name!r}: call begin_window({name!r}) first")
        if iterations < 1:
            raise BadInput(f"iterations {iterations} must be >= 1")
        start, tracker = self._open.pop(name)
        self._source.announce(None)
        extra = {"codecarbon": tracker.end()} if tracker is not None else {}
        record = RunRecord(
            engine=name, backend="monitor", clock=HOST_CLOCK, window_start_ns=start, window_end_ns=end,
            iterations=iterations, batch=1, latencies_ns=(end - start,), run_id=self.run_id,
            repeat=len(self.windows),
        )  # fmt: skip
        self._append(record)
        measurement = self.measure(record, extra)
        self.windows.append(measurement)
        return measurement

    def measure(self, record: RunRecord, extra: dict[str, Any] | None = None) -> Measurement:
        """Pair one host-clock window with the meter log and this monitor's idle baseline."""
        import dataclasses

        from .pairing import pair
        from .store import load_trace

        if self._source is None:
            raise BadInput("the Monitor is stopped: measure windows before stop()")
        self._source.wait_past(record.window_end_ns)
        trace = load_trace(self.log_path, address=self._source.address)
        if self.resolution_w is not None:
            trace = dataclasses.replace(trace, resolution_w=self.resolution_w)
        given = (
            IdleBaseline(self.idle_power_w, 0.0, 0.0, 0, source="given")
            if self.idle_power_w is not None
            else None
        )
        result = pair(
            [*self._idle_records, record], trace, ClockOffset(0, method="same clock"), grid=self.grid,
            idle=given, min_samples=self.min_samples, pue=self.pue,
        )  # fmt: skip
        window: WindowResult = next(w for w in result.windows if w.kind != "idle")
        idle = result.idle  # None when no idle window was valid: net figures are nan, the window may be fine
        return Measurement(
            name=record.engine,
            start_ns=record.window_start_ns,
            end_ns=record.window_end_ns,
            iterations=record.iterations,
            samples=window.samples,
            mean_power_w=window.mean_power_w,
            gross_energy_j=window.gross_energy_j,
            gross_energy_u_j=window.gross_energy_u_j,
            net_energy_j=window.net_energy_j,
            net_energy_u_j=window.net_energy_u_j,
            idle_power_w=idle.power_w if idle else math.nan,
            idle_power_u_w=idle.power_u_w if idle else math.nan,
            idle_source=(
                "given" if self.idle_power_w is not None
                else f"{idle.windows} idle window(s)" if idle else "none"
            ),
            status=window.status,
            grid=self.grid,
            pue=self.pue,
            meter=result.meter,
            run_id=record.run_id,
            extra=dict(extra or {}),
        )

    def _append(self, record: RunRecord) -> None:
        from edgebench.records import append_jsonl

        assert self.out is not None
        append_jsonl(self.runs_path, [record])


def _iso3(grid: GridFactor) -> str:
    """The country a grid factor is for, as CodeCarbon wants it (ISO-3); eGRID and user factors: USA."""
    region = grid.region.split(" ")[0].upper()
    return region if len(region) == 3 and region.isalpha() else "USA"
