"""The timing harness: warm-up, a measured window of back-to-back iterations, and the RunRecord that reports it.

What is timed: `time.perf_counter_ns()` read right before and right after `runner.run_once()`, nothing else; the
runner's `timed_region` says in words what one run_once() contains (copies or not, synchronisation). The measured
window is bracketed in agent realtime (`time.time_ns()`, clock `agent:realtime`) right before the first and right
after the last measured iteration, so the host can lay it over its wall-meter trace. Warm-up iterations run
before the window and are kept separately.

Every window, engine or idle, also records `cpu_busy`: the device's CPU utilisation over it (a fraction of all
its CPUs, from /proc/stat under the metadata root, read right before and right after the window; see
sensors/cpuload.py), so an idle baseline taken while something else loaded the device can be told apart.

Defaults follow trtexec: 200 ms of warm-up, then 3 s of measurement with at least 10 iterations.
The loop is kept lean: bound methods hoisted out of the loop, one list append per iteration, no logging.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from edgebench.engines.runner import Runner, RunOptions
from edgebench.records import (
    AGENT_CLOCK,
    Metadata,
    MetadataValue,
    ModelFacts,
    PowerSample,
    RailEnergy,
    RunRecord,
)

from . import metadata as md
from .options import DEFAULT_DURATION_S, DEFAULT_WARMUP_S
from .sensors.cpuload import CpuLoad
from .stats import MIN_ITERATIONS, LatencyStats, latency_warnings
from .watchdog import DEFAULT_INFERENCE_TIMEOUT_S, TimeLimits, Watchdog, WindowStopped, default_window_s


@runtime_checkable
class WindowSampler(Protocol):
    """What the harness needs from an on-board power sampler running beside a window."""

    name: str

    def start(self) -> None:
        """Begin sampling in the background."""

    def stop(self) -> Sequence[PowerSample]:
        """Stop sampling and return every sample taken since start()."""

    def window_energy(self, samples: Sequence[PowerSample], start_ns: int, end_ns: int) -> RailEnergy | None:
        """Energy of [start_ns, end_ns] from the samples (None when they do not cover the window)."""


def _check_modes(
    warmup_iterations: int | None, warmup_s: float | None, iterations: int | None, duration_s: float | None
) -> None:
    if warmup_iterations is not None and warmup_s is not None:
        raise ValueError("run_engine: give warmup_iterations or warmup_s, not both")
    if iterations is not None and duration_s is not None:
        raise ValueError("run_engine: give iterations or duration_s, not both")
    if warmup_iterations is not None and warmup_iterations < 0:
        raise ValueError("run_engine: warmup_iterations must be >= 0")
    if warmup_s is not None and warmup_s < 0:
        raise ValueError("run_engine: warmup_s must be >= 0")
    if iterations is not None and iterations < 1:
        raise ValueError("run_engine: iterations must be >= 1")
    if duration_s is not None and duration_s <= 0:
        raise ValueError("run_engine: duration_s must be > 0")


# Every loop below writes the end of each iteration into `mark[0]` (one list store, outside the timed interval):
# the watchdog's "this inference started at" (see watchdog.py).


def _warmup(runner: Runner, iterations: int | None, seconds: float, mark: list[int]) -> list[int]:
    """Warm-up latencies (ns): a fixed count, or as many as fit in `seconds` (at least one when seconds > 0)."""
    run = runner.run_once
    pc = time.perf_counter_ns
    out: list[int] = []
    append = out.append
    if iterations is not None:
        for _ in range(iterations):
            t0 = pc()
            run()
            t1 = pc()
            append(t1 - t0)
            mark[0] = t1
        return out
    if seconds <= 0:
        return out
    deadline = pc() + int(seconds * 1e9)
    while True:
        t0 = pc()
        run()
        t1 = pc()
        append(t1 - t0)
        mark[0] = t1
        if t1 >= deadline:
            return out


def _measure_count(runner: Runner, iterations: int, mark: list[int]) -> tuple[int, int, list[int]]:
    """Exactly `iterations` timed iterations: (window start ns, window end ns, latencies ns)."""
    run = runner.run_once
    pc = time.perf_counter_ns
    lat = [0] * iterations  # preallocated: the loop only stores
    start_ns = time.time_ns()
    for i in range(iterations):
        t0 = pc()
        run()
        t1 = pc()
        lat[i] = t1 - t0
        mark[0] = t1
    end_ns = time.time_ns()
    return start_ns, end_ns, lat


def _measure_duration(
    runner: Runner, duration_s: float, min_iterations: int, mark: list[int]
) -> tuple[int, int, list[int]]:
    """Timed iterations until `duration_s` has passed and at least `min_iterations` ran."""
    run = runner.run_once
    pc = time.perf_counter_ns
    lat: list[int] = []
    append = lat.append
    duration_ns = int(duration_s * 1e9)
    n = 0
    start_ns = time.time_ns()
    deadline = pc() + duration_ns
    while True:
        t0 = pc()
        run()
        t1 = pc()
        append(t1 - t0)
        mark[0] = t1
        n += 1
        # The end-of-iteration timestamp doubles as the clock check: no extra timer call per iteration.
        if t1 >= deadline and n >= min_iterations:
            break
    end_ns = time.time_ns()
    return start_ns, end_ns, lat


def _options_settings(options: RunOptions | None) -> dict[str, MetadataValue]:
    if options is None:
        return {}
    return {f"options.{k}": v for k, v in dataclasses.asdict(options).items() if v is not None}


@dataclass(frozen=True)
class _Measured:
    """What a window measured besides its iterations, engine and idle windows alike: its edges in agent realtime,
    the device before and after, the on-board samples and their energy, and the device's CPU load. The fields are
    RunRecord's, by name."""

    window_start_ns: int
    window_end_ns: int
    device: Metadata
    device_end: Metadata
    sensor: str
    power_samples: tuple[PowerSample, ...]
    rail_energy: RailEnergy | None
    cpu_busy: float | None

    def record(self, **fields: Any) -> RunRecord:
        """The window's RunRecord: these facts and the caller's `fields` (engine, iterations, kind, ...)."""
        measured = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return RunRecord(clock=AGENT_CLOCK, **measured, **fields)


class _Probes:
    """The on-board sampler and the CPU load around one window: started right before it (the sampler first, so
    its first read stays outside the CPU figure), stopped right after it, also when the window fails."""

    def __init__(self, sampler: WindowSampler | None, metadata_root: Path) -> None:
        self.sampler = sampler
        self._cpu = CpuLoad(metadata_root)
        self.cpu_busy: float | None = None
        self.samples: Sequence[PowerSample] = ()

    def __enter__(self) -> _Probes:
        if self.sampler is not None:
            self.sampler.start()
        self._cpu.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu_busy = self._cpu.stop()
        self.samples = self.sampler.stop() if self.sampler is not None else ()

    def measured(self, start_ns: int, end_ns: int, device: Metadata, device_end: Metadata) -> _Measured:
        """The window's facts once the probes have stopped: the samples' energy over [start_ns, end_ns]."""
        sampler, samples = self.sampler, self.samples
        energy = sampler.window_energy(samples, start_ns, end_ns) if sampler is not None and samples else None
        return _Measured(
            start_ns, end_ns, device, device_end, sensor=sampler.name if sampler is not None else "none",
            power_samples=tuple(samples), rail_energy=energy, cpu_busy=self.cpu_busy,
        )  # fmt: skip


def time_limits(
    inference_s: float | None = None,
    window_s: float | None = None,
    *,
    warmup_s: float | None = None,
    warmup_iterations: int | None = None,
    duration_s: float | None = None,
    iterations: int | None = None,
) -> TimeLimits:
    """The limits of one window with run_engine's defaults filled in: `inference_s` (default 60 s) and
    `window_s` (default: the window's warm-up and measured seconds plus 120 s when it is given in seconds, i.e.
    neither `iterations` nor only `warmup_iterations`; else no window limit), the warm-up and measurement taking
    run_engine's defaults (0.2 s, 3 s) where neither a count nor seconds is given."""
    if window_s is None and iterations is None:
        warm = warmup_s if warmup_s is not None else (0.0 if warmup_iterations is not None else DEFAULT_WARMUP_S)
        window_s = default_window_s(warm, duration_s if duration_s is not None else DEFAULT_DURATION_S)
    return TimeLimits(inference_s=DEFAULT_INFERENCE_TIMEOUT_S if inference_s is None else inference_s,
                      window_s=window_s)


def run_engine(
    runner: Runner,
    *,
    warmup_iterations: int | None = None,
    warmup_s: float | None = None,
    iterations: int | None = None,
    duration_s: float | None = None,
    min_iterations: int = MIN_ITERATIONS,
    options: RunOptions | None = None,
    sampler: WindowSampler | None = None,
    metadata: bool = True,
    metadata_root: Path = Path("/"),
    run_id: str = "",
    repeat: int = 0,
    model: ModelFacts | None = None,
    limits: TimeLimits | None = None,
    watch_sigint: bool = True,
) -> RunRecord:
    """Warm up, time one measured window of `runner`, and return its RunRecord.

    Warm-up: `warmup_iterations` runs, or `warmup_s` seconds (default 0.2 s, trtexec's). Measurement: exactly
    `iterations` runs, or `duration_s` seconds (default 3 s) with at least `min_iterations` runs. `options`
    (the RunOptions the runner was opened with) are recorded in `settings` next to the runner's own. With a
    `sampler`, on-board power is sampled from before the warm-up ends to after the window and the window's rail
    energy attached. With `metadata`, device metadata is read under `metadata_root` before warm-up and after
    the window, and a throttling check compares the two. `model` (the manifest entry's `model_facts()`: params,
    MACs, FLOPs, accuracy) is carried in the record's `model` field. `cpu_busy` is the whole device's CPU
    utilisation over the window (/proc/stat under `metadata_root`; the engine's own threads and the sampler's
    included). `limits` bound one inference and the whole window (warm-up included); the default is 60 s per
    inference and, for a window given in seconds, its warm-up and measured seconds plus 120 s (watchdog.py).
    A limit that passes, or SIGINT (with `watch_sigint`, in the main thread), stops the runner from outside
    where it can be stopped (`interrupt()`) and raises WindowStopped with the reason; after SIGINT the usual
    KeyboardInterrupt may overtake it. Raises ValueError for contradictory arguments.
    """
    _check_modes(warmup_iterations, warmup_s, iterations, duration_s)
    if warmup_iterations is None and warmup_s is None:
        warmup_s = DEFAULT_WARMUP_S
    if iterations is None and duration_s is None:
        duration_s = DEFAULT_DURATION_S

    if limits is None:
        limits = time_limits(warmup_s=warmup_s, warmup_iterations=warmup_iterations, duration_s=duration_s,
                             iterations=iterations)

    device = md.collect_metadata(metadata_root) if metadata else {}
    watchdog = Watchdog(runner.engine, limits, getattr(runner, "interrupt", None), watch_sigint=watch_sigint)
    probes = _Probes(sampler, metadata_root)
    try:
        with watchdog:
            warm = _warmup(runner, warmup_iterations, warmup_s or 0.0, watchdog.mark)
            with probes:
                if iterations is not None:
                    start_ns, end_ns, lat = _measure_count(runner, iterations, watchdog.mark)
                else:
                    assert duration_s is not None
                    start_ns, end_ns, lat = _measure_duration(runner, duration_s, min_iterations, watchdog.mark)
    except Exception as exc:
        if watchdog.fired:  # the runner's own error is only the way it was stopped
            raise WindowStopped(watchdog.reason, interrupted=watchdog.interrupted) from exc
        raise
    if watchdog.fired:  # a runner that could not be stopped, returning late
        raise WindowStopped(watchdog.reason, interrupted=watchdog.interrupted)
    window = probes.measured(start_ns, end_ns, device, md.collect_dynamic(metadata_root) if metadata else {})
    stats = LatencyStats.from_ns(lat, batch=runner.batch, window_ns=end_ns - start_ns, warmup_ns=warm)
    warnings = latency_warnings(stats)
    if metadata:
        warnings.extend(md.throttle_warnings(device, window.device_end))
    if sampler is not None and window.rail_energy is None:
        warnings.append(
            f"sensor {window.sensor} gave no samples covering the window: no on-board energy for {runner.engine}; "
            "check `edgebench sensors` or use a longer --duration"
        )

    settings: dict[str, MetadataValue] = dict(runner.settings)
    settings.update(_options_settings(options))
    settings["harness.warmup"] = (
        f"{warmup_iterations} iterations" if warmup_iterations is not None else f"{warmup_s} s"
    )
    settings["harness.measure"] = (
        f"{iterations} iterations" if iterations is not None else f"{duration_s} s, at least {min_iterations} iterations"
    )
    settings["harness.timer"] = "time.perf_counter_ns around run_once()"
    settings["harness.time_limits"] = limits.words()

    return window.record(
        engine=runner.engine,
        backend=runner.backend,
        iterations=len(lat),
        batch=runner.batch,
        latencies_ns=tuple(lat),
        warmup_latencies_ns=tuple(warm),
        kind="run",
        timed_region=runner.timed_region,
        settings=settings,
        model=model,
        run_id=run_id,
        repeat=repeat,
        warnings=tuple(warnings),
    )


def idle_window(
    duration_s: float,
    sampler: WindowSampler | None = None,
    *,
    metadata: bool = True,
    metadata_root: Path = Path("/"),
    run_id: str = "",
    repeat: int = 0,
) -> RunRecord:
    """An idle baseline window: nothing runs for `duration_s` while the sampler (if any) samples power.

    Returns RunRecord(kind="idle", engine="idle", backend="none", iterations=0, batch=0) whose window is
    bracketed in agent realtime like an engine window; its `cpu_busy` says how idle the device really was
    (/proc/stat under `metadata_root`, None when unreadable or the window was too short to tell).
    """
    if duration_s <= 0:
        raise ValueError("idle_window: duration_s must be > 0")
    device = md.collect_metadata(metadata_root) if metadata else {}
    with _Probes(sampler, metadata_root) as probes:
        start_ns = time.time_ns()
        deadline = time.perf_counter_ns() + int(duration_s * 1e9)
        # Sleep in slices so that a late wake-up does not stretch the window much past duration_s.
        while (left := deadline - time.perf_counter_ns()) > 0:
            time.sleep(min(left / 1e9, 0.05))
        end_ns = time.time_ns()
    window = probes.measured(start_ns, end_ns, device, md.collect_dynamic(metadata_root) if metadata else {})
    warnings: list[str] = []
    if sampler is not None and window.rail_energy is None:
        warnings.append(
            f"sensor {window.sensor} gave no samples covering the idle window: no on-board idle energy; "
            "check `edgebench sensors`"
        )
    return window.record(
        engine="idle",
        backend="none",
        iterations=0,
        batch=0,
        latencies_ns=(),
        kind="idle",
        timed_region="nothing: the device idles while power is sampled",
        settings={"harness.idle_s": duration_s},
        run_id=run_id,
        repeat=repeat,
        warnings=tuple(warnings),
    )
