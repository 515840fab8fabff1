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
from pathlib import Path
from typing import Protocol, runtime_checkable

from edgebench.engines.runner import Runner, RunOptions
from edgebench.records import AGENT_CLOCK, MetadataValue, ModelFacts, PowerSample, RailEnergy, RunRecord

from . import metadata as md
from .sensors.cpuload import CpuLoad
from .stats import MIN_ITERATIONS, LatencyStats, latency_warnings
from .watchdog import DEFAULT_INFERENCE_TIMEOUT_S, TimeLimits, Watchdog, WindowStopped, default_window_s

DEFAULT_WARMUP_S = 0.2  # trtexec --warmUp default (200 ms)
DEFAULT_DURATION_S = 3.0  # trtexec --duration default (3 s)


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


def _sampler_results(
    sampler: WindowSampler | None, samples: Sequence[PowerSample], start_ns: int, end_ns: int
) -> tuple[str, tuple[PowerSample, ...], RailEnergy | None]:
    if sampler is None:
        return "none", (), None
    energy = sampler.window_energy(samples, start_ns, end_ns) if samples else None
    return sampler.name, tuple(samples), energy


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
    cpu = CpuLoad(metadata_root)
    try:
        with watchdog:
            warm = _warmup(runner, warmup_iterations, warmup_s or 0.0, watchdog.mark)
            if sampler is not None:
                sampler.start()
            cpu.start()  # after the sampler's first read, right before the window: its cost stays outside
            try:
                if iterations is not None:
                    start_ns, end_ns, lat = _measure_count(runner, iterations, watchdog.mark)
                else:
                    assert duration_s is not None
                    start_ns, end_ns, lat = _measure_duration(runner, duration_s, min_iterations, watchdog.mark)
            finally:
                cpu_busy = cpu.stop()
                samples = sampler.stop() if sampler is not None else ()
    except Exception as exc:
        if watchdog.fired:  # the runner's own error is only the way it was stopped
            raise WindowStopped(watchdog.reason, interrupted=watchdog.interrupted) from exc
        raise
    if watchdog.fired:  # a runner that could not be stopped, returning late
        raise WindowStopped(watchdog.reason, interrupted=watchdog.interrupted)
    sensor, power_samples, rail_energy = _sampler_results(sampler, samples, start_ns, end_ns)

    device_end = md.collect_dynamic(metadata_root) if metadata else {}
    stats = LatencyStats.from_ns(lat, batch=runner.batch, window_ns=end_ns - start_ns, warmup_ns=warm)
    warnings = latency_warnings(stats)
    if metadata:
        warnings.extend(md.throttle_warnings(device, device_end))
    if sampler is not None and rail_energy is None:
        warnings.append(
            f"sensor {sensor} gave no samples covering the window: no on-board energy for {runner.engine}; "
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

    return RunRecord(
        engine=runner.engine,
        backend=runner.backend,
        clock=AGENT_CLOCK,
        window_start_ns=start_ns,
        window_end_ns=end_ns,
        iterations=len(lat),
        batch=runner.batch,
        latencies_ns=tuple(lat),
        warmup_latencies_ns=tuple(warm),
        kind="run",
        timed_region=runner.timed_region,
        settings=settings,
        model=model,
        device=device,
        device_end=device_end,
        sensor=sensor,
        power_samples=power_samples,
        rail_energy=rail_energy,
        run_id=run_id,
        repeat=repeat,
        warnings=tuple(warnings),
        cpu_busy=cpu_busy,
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
    cpu = CpuLoad(metadata_root)
    if sampler is not None:
        sampler.start()
    cpu.start()
    try:
        start_ns = time.time_ns()
        deadline = time.perf_counter_ns() + int(duration_s * 1e9)
        # Sleep in slices so that a late wake-up does not stretch the window much past duration_s.
        while (left := deadline - time.perf_counter_ns()) > 0:
            time.sleep(min(left / 1e9, 0.05))
        end_ns = time.time_ns()
    finally:
        cpu_busy = cpu.stop()
        samples = sampler.stop() if sampler is not None else ()
    sensor, power_samples, rail_energy = _sampler_results(sampler, samples, start_ns, end_ns)
    device_end = md.collect_dynamic(metadata_root) if metadata else {}
    warnings: list[str] = []
    if sampler is not None and rail_energy is None:
        warnings.append(
            f"sensor {sensor} gave no samples covering the idle window: no on-board idle energy; "
            "check `edgebench sensors`"
        )
    return RunRecord(
        engine="idle",
        backend="none",
        clock=AGENT_CLOCK,
        window_start_ns=start_ns,
        window_end_ns=end_ns,
        iterations=0,
        batch=0,
        latencies_ns=(),
        kind="idle",
        timed_region="nothing: the device idles while power is sampled",
        settings={"harness.idle_s": duration_s},
        device=device,
        device_end=device_end,
        sensor=sensor,
        power_samples=power_samples,
        rail_energy=rail_energy,
        run_id=run_id,
        repeat=repeat,
        warnings=tuple(warnings),
        cpu_busy=cpu_busy,
    )
