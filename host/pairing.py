"""Pair the agent's measured windows with a wall-meter trace: joules and CO2 per inference, with uncertainty.

For each RunRecord window (agent clock) the edges are mapped to host time with the measured ClockOffset, the
meter trace is integrated over it with the shared integrator (`edgebench.energy.integrate_window`: trapezoid rule,
edges interpolated), and the window is checked: enough samples, full coverage, no meter gap, clock uncertainty
small against the window. Idle windows give the baseline power; run windows give gross energy (what the wall
pays) and net energy (gross minus idle power x duration: what the model costs). Repeated windows of one engine
are combined into an EngineResult.

"Inference" means one engine execution, i.e. one batch; "sample" means one input of that batch. So
J/inference = energy / iterations and J/sample = energy / (iterations x batch).

Uncertainties are standard (1 sigma) and combine, in quadrature:
- meter resolution: each reading is off by up to one resolution step r, uniformly, so sd = r / sqrt(3) per
  reading; averaged over the N readings of a window the mean power is off by r / sqrt(3 N) and the energy by
  duration x r / sqrt(3 N);
- clock: an edge misplaced by the offset uncertainty u_c moves the energy by P_edge x u_c at each edge;
- repeats: the standard error (sd / sqrt(n)) of the per-window J/inference over an engine's valid windows;
- net only: the idle baseline's own uncertainty x duration.
docs/methodology.md states the formulas and thresholds.

Speed: the trace arrays are used as they are (int64 ns, float64 W); each window costs two binary searches and a
slice, so a 24 h log at 10 readings/s against 1,000 windows takes well under a second.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgebench.energy import integrate_window
from edgebench.errors import BadInput
from edgebench.names import EngineName, parse_engine_name  # noqa: F401 - EngineName re-exported
from edgebench.records import HOST_CLOCK, Accuracy, ClockOffset, MeterTrace, ModelFacts, RunRecord

from .carbon import GridFactor, egrid_factor, lb_to_kg

# Validity thresholds (documented in docs/methodology.md).
MIN_SAMPLES = 10  # meter readings inside a window; so the shortest valid window is 10 meter periods
MIN_COVERAGE = 0.99  # fraction of the window between the first and last reading around it
MAX_CLOCK_SHARE = 0.01  # 2 x clock uncertainty must stay under 1 % of the window
MAX_SILENCE_PERIODS = 5.0  # a stretch with no reading longer than 5 nominal meter periods is a gap

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
    status: str = "ok"  # "ok", "invalid: <reason>", "failed: <reason>"
    meter_fault: bool = False  # invalid because the meter fell silent or left a gap: worth measuring again
    attempt: int = 0  # 0: first try of this window; n: its n-th re-measurement

    @property
    def valid(self) -> bool:
        return self.status == "ok"

    @property
    def gross_j_per_inference(self) -> float:
        return self.gross_energy_j / self.iterations if self.iterations else math.nan

    @property
    def net_j_per_inference(self) -> float:
        return self.net_energy_j / self.iterations if self.iterations else math.nan


@dataclass(frozen=True)
class IdleBaseline:
    """Idle power from the valid idle windows: the mean of their mean powers."""

    power_w: float
    power_u_w: float  # standard uncertainty of power_w: standard error of the windows and meter resolution
    spread_w: float  # sample standard deviation of the windows' mean powers (0 with one window)
    windows: int  # valid idle windows used
    source: str = "idle windows"


@dataclass(frozen=True)
class EngineResult:
    """One engine's figures over its repeated windows. `_u` fields are standard (1 sigma) uncertainties."""

    engine: str
    backend: str
    backbone: str
    batch: int
    resolution: str  # "HxW"
    precision: str
    status: str  # "ok", "invalid: <reason>", "failed: <reason>"
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
    net_j_per_sample: float
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

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def co2_kg_per_million(self) -> float:
        return self.co2_kg_per_inference * 1e6

    @property
    def co2_lb_per_million(self) -> float:
        return self.co2_lb_per_inference * 1e6


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

    def power_near(self, t_ns: int) -> float:
        """Power of the reading nearest at or after t_ns (the last one past the end): the window-edge power."""
        n = len(self.p)
        if n == 0:
            return math.nan
        i = min(int(np.searchsorted(self.t, t_ns, side="left")), n - 1)
        return float(self.p[i])


def _failure(record: RunRecord) -> str:
    if record.error:
        return f"failed: {record.error}"
    if record.iterations <= 0 and record.kind == "run":
        return "failed: no iterations completed"
    if record.window_end_ns <= record.window_start_ns:
        return "failed: window end is not after its start"
    return ""


def _to_host(record: RunRecord, clock: ClockOffset | Mapping[str, ClockOffset]) -> tuple[int, int, float]:
    """Window edges in host ns and the clock uncertainty in seconds."""
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


def _pair_window(
    record: RunRecord,
    tr: _Trace,
    clock: ClockOffset | Mapping[str, ClockOffset],
    min_samples: int,
    min_coverage: float,
    idle_w: float,
    idle_u_w: float,
) -> WindowResult:
    failed = _failure(record)
    rail = record.rail_energy
    common = dict(
        engine=record.engine,
        kind=record.kind,
        run_id=record.run_id,
        repeat=record.repeat,
        iterations=record.iterations,
        batch=record.batch,
        rail_energy_j=rail.energy_j if rail else None,
        rail_estimate=bool(rail and rail.estimate),
        attempt=record.attempt,
    )
    if failed:
        return WindowResult(
            start_host_ns=record.window_start_ns, end_host_ns=record.window_end_ns,
            duration_s=max(record.duration_ns, 0) / 1e9, samples=0, coverage=0.0, largest_gap_s=math.nan,
            gross_energy_j=math.nan, gross_energy_u_j=math.nan, mean_power_w=math.nan, net_energy_j=math.nan,
            net_energy_u_j=math.nan, status=failed, **common,
        )  # fmt: skip
    start, end, clock_u_s = _to_host(record, clock)
    if tr.sampling != "continuous":  # readings a person typed, or an energy counter: all in host/spot.py
        from .spot import pair_window

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
    if math.isfinite(idle_w):
        net_j = gross_j - idle_w * duration_s
        net_u_j = math.hypot(gross_u_j, idle_u_w * duration_s)
    else:
        net_j = net_u_j = math.nan
    return WindowResult(
        start_host_ns=start, end_host_ns=end, duration_s=duration_s, samples=integral.samples,
        coverage=integral.coverage, largest_gap_s=integral.largest_gap_s, gross_energy_j=gross_j,
        gross_energy_u_j=gross_u_j, mean_power_w=integral.mean_power_w, net_energy_j=net_j, net_energy_u_j=net_u_j,
        status="invalid: " + "; ".join(reasons) if reasons else "ok", meter_fault=bool(reasons) and meter_fault,
        **common,
    )  # fmt: skip


def idle_baseline(windows: Sequence[WindowResult]) -> IdleBaseline | None:
    """Idle power from the valid idle windows (None when there is none)."""
    valid = [w for w in windows if w.kind == "idle" and w.valid]
    if not valid:
        return None
    powers = np.array([w.mean_power_w for w in valid])
    spread = float(np.std(powers, ddof=1)) if len(powers) > 1 else 0.0
    se = spread / math.sqrt(len(powers))
    # each window's resolution/clock term, as a power, combined over the windows (independent)
    meter_u = math.sqrt(sum((w.gross_energy_u_j / w.duration_s) ** 2 for w in valid)) / len(valid)
    return IdleBaseline(float(powers.mean()), math.hypot(se, meter_u), spread, len(valid))


def _standard_error(values: Sequence[float]) -> float:
    if len(values) < 2:
        return 0.0
    return float(np.std(values, ddof=1)) / math.sqrt(len(values))


def _engine_result(
    engine: str,
    records: Sequence[RunRecord],
    windows: Sequence[WindowResult],
    idle: IdleBaseline | None,
    grid: GridFactor,
    pue: float,
) -> EngineResult:
    name = parse_engine_name(engine)
    model = _model(records)
    batch = records[0].batch
    timed = [r for r, w in zip(records, windows, strict=True) if not w.status.startswith("failed")]
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
    if valid:
        iters = sum(w.iterations for w in valid)
        seconds = sum(w.duration_s for w in valid)
        gross_total = sum(w.gross_energy_j for w in valid)
        meter_u = math.sqrt(sum(w.gross_energy_u_j**2 for w in valid)) / iters
        gross = gross_total / iters
        gross_u = math.hypot(meter_u, _standard_error([w.gross_j_per_inference for w in valid]))
        wall_w = gross_total / seconds
        if idle is not None:
            net = (gross_total - idle.power_w * seconds) / iters
            # the baseline's error is common to every window, so it adds linearly over them
            idle_u = idle.power_u_w * seconds / iters
            net_u = math.sqrt(
                meter_u**2 + _standard_error([w.net_j_per_inference for w in valid]) ** 2 + idle_u**2
            )
            net_w = wall_w - idle.power_w

    railed = [w for w in windows if w.rail_energy_j is not None and not w.status.startswith("failed")]
    if railed:
        rail = sum(w.rail_energy_j or 0.0 for w in railed) / sum(w.iterations for w in railed)
        rail_u = _standard_error([(w.rail_energy_j or 0.0) / w.iterations for w in railed])
        rail_seconds = sum(w.duration_s for w in railed)
        rail_w = sum(w.rail_energy_j or 0.0 for w in railed) / rail_seconds if rail_seconds > 0 else nan
    else:
        rail = rail_u = rail_w = nan

    statuses = [w.status for w in windows]
    if valid:
        status = "ok"
    elif all(s.startswith("failed") for s in statuses):
        status = statuses[0]
    else:
        status = next(s for s in statuses if s.startswith("invalid"))
    co2_lb = grid.co2_lb(gross * pue)
    co2_lb_net = grid.co2_lb(net * pue)
    return EngineResult(
        engine=engine,
        backend=records[0].backend,
        backbone=name.backbone if name else engine,
        batch=batch,
        resolution=name.resolution if name else "",
        precision=name.precision if name else "",
        status=status,
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
        gross_j_per_sample=gross / batch if batch else nan,
        net_j_per_sample=net / batch if batch else nan,
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
    clock are used as they are. `idle` defaults to the baseline of the idle windows among `runs`; without any,
    net figures are NaN. `grid` defaults to the US average of the latest eGRID edition.
    """
    if min_samples < 2:
        raise BadInput(
            f"--min-samples {min_samples} is too small: the trapezoid rule needs at least 2 readings"
        )
    if pue < 1.0:
        raise BadInput(f"PUE {pue} is below 1: pass --pue >= 1 (1 for a device on a desk)")
    grid = grid or egrid_factor()
    records = list(runs)
    tr = _Trace(trace)
    idle_records = [r for r in records if r.kind == "idle"]
    run_records = [r for r in records if r.kind != "idle"]

    idle_windows = [
        _pair_window(r, tr, clock, min_samples, min_coverage, math.nan, 0.0) for r in idle_records
    ]
    if idle is None:
        idle = idle_baseline(idle_windows)
    idle_w = idle.power_w if idle else math.nan
    idle_u = idle.power_u_w if idle else 0.0
    if idle is not None:
        idle_windows = [
            _pair_window(r, tr, clock, min_samples, min_coverage, idle_w, idle_u) for r in idle_records
        ]
    run_windows = [_pair_window(r, tr, clock, min_samples, min_coverage, idle_w, idle_u) for r in run_records]

    by_engine: dict[str, list[int]] = {}
    for i, r in enumerate(run_records):
        by_engine.setdefault(r.engine, []).append(i)
    engines = tuple(
        _engine_result(name, [run_records[i] for i in idx], [run_windows[i] for i in idx], idle, grid, pue)
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
        },
        device=next((dict(r.device) for r in records if r.device), {}),
    )
