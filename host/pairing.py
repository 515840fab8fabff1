"""Pair the agent's measured windows with a wall-meter trace: joules and CO2 per inference, with uncertainty.

For each RunRecord window (agent clock) the edges are mapped to host time with the measured ClockOffset, the
meter trace is integrated over it with the shared integrator (`edgebench.energy.integrate_window`: trapezoid rule,
edges interpolated), and the window is checked: enough samples, full coverage, no meter gap, clock uncertainty
small against the window. Idle windows give the baseline; run windows give gross energy (what the wall pays) and
net energy (gross minus the idle power at that time x duration: what the model costs). Repeated windows of one
engine are combined into an EngineResult.

"Execution" (or "inference") means one engine execution, i.e. one batch; "sample" means one input of that batch,
one image. So J/inference = energy / iterations and J/sample = energy / (iterations x batch). Engines of different
batch sizes are compared per sample (docs/methodology.md).

The idle baseline: each valid idle window gives its mean power with a standard uncertainty (meter resolution
and the spread of its readings). A run window's idle power is interpolated linearly in time, at the window's
midpoint, between the valid idle windows that bracket it (before the first or after the last: the nearest one),
so a baseline that drifts (the device warming up, `measure --idle-every`) is followed, not averaged away. An idle
window taken while the device's CPU was busy (RunRecord.cpu_busy at or above BUSY_IDLE_CPU) is flagged: it is
kept, but the result says so and net figures resting on it are suspect.

Uncertainties are standard (1 sigma) and combine, in quadrature:
- meter resolution: each reading is off by up to one resolution step r, uniformly, so sd = r / sqrt(3) per
  reading; averaged over the N readings of a window the mean power is off by r / sqrt(3 N) and the energy by
  duration x r / sqrt(3 N);
- clock: an edge misplaced by the offset uncertainty u_c moves the energy by P_edge x u_c at each edge;
- repeats: the standard error (sd / sqrt(n)) of the per-window J/inference over an engine's valid windows;
- net only: the interpolated idle power's own uncertainty x duration (added linearly over an engine's windows,
  which share their idle windows).
docs/methodology.md states the formulas and thresholds.

Speed: the trace arrays are used as they are (int64 ns, float64 W); each window costs two binary searches and a
slice, so a 24 h log at 10 readings/s against 1,000 windows takes well under a second.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypedDict

import numpy as np

from edgebench.energy import integrate_window
from edgebench.errors import BadInput
from edgebench.names import EngineName, parse_engine_name  # noqa: F401 - EngineName re-exported
from edgebench.records import HOST_CLOCK, Accuracy, ClockOffset, MeterTrace, ModelFacts, RunRecord

from .carbon import GridFactor, check_pue, egrid_factor, lb_to_kg
from .options import MIN_SAMPLES  # the 10-reading minimum, defined with its option

# Validity thresholds (documented in docs/methodology.md).
MIN_COVERAGE = 0.99  # fraction of the window between the first and last reading around it
MAX_CLOCK_SHARE = 0.01  # 2 x clock uncertainty must stay under 1 % of the window
MAX_SILENCE_PERIODS = 5.0  # a stretch with no reading longer than 5 nominal meter periods is a gap
BUSY_IDLE_CPU = 0.25  # an idle window with a quarter or more of the device's CPU time busy was not idle
SIGNIFICANCE = 2.0  # "beyond its uncertainty": more than 2 sigma (net below zero, ties, the front's margin)


class WindowState(str, Enum):
    """What became of a window (or of an engine, from its windows)."""

    OK = "ok"  # measured and paired: its figures count
    INVALID = "invalid"  # it ran, but the meter trace cannot measure it (too few readings, a gap, ...)
    FAILED = "failed"  # it never ran (load failure, crash, no iteration)


def status_text(state: WindowState, reason: str) -> str:
    """"ok", or "invalid: <reason>" / "failed: <reason>": the status as the table and the files spell it."""
    return state.value if state is WindowState.OK or not reason else f"{state.value}: {reason}"


class RecordFields(TypedDict):
    """What a WindowResult takes unchanged from its RunRecord (filled in here, passed to `spot.pair_window`)."""

    engine: str
    kind: str
    run_id: str
    repeat: int
    iterations: int
    batch: int
    rail_energy_j: float | None
    rail_estimate: bool
    attempt: int
    cpu_busy: float | None


@dataclass(frozen=True)
class WindowResult:
    """One measured window paired with the meter trace."""

    engine: str
    kind: str  # "run" or "idle"
    run_id: str
    repeat: int
    start_host_ns: int
    end_host_ns: int
    duration_s: float
    iterations: int
    batch: int
    samples: int  # meter readings inside the window
    coverage: float
    largest_gap_s: float
    gross_energy_j: float
    gross_energy_u_j: float  # meter resolution and clock terms of this window (1 sigma)
    mean_power_w: float
    net_energy_j: float  # gross - idle power x duration (nan without an idle baseline)
    net_energy_u_j: float
    rail_energy_j: float | None = None
    rail_estimate: bool = False
    state: WindowState = WindowState.OK
    reason: str = ""  # why the window is invalid or failed ("" when ok)
    meter_fault: bool = False  # invalid because the meter fell silent or left a gap: worth measuring again
    attempt: int = 0  # 0: first try of this window; n: its n-th re-measurement
    power_sd_w: float = math.nan  # standard deviation of the meter readings inside the window
    idle_power_w: float = math.nan  # the idle power subtracted for this window (interpolated in time)
    idle_power_u_w: float = math.nan
    cpu_busy: float | None = None  # the device's CPU utilisation over the window (0..1), when the agent read it

    @property
    def valid(self) -> bool:
        return self.state is WindowState.OK

    @property
    def failed(self) -> bool:
        return self.state is WindowState.FAILED

    @property
    def status(self) -> str:
        return status_text(self.state, self.reason)

    @property
    def mid_host_ns(self) -> int:
        return (self.start_host_ns + self.end_host_ns) // 2

    @property
    def not_idle(self) -> bool:
        """An idle window during which the device's CPU was busy (at or above BUSY_IDLE_CPU)."""
        return self.kind == "idle" and self.cpu_busy is not None and self.cpu_busy >= BUSY_IDLE_CPU

    @property
    def mean_power_u_w(self) -> float:
        """Standard uncertainty of the window's mean power: meter resolution/clock and the readings' spread."""
        if not (self.duration_s > 0 and math.isfinite(self.gross_energy_u_j)):
            return math.nan
        spread = self.power_sd_w / math.sqrt(self.samples) if self.samples > 1 and math.isfinite(self.power_sd_w) else 0.0
        return math.hypot(self.gross_energy_u_j / self.duration_s, spread)

    @property
    def gross_j_per_inference(self) -> float:
        return self.gross_energy_j / self.iterations if self.iterations else math.nan

    @property
    def net_j_per_inference(self) -> float:
        return self.net_energy_j / self.iterations if self.iterations else math.nan


@dataclass(frozen=True)
class IdleBaseline:
    """The idle baseline a table rests on: the valid idle windows, summarised (the figures used per window are
    interpolated in time between them, see `IdleModel`)."""

    power_w: float  # mean of the idle windows' mean powers
    power_u_w: float  # standard uncertainty of power_w (standard error over the windows and meter terms)
    spread_w: float  # sample standard deviation of the windows' mean powers (nan with one window)
    windows: int  # valid idle windows used
    source: str = "idle windows"
    interpolated: bool = False  # True when run windows get the idle power interpolated between several windows
    busy_windows: int = 0  # how many of them were taken while the device's CPU was busy (not idle)
    drift_w: float = math.nan  # last minus first idle window's power, when there are several

    @property
    def spread_text(self) -> str:
        """`sd 0.12 W over 3 windows`, or `one window` (no spread can be told from one)."""
        if self.windows <= 1 or not math.isfinite(self.spread_w):
            return "one window" if self.windows == 1 else self.source
        return f"sd {self.spread_w:.2g} W over {self.windows} windows"


@dataclass(frozen=True)
class IdleModel:
    """Idle power as a function of host time: linear between the valid idle windows' midpoints, constant beyond
    the first and the last. One window (or a given baseline) is a constant."""

    t_ns: tuple[int, ...]
    power_w: tuple[float, ...]
    power_u_w: tuple[float, ...]

    @classmethod
    def constant(cls, power_w: float, power_u_w: float) -> IdleModel:
        return cls((0,), (power_w,), (power_u_w,))

    def at(self, t_ns: int) -> tuple[float, float]:
        """(idle power, its standard uncertainty) at host time `t_ns`."""
        t, p, u = self.t_ns, self.power_w, self.power_u_w
        if len(t) == 1 or t_ns <= t[0]:
            return p[0], u[0]
        if t_ns >= t[-1]:
            return p[-1], u[-1]
        i = int(np.searchsorted(np.asarray(t, dtype=np.int64), t_ns, side="right"))
        w = (t_ns - t[i - 1]) / (t[i] - t[i - 1])  # weight of the later window
        return (1 - w) * p[i - 1] + w * p[i], math.hypot((1 - w) * u[i - 1], w * u[i])


@dataclass(frozen=True)
class EngineResult:
    """One engine's figures over its repeated windows. `_u` fields are standard (1 sigma) uncertainties."""

    engine: str
    backend: str
    backbone: str
    batch: int
    resolution: str  # "HxW"
    precision: str
    state: WindowState
    reason: str  # why no window is valid ("" when ok)
    windows: int
    valid_windows: int
    latency_mean_ms: float
    latency_p50_ms: float
    throughput_samples_s: float
    throughput_inferences_s: float
    wall_power_w: float  # mean wall power over the valid windows
    net_power_w: float  # wall power minus idle power
    gross_j_per_inference: float
    gross_j_per_inference_u: float
    net_j_per_inference: float
    net_j_per_inference_u: float
    rail_j_per_inference: float
    rail_j_per_inference_u: float
    rail_estimate: bool
    gross_j_per_sample: float
    gross_j_per_sample_u: float
    net_j_per_sample: float
    net_j_per_sample_u: float
    co2_kg_per_inference: float  # from gross (wall) energy x PUE
    co2_lb_per_inference: float
    co2_kg_per_inference_net: float
    co2_lb_per_inference_net: float
    pue: float = 1.0
    rail_power_w: float = math.nan  # mean on-board power over the windows with a rail figure
    params: int | None = None  # the model's parameter count, from the agent's manifest (None if not recorded)
    gflops_per_inference: float = math.nan  # GFLOPs of one inference (one batch), from the manifest
    accuracy: Accuracy | None = None  # from `edgebench eval`, carried in the manifest; None if not evaluated
    retried: int = 0  # windows measured again because the meter invalidated an earlier try (`measure --retry`)
    net_below_idle: bool = False  # net J below zero beyond SIGNIFICANCE sigma: the baseline is above the windows
    busy_baseline: bool = False  # its net figure rests on an idle window taken while the device was busy

    @property
    def ok(self) -> bool:
        return self.state is WindowState.OK

    @property
    def status(self) -> str:
        return status_text(self.state, self.reason)

    @property
    def co2_kg_per_sample(self) -> float:
        return self.co2_kg_per_inference / self.batch if self.batch else math.nan

    @property
    def co2_kg_per_million(self) -> float:
        return self.co2_kg_per_inference * 1e6

    @property
    def co2_lb_per_million(self) -> float:
        return self.co2_lb_per_inference * 1e6

    @property
    def co2_g_per_million_samples(self) -> float:
        return self.co2_kg_per_sample * 1e9


@dataclass(frozen=True)
class PairingResult:
    """Every window, every engine (in order of first appearance), the idle baseline and the grid factor."""

    windows: tuple[WindowResult, ...]
    engines: tuple[EngineResult, ...]
    idle: IdleBaseline | None
    grid: GridFactor
    meter: str = ""
    resolution_w: float = 0.0
    pue: float = 1.0
    thresholds: Mapping[str, float] = field(default_factory=dict)
    device: Mapping[str, Any] = field(
        default_factory=dict
    )  # the first run's device metadata: what produced it

    @property
    def busy_idle_windows(self) -> list[tuple[int, WindowResult]]:
        """(1-based number among the idle windows, window) for each idle window that was not idle."""
        idles = [w for w in self.windows if w.kind == "idle"]
        return [(i, w) for i, w in enumerate(idles, 1) if w.not_idle]


def busy_idle_message(number: int, window: WindowResult) -> str:
    """`idle window 2 was not idle: CPU 93 % busy`."""
    busy = window.cpu_busy if window.cpu_busy is not None else math.nan
    return f"idle window {number} was not idle: CPU {busy * 100:.0f} % busy"


NET_BELOW_IDLE = (
    "the idle baseline is above this window: the device was busier during idle than while running; "
    "use --idle-every, keep the device idle, or rank by gross"
)


# --- the computation ------------------------------------------------------------------------------------------


class _Trace:
    """The trace's arrays prepared once: int64 times, float64 watts, nominal period and gap lookup."""

    def __init__(self, trace: MeterTrace) -> None:
        self.t = np.ascontiguousarray(trace.t_ns, dtype=np.int64)
        self.p = np.ascontiguousarray(trace.power_w, dtype=np.float64)
        self.resolution_w = float(trace.resolution_w)
        self.trace, self.sampling, self.timing_u_s = trace, trace.sampling, float(trace.timing_u_s)
        n = len(self.t)
        if n > 1 and np.any(self.t[1:] < self.t[:-1]):
            raise BadInput(f"meter trace of {trace.meter!r} is not sorted by time: load it with load_trace")
        # the nominal period: median spacing (one temporary array of n - 1 spacings, sorted in place)
        self.period_s = float(np.median(np.diff(self.t), overwrite_input=True)) / 1e9 if n > 1 else math.nan
        gaps = sorted((int(a), int(b)) for a, b in trace.gaps)
        self.gap_start = np.array([a for a, _ in gaps], dtype=np.int64)
        # running maximum of gap ends, so "a gap starting before `end` ends after `start`" is one binary search
        self.gap_end_max = (
            np.maximum.accumulate(np.array([b for _, b in gaps], dtype=np.int64)) if gaps else None
        )

    def gap_overlaps(self, start_ns: int, end_ns: int) -> bool:
        if self.gap_end_max is None:
            return False
        idx = int(np.searchsorted(self.gap_start, end_ns, side="left"))
        return idx > 0 and int(self.gap_end_max[idx - 1]) > start_ns

    def power_sd(self, start_ns: int, end_ns: int) -> float:
        """Sample standard deviation of the readings inside [start_ns, end_ns] (nan with fewer than 2)."""
        lo = int(np.searchsorted(self.t, start_ns, side="left"))
        hi = int(np.searchsorted(self.t, end_ns, side="right"))
        return float(np.std(self.p[lo:hi], ddof=1)) if hi - lo > 1 else math.nan

    def power_near(self, t_ns: int) -> float:
        """Power of the reading nearest at or after t_ns (the last one past the end): the window-edge power."""
        n = len(self.p)
        if n == 0:
            return math.nan
        i = min(int(np.searchsorted(self.t, t_ns, side="left")), n - 1)
        return float(self.p[i])


def _failure(record: RunRecord) -> str:
    if record.error:
        return record.error
    if record.iterations <= 0 and record.kind == "run":
        return "no iterations completed"
    if record.window_end_ns <= record.window_start_ns:
        return "window end is not after its start"
    return ""


def window_to_host(record: RunRecord, clock: ClockOffset | Mapping[str, ClockOffset]) -> tuple[int, int, float]:
    """A record's window edges in host ns and the clock uncertainty in seconds (BadInput when its run has no
    clock offset)."""
    if record.clock == HOST_CLOCK:
        return record.window_start_ns, record.window_end_ns, 0.0
    offset = clock.get(record.run_id) if isinstance(clock, Mapping) else clock
    if offset is None:
        raise BadInput(
            f"no clock offset for run {record.run_id!r} of {record.engine}: pass --clock-offset or the session's "
            "clock.json"
        )
    return (
        offset.to_host_ns(record.window_start_ns),
        offset.to_host_ns(record.window_end_ns),
        offset.uncertainty_ns / 1e9,
    )


_to_host = window_to_host  # the name pairing used first


def _pair_window(
    record: RunRecord,
    tr: _Trace,
    clock: ClockOffset | Mapping[str, ClockOffset],
    min_samples: int,
    min_coverage: float,
    idle: IdleModel | None,
) -> WindowResult:
    failed = _failure(record)
    rail = record.rail_energy
    common = RecordFields(
        engine=record.engine,
        kind=record.kind,
        run_id=record.run_id,
        repeat=record.repeat,
        iterations=record.iterations,
        batch=record.batch,
        rail_energy_j=rail.energy_j if rail else None,
        rail_estimate=bool(rail and rail.estimate),
        attempt=record.attempt,
        cpu_busy=record.cpu_busy,
    )
    if failed:
        return WindowResult(
            start_host_ns=record.window_start_ns, end_host_ns=record.window_end_ns,
            duration_s=max(record.duration_ns, 0) / 1e9, samples=0, coverage=0.0, largest_gap_s=math.nan,
            gross_energy_j=math.nan, gross_energy_u_j=math.nan, mean_power_w=math.nan, net_energy_j=math.nan,
            net_energy_u_j=math.nan, state=WindowState.FAILED, reason=failed, **common,
        )  # fmt: skip
    start, end, clock_u_s = window_to_host(record, clock)
    if tr.sampling != "continuous":  # readings a person typed, or an energy counter: all in host/spot.py
        from .spot import pair_window

        idle_w, idle_u_w = idle.at((start + end) // 2) if idle is not None else (math.nan, math.nan)
        return pair_window(tr.trace, start, end, clock_u_s, idle_w, idle_u_w, common)
    integral = integrate_window(tr.t, tr.p, start, end)
    duration_s = integral.window_s

    reasons = []
    meter_fault = False
    if integral.samples < min_samples:
        shortest = (
            f"{min_samples * tr.period_s:.3g} s" if math.isfinite(tr.period_s) else f"{min_samples} periods"
        )
        reasons.append(
            f"{integral.samples} meter readings in the {duration_s:.3g} s window, need >= {min_samples} "
            f"(run windows of at least {shortest})"
        )
        # a window long enough for the readings it lacks lost them to the meter, not to its length
        meter_fault = math.isfinite(tr.period_s) and duration_s >= min_samples * tr.period_s
    if integral.coverage < min_coverage:
        reasons.append(f"meter log covers {integral.coverage:.1%} of the window, need >= {min_coverage:.0%}")
        meter_fault = True
    if tr.gap_overlaps(start, end):
        reasons.append("a logged meter gap overlaps the window")
        meter_fault = True
    elif (
        math.isfinite(tr.period_s)
        and integral.samples >= 2
        and integral.coverage >= min_coverage
        and integral.largest_gap_s > MAX_SILENCE_PERIODS * tr.period_s
    ):
        reasons.append(
            f"meter silent for {integral.largest_gap_s:.3g} s inside the window "
            f"(> {MAX_SILENCE_PERIODS:g} x its {tr.period_s:.3g} s period)"
        )
        meter_fault = True
    if 2 * clock_u_s > MAX_CLOCK_SHARE * duration_s:
        reasons.append(
            f"clock uncertainty +-{clock_u_s * 1e3:.3g} ms is over {MAX_CLOCK_SHARE / 2:.1%} of the window at each "
            "edge: lengthen the window or re-sync the clocks"
        )

    gross_j = integral.energy_j
    n = max(integral.samples, 1)
    res_u_j = duration_s * tr.resolution_w / math.sqrt(3.0 * n)
    edge_u_s = math.hypot(clock_u_s, tr.timing_u_s)  # the clock's and the meter's own timing (a plug's poll)
    clock_u_j = edge_u_s * math.hypot(tr.power_near(start), tr.power_near(end)) if edge_u_s else 0.0
    gross_u_j = math.hypot(res_u_j, clock_u_j)
    idle_w = idle_u_w = net_j = net_u_j = math.nan
    if idle is not None:
        idle_w, idle_u_w = idle.at((start + end) // 2)
        net_j = gross_j - idle_w * duration_s
        net_u_j = math.hypot(gross_u_j, idle_u_w * duration_s)
    return WindowResult(
        start_host_ns=start, end_host_ns=end, duration_s=duration_s, samples=integral.samples,
        coverage=integral.coverage, largest_gap_s=integral.largest_gap_s, gross_energy_j=gross_j,
        gross_energy_u_j=gross_u_j, mean_power_w=integral.mean_power_w, net_energy_j=net_j, net_energy_u_j=net_u_j,
        state=WindowState.INVALID if reasons else WindowState.OK, reason="; ".join(reasons),
        meter_fault=bool(reasons) and meter_fault, power_sd_w=tr.power_sd(start, end), idle_power_w=idle_w,
        idle_power_u_w=idle_u_w, **common,
    )  # fmt: skip


def idle_baseline(windows: Sequence[WindowResult]) -> IdleBaseline | None:
    """The summary of the valid idle windows (None when there is none)."""
    valid = sorted((w for w in windows if w.kind == "idle" and w.valid), key=lambda w: w.start_host_ns)
    if not valid:
        return None
    powers = np.array([w.mean_power_w for w in valid])
    if len(valid) > 1:
        spread = float(np.std(powers, ddof=1))
        se = spread / math.sqrt(len(powers))
    else:
        spread, se = math.nan, 0.0
    # each window's own uncertainty, as a power, combined over the windows (independent)
    own_u = math.sqrt(sum(w.mean_power_u_w**2 for w in valid)) / len(valid)
    return IdleBaseline(
        power_w=float(powers.mean()),
        power_u_w=math.hypot(se, own_u),
        spread_w=spread,
        windows=len(valid),
        interpolated=len(valid) > 1,
        busy_windows=sum(1 for w in valid if w.not_idle),
        drift_w=float(powers[-1] - powers[0]) if len(valid) > 1 else math.nan,
    )


def idle_model(windows: Sequence[WindowResult]) -> IdleModel | None:
    """Idle power in time from the valid idle windows (None when there is none)."""
    valid = sorted((w for w in windows if w.kind == "idle" and w.valid), key=lambda w: w.mid_host_ns)
    if not valid:
        return None
    return IdleModel(
        tuple(w.mid_host_ns for w in valid),
        tuple(w.mean_power_w for w in valid),
        tuple(w.mean_power_u_w for w in valid),
    )


def _standard_error(values: Sequence[float]) -> float:
    if len(values) < 2:
        return 0.0
    return float(np.std(values, ddof=1)) / math.sqrt(len(values))


def _engine_state(windows: Sequence[WindowResult]) -> tuple[WindowState, str]:
    if any(w.valid for w in windows):
        return WindowState.OK, ""
    if all(w.failed for w in windows):
        return WindowState.FAILED, windows[0].reason
    first = next(w for w in windows if w.state is WindowState.INVALID)
    return WindowState.INVALID, first.reason


def _engine_result(
    engine: str,
    records: Sequence[RunRecord],
    windows: Sequence[WindowResult],
    busy_baseline: bool,
    grid: GridFactor,
    pue: float,
) -> EngineResult:
    name = parse_engine_name(engine)
    model = _model(records)
    batch = records[0].batch
    timed = [r for r, w in zip(records, windows, strict=True) if not w.failed]
    # the statistics are taken in ns and converted once (the mean of converted values differs in its last bits)
    latencies = (
        np.concatenate([np.asarray(r.latencies_ns, dtype=np.float64) for r in timed]) if timed else None
    )
    if latencies is not None and len(latencies):
        latency_mean_ms = float(latencies.mean()) / 1e6
        latency_p50_ms = float(np.median(latencies)) / 1e6
    else:
        latency_mean_ms = latency_p50_ms = math.nan
    timed_s = sum(r.duration_ns for r in timed) / 1e9
    timed_iters = sum(r.iterations for r in timed)
    inf_s = timed_iters / timed_s if timed_s > 0 else math.nan
    samples_s = sum(r.iterations * r.batch for r in timed) / timed_s if timed_s > 0 else math.nan

    valid = [w for w in windows if w.valid]
    nan = math.nan
    gross = gross_u = net = net_u = wall_w = net_w = nan
    with_net = bool(valid) and all(math.isfinite(w.net_energy_j) for w in valid)
    if valid:
        iters = sum(w.iterations for w in valid)
        seconds = sum(w.duration_s for w in valid)
        gross_total = sum(w.gross_energy_j for w in valid)
        meter_u = math.sqrt(sum(w.gross_energy_u_j**2 for w in valid)) / iters
        gross = gross_total / iters
        gross_u = math.hypot(meter_u, _standard_error([w.gross_j_per_inference for w in valid]))
        wall_w = gross_total / seconds
        if with_net:
            net_total = sum(w.net_energy_j for w in valid)
            net = net_total / iters
            # the windows of one engine share their idle windows: their baseline errors add linearly
            idle_u = sum(w.idle_power_u_w * w.duration_s for w in valid) / iters
            net_u = math.sqrt(
                meter_u**2 + _standard_error([w.net_j_per_inference for w in valid]) ** 2 + idle_u**2
            )
            net_w = net_total / seconds
    net_below_idle = math.isfinite(net) and net < -SIGNIFICANCE * (net_u if math.isfinite(net_u) else 0.0)

    railed = [w for w in windows if w.rail_energy_j is not None and not w.failed]
    if railed:
        rail = sum(w.rail_energy_j or 0.0 for w in railed) / sum(w.iterations for w in railed)
        rail_u = _standard_error([(w.rail_energy_j or 0.0) / w.iterations for w in railed])
        rail_seconds = sum(w.duration_s for w in railed)
        rail_w = sum(w.rail_energy_j or 0.0 for w in railed) / rail_seconds if rail_seconds > 0 else nan
    else:
        rail = rail_u = rail_w = nan

    state, reason = _engine_state(windows)
    co2_lb = grid.co2_lb(gross * pue)
    co2_lb_net = grid.co2_lb(net * pue)
    per = batch if batch else nan
    return EngineResult(
        engine=engine,
        backend=records[0].backend,
        backbone=name.backbone if name else engine,
        batch=batch,
        resolution=name.resolution if name else "",
        precision=name.precision if name else "",
        state=state,
        reason=reason,
        windows=len(windows),
        valid_windows=len(valid),
        latency_mean_ms=latency_mean_ms,
        latency_p50_ms=latency_p50_ms,
        throughput_samples_s=samples_s,
        throughput_inferences_s=inf_s,
        wall_power_w=wall_w,
        net_power_w=net_w,
        gross_j_per_inference=gross,
        gross_j_per_inference_u=gross_u,
        net_j_per_inference=net,
        net_j_per_inference_u=net_u,
        rail_j_per_inference=rail,
        rail_j_per_inference_u=rail_u,
        rail_estimate=any(w.rail_estimate for w in railed),
        gross_j_per_sample=gross / per,
        gross_j_per_sample_u=gross_u / per,
        net_j_per_sample=net / per,
        net_j_per_sample_u=net_u / per,
        co2_kg_per_inference=lb_to_kg(co2_lb),
        co2_lb_per_inference=co2_lb,
        co2_kg_per_inference_net=lb_to_kg(co2_lb_net),
        co2_lb_per_inference_net=co2_lb_net,
        pue=pue,
        rail_power_w=rail_w,
        params=model.params,
        gflops_per_inference=model.flops_per_inference / 1e9 if model.flops_per_inference is not None else nan,
        accuracy=model.accuracy,
        retried=sum(1 for r in records if r.attempt > 0),
        net_below_idle=net_below_idle,
        busy_baseline=busy_baseline and with_net,
    )


def _model(records: Sequence[RunRecord]) -> ModelFacts:
    """The model facts the agent recorded from its manifest: the latest record's that has them (an `eval` run
    between sessions updates the accuracy)."""
    return next((r.model for r in reversed(records) if r.model is not None), ModelFacts())


def pair(
    runs: Iterable[RunRecord],
    trace: MeterTrace,
    clock: ClockOffset | Mapping[str, ClockOffset],
    *,
    grid: GridFactor | None = None,
    idle: IdleBaseline | None = None,
    min_samples: int = MIN_SAMPLES,
    min_coverage: float = MIN_COVERAGE,
    pue: float = 1.0,
) -> PairingResult:
    """Pair RunRecords with a meter trace: per-window and per-engine energy, CO2 and their uncertainty.

    `clock` maps agent time to host time (one ClockOffset, or one per run_id); records already on the host
    clock are used as they are. `idle` (a given baseline: a constant) defaults to the idle windows among `runs`,
    interpolated in time; without any, net figures are NaN. `grid` defaults to the US average of the latest eGRID
    edition.
    """
    if min_samples < 2:
        raise BadInput(
            f"--min-samples {min_samples} is too small: the trapezoid rule needs at least 2 readings"
        )
    check_pue(pue)
    grid = grid or egrid_factor()
    records = list(runs)
    tr = _Trace(trace)
    idle_records = [r for r in records if r.kind == "idle"]
    run_records = [r for r in records if r.kind != "idle"]

    idle_windows = [_pair_window(r, tr, clock, min_samples, min_coverage, None) for r in idle_records]
    model = IdleModel.constant(idle.power_w, idle.power_u_w) if idle is not None else idle_model(idle_windows)
    if idle is None:
        idle = idle_baseline(idle_windows)
    if model is not None:
        idle_windows = [_pair_window(r, tr, clock, min_samples, min_coverage, model) for r in idle_records]
    run_windows = [_pair_window(r, tr, clock, min_samples, min_coverage, model) for r in run_records]
    busy = bool(idle is not None and idle.busy_windows)

    by_engine: dict[str, list[int]] = {}
    for i, r in enumerate(run_records):
        by_engine.setdefault(r.engine, []).append(i)
    engines = tuple(
        _engine_result(name, [run_records[i] for i in idx], [run_windows[i] for i in idx], busy, grid, pue)
        for name, idx in by_engine.items()
    )
    return PairingResult(
        windows=tuple(idle_windows + run_windows),
        engines=engines,
        idle=idle,
        grid=grid,
        meter=trace.meter,
        resolution_w=tr.resolution_w,
        pue=pue,
        thresholds={
            "min_samples": min_samples,
            "min_coverage": min_coverage,
            "max_clock_share": MAX_CLOCK_SHARE,
            "max_silence_periods": MAX_SILENCE_PERIODS,
            "busy_idle_cpu": BUSY_IDLE_CPU,
            "significance_sigma": SIGNIFICANCE,
        },
        device=next((dict(r.device) for r in records if r.device), {}),
    )
